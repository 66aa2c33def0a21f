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
