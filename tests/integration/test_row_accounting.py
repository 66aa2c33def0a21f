"""Every loaded row is accounted for inside the warehouse: in the marts, or excluded with a recorded reason.

The door's account (rows read = loaded + quarantined) is tested in test_pipeline; this is the inside one: per raw
table, rows loaded = rows the marts hold + rows in marts.fct_row_exclusions, counted here from the raw tables and
the marts themselves, not only read from the reconciliation model.
"""

from datetime import date
from pathlib import Path

import duckdb
import pytest

from tests.conftest import AS_OF, open_warehouse, run_nightly, world_environ

pytestmark = pytest.mark.integration

# Where the kept rows of each raw table land, and how to count them there.
MART_ROWS = {
    "erp__orders": "select count(*) from marts.fct_orders",
    "erp__order_lines": "select count(*) from marts.fct_order_lines",
    "erp__returns": "select count(*) from marts.fct_returns",
    "erp__customers": "select count(*) from marts.dim_customers where has_customer_record",
    "erp__products": "select count(*) from marts.dim_products where has_product_record",
    "crm__cases": "select count(*) from marts.fct_support_cases",
    "callcenter__calls": "select count(*) from marts.fct_interactions where interaction_type = 'call'",
    "marketing__sends": "select count(*) from marts.fct_interactions where interaction_type = 'send'",
    "web__sessions": "select count(*) from marts.fct_interactions where interaction_type = 'web_session'",
    "marketing__campaigns": "select count(*) from marts.dim_campaigns",
    "marketing__campaign_members": "select count(*) from marts.fct_campaign_contacts",
}
BACK_DATED = date(2026, 3, 31)


def warehouse(root: Path) -> duckdb.DuckDBPyConnection:
    return open_warehouse(root / "warehouse" / "crm.duckdb")


def assert_every_row_accounted_for(connection: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, int, int]]:
    """Per raw table: loaded = in the marts + excluded, each side counted from its own tables."""
    excluded = dict(
        connection.execute("select source_table, count(*) from marts.fct_row_exclusions group by all").fetchall()
    )
    reconciliation = connection.execute(
        "select source_table, rows_loaded, rows_in_marts, rows_excluded, rows_unaccounted, rows_counted_twice, "
        "mart_rows_without_source from marts.mart_source_reconciliation"
    ).fetchall()
    assert {row[0] for row in reconciliation} >= set(MART_ROWS) | {"crm__contacts", "marketing__responses"}
    counts = {}
    for table, loaded, in_marts, rows_excluded, unaccounted, twice, orphans in reconciliation:
        raw_rows = connection.execute(f"select count(*) from raw.{table}").fetchone()[0]
        assert loaded == raw_rows, table
        assert rows_excluded == excluded.get(table, 0), table
        if table in MART_ROWS:
            assert in_marts == connection.execute(MART_ROWS[table]).fetchone()[0], table
        assert (unaccounted, twice, orphans) == (0, 0, 0), table
        assert loaded == in_marts + rows_excluded, (
            f"{table}: {loaded} loaded, {in_marts} in marts, {rows_excluded} excluded"
        )
        counts[table] = (loaded, in_marts, rows_excluded)
    return counts


def test_every_loaded_row_is_in_the_marts_or_excluded_with_a_reason(pipeline_run):
    world, result = pipeline_run
    with warehouse(world.root) as connection:
        counts = assert_every_row_accounted_for(connection)
    assert counts["erp__order_lines"][0] == world.rows["erp/order_lines.csv"]
    checks = [
        event.event_specific_data
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
        and event.event_specific_data.check_name.startswith("expression_is_true_mart_source_reconciliation")
    ]
    assert checks and all(check.passed for check in checks), "the reconciliation's dbt test must run and pass"


@pytest.fixture(scope="module")
def quarantined_order_world(tmp_path_factory: pytest.TempPathFactory):
    """A small world whose first order has an unreadable date, run back-dated three months before its export."""
    from pipelines.demo_data import generate

    root = tmp_path_factory.mktemp("quarantined_order")
    generate(customers=300, seed=11, as_of=AS_OF, out=root / "landing", truth=root / "truth")
    orders_file = root / "landing" / "erp" / "orders.csv"
    lines = orders_file.read_text(encoding="utf-8").splitlines()
    header, first = lines[0].split(";"), lines[1].split(";")
    order_no = first[header.index("order_no")]
    first[header.index("ordered_at")] = "the day before yesterday"
    lines[1] = ";".join(first)
    orders_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    order_lines = duckdb.sql(
        f"""select count(*) from read_csv('{root / "landing" / "erp" / "order_lines.csv"}', delim=';',
            all_varchar=true) where order_no = '{order_no}'"""
    ).fetchall()[0][0]
    result = run_nightly(world_environ(root), BACK_DATED)
    return root, result, order_no, order_lines


def test_the_lines_of_an_order_quarantined_at_the_door_are_excluded_with_the_reason(quarantined_order_world):
    root, result, order_no, order_lines = quarantined_order_world
    failed = [event.step_key for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    assert "dbt_models" not in failed
    assert order_lines >= 1
    with warehouse(root) as connection:
        quarantined = connection.execute(
            "select count(*) from meta.quarantine where source_table = 'erp__orders' and column_name = 'ordered_at'"
        ).fetchone()[0]
        excluded = connection.execute(
            """select source_key, exclusion_reason_code, exclusion_reason, source_file
            from marts.fct_row_exclusions where source_table = 'erp__order_lines' and source_key like ? || '-%'""",
            [order_no],
        ).fetchall()
        in_facts = connection.execute(
            "select count(*) from marts.fct_order_lines where order_id = ?", [order_no]
        ).fetchone()[0]
    assert quarantined == 1
    assert len(excluded) == order_lines
    assert {(code, file) for _, code, _, file in excluded} == {("order_missing", "erp/order_lines.csv")}
    assert all(order_no in reason and "quarantined" in reason for _, _, reason, _ in excluded)
    assert in_facts == 0


def test_a_back_dated_run_accounts_for_every_row_and_shows_nothing_after_its_as_of_date(quarantined_order_world):
    root, _, _, _ = quarantined_order_world
    with warehouse(root) as connection:
        counts = assert_every_row_accounted_for(connection)
        latest = connection.execute(
            """select
                (select max(created_date) from marts.dim_customers),
                (select max(order_date) from marts.fct_orders),
                (select max(returned_date) from marts.fct_returns),
                (select max(occurred_date) from marts.fct_interactions),
                (select max(opened_date) from marts.fct_support_cases),
                (select max(cast(closed_at as date)) from marts.fct_support_cases),
                (select max(window_start_date) from marts.fct_campaign_contacts)"""
        ).fetchone()
        # an account opened on or after the cutoff is listed only when the customer ordered before it
        opened_later = connection.execute(
            """select
                count(*),
                count(*) filter (where customers.customer_id is not null),
                count(*) filter (where exclusions.exclusion_reason_code = 'after_as_of')
            from raw.erp__customers as exported
            left join marts.dim_customers as customers on exported.customer_no = customers.customer_id
            left join marts.fct_row_exclusions as exclusions
                on exclusions.source_table = 'erp__customers' and exported.customer_no = exclusions.source_key
            where exported.created_on >= ? and not exists (
                select 1 from marts.fct_orders as orders where orders.customer_id = exported.customer_no
            )""",
            [BACK_DATED],
        ).fetchone()
        reasons = dict(
            connection.execute(
                """select source_table, count(*) from marts.fct_row_exclusions
                where exclusion_reason_code = 'after_as_of' group by all"""
            ).fetchall()
        )
    assert all(day is not None and day < BACK_DATED for day in latest), latest
    opened, listed, excluded_as_later = opened_later
    assert opened > 0 and listed == 0 and excluded_as_later == opened
    assert reasons["erp__orders"] > 0 and reasons["erp__order_lines"] > 0 and reasons["erp__customers"] > 0
    assert counts["erp__orders"][2] >= reasons["erp__orders"]


# Lineage broken on purpose in a copy of the session's night, one case per raw table (the marts file is attached as
# marts_db; the loaded rows are raw): (raw table, the mart rows that hold it, the statements that break it)
BROKEN_LINEAGE = {
    # lost rows: mart rows deleted
    "erp__order_lines": ("marts_db.marts.fct_order_lines", [
        "delete from marts_db.marts.fct_order_lines where source_row_number % 50 = 7",
    ]),
    # a mart row pointing one row off (one lost, the next held twice), two far off (past the last row: orphans)
    "erp__orders": ("marts_db.marts.fct_orders", [
        "update marts_db.marts.fct_orders set source_row_number = source_row_number + 1 where source_row_number = 50",
        "update marts_db.marts.fct_orders set source_row_number = source_row_number + 9000000 "
        "where source_row_number in (60, 61)",
    ]),
    # a row loaded twice, by a second load of the same file: each copy counts
    "erp__returns": ("marts_db.marts.fct_returns", [
        "insert into raw.erp__returns select * replace ('another run' as _run_id) from raw.erp__returns "
        "where _row_number <= 3",
    ]),
    # mart rows without a file or a row number: never matched; one file and row number once, however many carry it
    "crm__cases": ("marts_db.marts.fct_support_cases", [
        "update marts_db.marts.fct_support_cases set source_file = null where source_row_number in (10, 11, 12)",
        "insert into marts_db.marts.fct_support_cases select * from marts_db.marts.fct_support_cases "
        "where source_row_number = 12",
        "update marts_db.marts.fct_support_cases set source_row_number = null where source_row_number in (20, 21)",
    ]),
    # loaded rows without a row number or a file: in neither
    "callcenter__calls": ("marts_db.marts.fct_interactions where interaction_type = 'call'", [
        "update raw.callcenter__calls set _row_number = null where _row_number in (5, 6)",
        "update raw.callcenter__calls set _file = null where _row_number = 7",
    ]),
    # excluded and held (counted twice), excluded instead of held, an exclusion of a row never loaded
    "marketing__sends": ("marts_db.marts.fct_interactions where interaction_type = 'send'", [
        "insert into marts_db.marts.fct_row_exclusions (source_table, source_file, source_row_number) "
        "select 'marketing__sends', _file, _row_number from raw.marketing__sends where _row_number in (30, 31, 32)",
        "delete from marts_db.marts.fct_interactions where interaction_type = 'send' and source_row_number in (30, 31)",
        "insert into marts_db.marts.fct_row_exclusions (source_table, source_file, source_row_number) "
        "values ('marketing__sends', 'elsewhere.csv', 5)",
    ]),
    # negative and very large row numbers, matched and not
    "marketing__campaign_members": ("marts_db.marts.fct_campaign_contacts", [
        "update raw.marketing__campaign_members set _row_number = -5 where _row_number = 1",
        "update marts_db.marts.fct_campaign_contacts set source_row_number = -5 where source_row_number = 1",
        "update raw.marketing__campaign_members set _row_number = 9000000000 where _row_number = 2",
        "update marts_db.marts.fct_campaign_contacts set source_row_number = -70000 where source_row_number = 3",
    ]),
    # the same row number twice in one load, which the loader never writes: the copy is unaccounted, not matched
    "erp__products": ("marts_db.marts.dim_products where has_product_record", [
        "insert into raw.erp__products select * from raw.erp__products where _row_number = 5",
    ]),
}  # fmt: skip


def _counted_by_hand(connection: duckdb.DuckDBPyConnection, table: str, held_rows: str) -> tuple[int, ...]:
    """The reconciliation's figures for one raw table, counted here row by row in Python."""
    loaded = connection.execute(f"select _file, _row_number, _run_id from raw.{table}").fetchall()
    held = set(connection.execute(f"select source_file, source_row_number from {held_rows}").fetchall())
    excluded = set(
        connection.execute(
            "select source_file, source_row_number from marts_db.marts.fct_row_exclusions where source_table = ?",
            [table],
        ).fetchall()
    )
    seen, in_marts, in_exclusions, twice = set(), 0, 0, 0
    for file, row, run in loaded:
        key, matchable = (file, row), file is not None and row is not None
        if not matchable or (file, row, run) in seen:  # unmatchable, or numbered twice in one load
            continue
        seen.add((file, row, run))
        in_marts += key in held
        in_exclusions += key in excluded
        twice += key in held and key in excluded
    loaded_keys = {(file, row) for file, row, _ in loaded}
    orphans = sum(1 for file, row in held if file is None or row is None or (file, row) not in loaded_keys)
    unaccounted = len(loaded) - in_marts - in_exclusions + twice
    return len(loaded), in_marts, in_exclusions, unaccounted, twice, orphans


def test_broken_lineage_is_counted_row_by_row(pipeline_run, tmp_path):
    """Lost rows, orphans, copies, rows in both, unmatchable file or row numbers: the reconciliation (dbt, on the
    night's copy) finds each as a count here does, and the tables left whole still add up."""
    import os
    import shutil
    import subprocess

    from pipelines.settings import load_settings
    from pipelines.transform.assets import dbt_vars_args
    from pipelines.transform.project import DBT_EXECUTABLE, DBT_PROJECT_DIR

    world, _ = pipeline_run
    shutil.copytree(world.root / "warehouse", tmp_path / "warehouse")
    with open_warehouse(tmp_path / "warehouse" / "crm.duckdb", read_only=False) as connection:
        for _, statements in BROKEN_LINEAGE.values():
            for statement in statements:
                connection.execute(statement)
    environ = {**os.environ, **world_environ(tmp_path)}
    environ.pop("CRM_MARTS_PATH", None)
    variables = dbt_vars_args(load_settings(environ), AS_OF)
    completed = subprocess.run(
        [DBT_EXECUTABLE, "run", "--select", "mart_source_reconciliation", *variables, "--target-path",
         str(tmp_path / "target")],
        cwd=DBT_PROJECT_DIR, env=environ, capture_output=True, text=True,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-2000:]
    with warehouse(tmp_path) as connection:
        found = {
            row[0]: tuple(row[1:])
            for row in connection.execute(
                "select source_table, rows_loaded, rows_in_marts, rows_excluded, rows_unaccounted, "
                "rows_counted_twice, mart_rows_without_source from marts.mart_source_reconciliation"
            ).fetchall()
        }
        for table, (held_rows, _) in BROKEN_LINEAGE.items():
            assert found[table] == _counted_by_hand(connection, table, held_rows), table
    # each case shows: lost, orphans, copies, in both, unmatchable
    # (rows_loaded, rows_in_marts, rows_excluded, rows_unaccounted, rows_counted_twice, mart_rows_without_source)
    assert found["erp__order_lines"][3] > 0 and found["erp__orders"][3:6:2] == (3, 2)
    with warehouse(world.root) as night:
        returns = night.execute("select count(*) from raw.erp__returns").fetchone()[0]
    assert found["erp__returns"][:2] == (returns + 3, returns + 3)
    assert found["crm__cases"][3:6:2] == (5, 4) and found["callcenter__calls"][3:6:2] == (3, 3)
    assert found["marketing__sends"][2:5] == (3, 0, 1)
    assert found["marketing__campaign_members"][3:6:2] == (2, 2)
    assert found["erp__products"][3] == 1
    for table in set(found) - set(BROKEN_LINEAGE):
        loaded, in_marts, excluded, unaccounted, twice, orphans = found[table]
        assert loaded == in_marts + excluded and (unaccounted, twice, orphans) == (0, 0, 0), table
