"""The publish step on real DuckDB files: what the snapshot holds (and never holds), one model run per model and
as-of, the guard that holds a jump back, accept and rollback, what changed, and formula-like text counted."""

import json
import os
import stat
import time
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.ingest import ledger
from pipelines.ml.model_runs import ModelRun, record_model_run, write_scores
from pipelines.publish.changes import what_changed
from pipelines.publish.guard import PublishError, accept_held, guard_reasons, read_history, rollback
from pipelines.publish.release import publish
from pipelines.publish.snapshot import current_snapshot, point_to, prune_snapshots, snapshot_name, write_snapshot
from tests.conftest import open_warehouse

AS_OF = date(2026, 6, 30)
SECRET = "sk_live_51Hx9SECRETtoken"
RUN_A, RUN_B, RUN_KILLED = "aaaaaaaa-run", "bbbbbbbb-run", "kkkkkkkk-run"


def build_warehouse(
    path: Path,
    run_id: str,
    *,
    amount: float = 10.0,
    tiers: tuple[str, ...] = ("gold", "silver", "bronze"),
    segments: tuple[str, ...] = ("champions", "loyal", "at risk"),
    buyers: int = 3,
    auc: float = 0.8,
    as_of: date = AS_OF,
) -> Path:
    """A small warehouse as a night leaves it: marts, the run's model runs and scores, the load bookkeeping with a
    quarantined row whose text holds a secret and an absolute path."""
    with open_warehouse(path, read_only=False) as connection:
        for schema in ("raw", "staging"):
            connection.execute(f"create schema if not exists {schema}")
        connection.execute("create or replace table raw.orders as select 1 as id")
        connection.execute("create or replace view staging.v as select * from raw.orders")
        customers = [
            (f"C{index}", index < buyers, tiers[index % len(tiers)], amount * (index + 1)) for index in range(4)
        ]
        connection.execute(
            "create or replace table marts.dim_customers (customer_id varchar, has_purchased boolean, "
            "loyalty_tier varchar, trailing_12m_net_revenue decimal(18, 2), email_masked varchar)"
        )
        connection.executemany(
            "insert into marts.dim_customers values (?, ?, ?, ?, 'a***@b.c')", [list(row) for row in customers]
        )
        connection.execute(
            """create or replace table marts.fct_order_lines as
            select 'SO' || range || '-1' as order_line_id, 'SO' || range as order_id, 1 as quantity,
                (? * (range + 1))::decimal(18, 2) as net_revenue, 'erp/order_lines.csv' as source_file,
                range + 1 as source_row_number
            from range(?)""",
            [amount, buyers],
        )
        connection.execute(
            "create or replace table marts.fct_orders as select order_id, net_revenue, source_file, "
            "source_row_number from marts.fct_order_lines"
        )
        ledger.ensure_tables(connection)
        connection.execute(
            "insert into meta.load_ledger (source_table, file, status, message, rows_read, rows_loaded, "
            "rows_quarantined, run_id, unknown_columns) values ('erp__order_lines', 'erp/order_lines.csv', 'loaded', "
            "?, ?, ?, 1, ?, ['token'])",
            [f"row 2 held {SECRET} in /home/alice/landing/erp/order_lines.csv", buyers + 1, buyers, run_id],
        )
        connection.execute(
            "insert into meta.quarantine (source_table, file, row_number, column_name, reason, reason_code, record, "
            "run_id) values ('erp__order_lines', '/home/alice/landing/erp/order_lines.csv', 2, 'quantity', ?, 'type', "
            "?, ?)",
            [
                f"cannot read '{SECRET}' as integer",
                json.dumps({"quantity": SECRET, "note": "/home/alice/secrets.txt"}),
                run_id,
            ],
        )
        connection.execute(
            "create or replace table meta.validation_results as select 'erp__order_lines' as source_table, "
            "['erp/order_lines.csv'] as files, 'not_null' as expectation, ? as sample, ? as error",
            [json.dumps([SECRET]), f"failed on {SECRET}"],
        )
        connection.execute("create or replace table meta.operator_notes as select ? as note", [SECRET])
        for model, metrics in (("rfm", {"segments": 3}), ("churn", {"auc": auc})):
            run = ModelRun(
                model, as_of, run_id, datetime.now(UTC).replace(tzinfo=None), metrics=metrics, rows_used=buyers
            )
            run.notes.append("A library said: cannot open /home/alice/landing/erp/order_lines.csv")
            record_model_run(connection, run)
            if model == "rfm":
                scores = pl.DataFrame(
                    {"customer_id": [f"C{index}" for index in range(buyers)], "segment": list(segments[:buyers])}
                )
                write_scores(connection, "rfm_scores", scores, run)
    return path


def kill_a_run(path: Path, as_of: date) -> None:
    """A run killed after it scored: its model runs and scores stay in the warehouse, it published nothing."""
    with open_warehouse(path, read_only=False) as connection:
        run = ModelRun("rfm", as_of, RUN_KILLED, datetime.now(UTC).replace(tzinfo=None), metrics={"segments": 9})
        record_model_run(connection, run)
        write_scores(connection, "rfm_scores", pl.DataFrame({"customer_id": ["C9"], "segment": ["killed"]}), run)


def publish_run(warehouse: Path, published: Path, run_id: str, **options):
    with open_warehouse(warehouse, read_only=False) as connection:
        return publish(connection, published, as_of=options.pop("as_of", AS_OF), run_id=run_id, **options)


def text_values(path: Path) -> list[str]:
    """Every value of every column of every table of the database at ``path``, as text."""
    with duckdb.connect(str(path), read_only=True) as connection:
        tables = connection.execute(
            "select table_schema, table_name, column_name from information_schema.columns"
        ).fetchall()
        values = []
        for schema, table, column in tables:
            values += [
                row[0]
                for row in connection.execute(
                    f'select "{column}"::varchar from "{schema}"."{table}" where "{column}" is not null'
                ).fetchall()
            ]
    return values


def test_the_snapshot_holds_codes_and_counts_never_row_text_secrets_or_absolute_paths(tmp_path: Path):
    warehouse = build_warehouse(tmp_path / "work.duckdb", RUN_A)
    release = publish_run(warehouse, tmp_path / "published", RUN_A)
    values = text_values(release.target)
    assert values, "the scan read the snapshot"
    assert [value for value in values if SECRET in value or "/home/alice" in value] == []
    assert "A library said: cannot open order_lines.csv." in values, "a note keeps the file's name, not its path"
    with duckdb.connect(str(release.target), read_only=True) as snapshot:
        tables = {
            f"{schema}.{table}"
            for schema, table in snapshot.execute(
                "select table_schema, table_name from information_schema.tables"
            ).fetchall()
        }
        quarantine = snapshot.execute("select * from meta.quarantine").fetchall()
        quarantine_columns = [row[0] for row in snapshot.execute("describe meta.quarantine").fetchall()]
        ledger_columns = {row[0] for row in snapshot.execute("describe meta.load_ledger").fetchall()}
    assert quarantine_columns == ["source_table", "file", "row_number", "column_name", "reason_code"]
    assert quarantine == [("erp__order_lines", "order_lines.csv", 2, "quantity", "type")]
    assert {"rows_read", "rows_loaded", "rows_quarantined", "status", "file"} <= ledger_columns
    assert not ledger_columns & {"message", "unknown_columns"}
    assert "meta.operator_notes" not in tables, "a meta table not on the allowlist is not published"
    assert not any(table.startswith(("raw.", "staging.")) for table in tables)
    assert {"marts.dim_customers", "ml.model_runs", "meta.run_changes", "meta.published_runs"} <= tables


def test_a_quarantine_without_reason_codes_publishes_codes_derived_from_the_reason(tmp_path: Path):
    """A warehouse made before meta.quarantine had reason_code still publishes codes, never the reason's text."""
    with duckdb.connect(str(tmp_path / "old.duckdb")) as connection:
        connection.execute("create schema meta")
        connection.execute(
            "create table meta.quarantine as select * from (values "
            "('t', 'f.csv', 1, 'a', 'required value missing', '{}'), "
            "('t', 'f.csv', 2, 'b', 'cannot read ''x@y.z'' as date', '{}'), "
            "('t', 'f.csv', 3, 'c', 'primary key already loaded from f.csv', '{}'), "
            "('t', 'f.csv', 4, null, 'malformed record: expected 3 fields', '{}')) "
            "as rows(source_table, file, row_number, column_name, reason, record)"
        )
        write_snapshot(connection, tmp_path / "published" / "crm_old.duckdb", run_id=RUN_A)
    with duckdb.connect(str(tmp_path / "published" / "crm_old.duckdb"), read_only=True) as snapshot:
        codes = snapshot.execute("select row_number, reason_code from meta.quarantine order by 1").fetchall()
        columns = [row[0] for row in snapshot.execute("describe meta.quarantine").fetchall()]
    assert codes == [(1, "missing"), (2, "type"), (3, "duplicate"), (4, "malformed")]
    assert "reason" not in columns and "record" not in columns


@pytest.fixture
def usual_umask():
    """The umask most machines have (022), whatever an earlier import set (the crm command may set 077)."""
    saved = os.umask(0o022)
    yield
    os.umask(saved)


def test_snapshot_files_are_readable_by_their_owner_only(tmp_path: Path, usual_umask):
    warehouse = build_warehouse(tmp_path / "work.duckdb", RUN_A)
    release = publish_run(warehouse, tmp_path / "published", RUN_A)
    assert stat.S_IMODE(release.target.stat().st_mode) == 0o600
    assert stat.S_IMODE(release.target.parent.stat().st_mode) == 0o700
    other = build_warehouse(tmp_path / "other.duckdb", RUN_B)
    shared = publish_run(other, tmp_path / "shared", RUN_B, private_files=False)
    assert stat.S_IMODE(shared.target.stat().st_mode) & 0o044, "private_files false leaves the usual mode"


def test_the_snapshot_keeps_one_model_run_per_model_and_as_of_and_none_from_killed_runs(tmp_path: Path):
    warehouse = build_warehouse(tmp_path / "work.duckdb", RUN_A)
    published = tmp_path / "published"
    publish_run(warehouse, published, RUN_A)
    kill_a_run(warehouse, date(2026, 7, 15))  # killed later, scoring a cutoff no finished run published
    kill_a_run(warehouse, AS_OF)  # and one killed on the same cutoff, after the published run
    build_warehouse(warehouse, RUN_B, amount=11.0)  # the next night, same cutoff
    release = publish_run(warehouse, published, RUN_B)
    with open_warehouse(warehouse) as connection:
        in_warehouse = connection.execute(
            "select count(*) from ml.model_runs where run_id = ?", [RUN_KILLED]
        ).fetchone()
    with duckdb.connect(str(release.target), read_only=True) as snapshot:
        runs = snapshot.execute("select model, as_of, run_id from ml.model_runs order by all").fetchall()
        scored = snapshot.execute("select distinct model_run_id from ml.rfm_scores").fetchall()
        recorded = snapshot.execute("select run_id from meta.published_runs order by published_at").fetchall()
    assert in_warehouse == (2,), "the killed run's rows are in the warehouse"
    assert runs == [("churn", AS_OF, RUN_B), ("rfm", AS_OF, RUN_B)]
    assert scored == [(f"rfm-{AS_OF.isoformat()}-bbbbbbbb",)]
    assert recorded == [(RUN_A,), (RUN_B,)]


def test_a_jump_in_revenue_is_held_back_naming_the_figure_the_factor_and_the_rows(tmp_path: Path):
    warehouse, published = tmp_path / "work.duckdb", tmp_path / "published"
    first = publish_run(build_warehouse(warehouse, RUN_A), published, RUN_A)
    assert first.held is None, "no guard on a first publish"
    build_warehouse(warehouse, RUN_B, amount=50.0)
    second = publish_run(warehouse, published, RUN_B, guard_factor=3.0)
    assert second.held is not None
    assert current_snapshot(published)["run_id"] == RUN_A, "the dashboards still read the first snapshot"
    held = json.loads((published / "held.json").read_text())
    assert held["run_id"] == RUN_B and held["snapshot"] == second.target.name and second.target.exists()
    assert {reason["figure"] for reason in held["reasons"]} == {"net_revenue", "average_order_value"}
    assert held["previous_figures"]["net_revenue"] == 60 and held["figures"]["net_revenue"] == 300
    message = second.message
    assert "Net revenue went from 60 to 300" in message and "factor 3" in message
    assert "erp/order_lines.csv record 3" in message, "the largest line is named by its file and record"
    assert "erp/order_lines.csv (loaded: 4 rows read, 3 loaded, 1 quarantined)" in message
    assert f"crm publish --accept {RUN_B}" in message
    within = publish_run(build_warehouse(warehouse, "cccccccc-run", amount=25.0), published, "cccccccc-run",
                         guard_factor=3.0)  # fmt: skip
    assert within.held is None and current_snapshot(published)["run_id"] == "cccccccc-run"
    assert not (published / "held.json").exists(), "a later run that passed the guard makes the held one obsolete"


def test_accept_publishes_the_held_snapshot_and_rollback_goes_back_one_at_a_time(tmp_path: Path):
    warehouse, published = tmp_path / "work.duckdb", tmp_path / "published"
    first = publish_run(build_warehouse(warehouse, RUN_A), published, RUN_A)
    second = publish_run(build_warehouse(warehouse, RUN_B, amount=100.0), published, RUN_B)
    with pytest.raises(PublishError, match=f"accept {RUN_B}"):
        accept_held(published, RUN_A)
    pointer = accept_held(published, RUN_B[:8])
    assert pointer["snapshot"] == second.target.name == current_snapshot(published)["snapshot"]
    assert not (published / "held.json").exists()
    with pytest.raises(PublishError, match="nothing to accept"):
        accept_held(published, RUN_B)
    assert [entry["run_id"] for entry in read_history(published)["published"]] == [RUN_A, RUN_B]
    back = rollback(published)
    assert back["snapshot"] == first.target.name and back["rolled_back_from"] == RUN_B
    assert [entry["run_id"] for entry in read_history(published)["rolled_back"]] == [RUN_B]
    with pytest.raises(PublishError, match="no earlier snapshot"):
        rollback(published)
    assert current_snapshot(published)["run_id"] == RUN_A
    # the next publish knows the rolled-back run's results were taken back
    third = publish_run(build_warehouse(warehouse, "cccccccc-run", amount=12.0), published, "cccccccc-run")
    with duckdb.connect(str(third.target), read_only=True) as snapshot:
        recorded = [row[0] for row in snapshot.execute("select run_id from meta.published_runs").fetchall()]
    assert sorted(recorded) == [RUN_A, "cccccccc-run"]


def test_what_changed_counts_new_customers_moves_and_model_metrics(tmp_path: Path):
    warehouse, published = tmp_path / "work.duckdb", tmp_path / "published"
    publish_run(build_warehouse(warehouse, RUN_A, buyers=2), published, RUN_A)
    assert what_changed(published)[0].startswith("First publish, nothing to compare with: customers with a purchase 2")
    build_warehouse(
        warehouse, RUN_B, buyers=3, tiers=("gold", "gold", "bronze"), segments=("champions", "at risk", "new"), auc=0.9
    )
    publish_run(warehouse, published, RUN_B)
    sentences = what_changed(published)
    assert "1 new customers with a purchase." in sentences
    assert "Customers with a purchase: 2 → 3 (+50.0%)." in sentences
    assert "1 customers changed RFM segment (most: loyal → at risk 1)." in sentences
    assert "1 customers changed loyalty tier (most: silver → gold 1)." in sentences
    assert "Model churn, auc: 0.80 → 0.90 (+12.5%)." in sentences
    with duckdb.connect(str(current_snapshot(published)["path"]), read_only=True) as snapshot:
        stored = dict(
            snapshot.execute(
                "select name, current_value from meta.run_changes where run_id = ? and kind <> 'model_metric'", [RUN_B]
            ).fetchall()
        )
    assert stored["new_customers"] == 1 and stored["tier_moves"] == 1 and stored["customers"] == 3


def test_formula_like_text_is_counted_in_the_snapshot(tmp_path: Path):
    warehouse = build_warehouse(tmp_path / "work.duckdb", RUN_A)
    with open_warehouse(warehouse, read_only=False) as connection:
        connection.execute(
            "update marts.dim_customers set email_masked = case customer_id when 'C0' then '=HYPERLINK(\"x\",\"y\")' "
            "when 'C1' then '-12.5' when 'C2' then '@SUM(A1)' else email_masked end"
        )
    release = publish_run(warehouse, tmp_path / "published", RUN_A)
    assert release.formula_payloads == [("marts.dim_customers", "email_masked", 2)]
    with duckdb.connect(str(release.target), read_only=True) as snapshot:
        stored = snapshot.execute('select table_name, column_name, "values" from meta.formula_payloads').fetchall()
    assert stored == [("marts.dim_customers", "email_masked", 2)]


def test_the_snapshot_copies_marts_and_scores_and_leaves_raw_and_staging_behind(tmp_path: Path):
    warehouse = build_warehouse(tmp_path / "work.duckdb", RUN_A)
    target = tmp_path / "published" / snapshot_name(date(2026, 6, 30), "abcdef123456")
    with open_warehouse(warehouse, read_only=False) as connection:
        rows = write_snapshot(connection, target, run_id=RUN_A)
    assert target.name == "crm_2026-06-30_abcdef12.duckdb"
    assert rows["marts.dim_customers"] == 4 and rows["ml.rfm_scores"] == 3 and rows["meta.quarantine"] == 1
    assert not list(target.parent.glob("*.partial"))


def test_the_marts_file_is_copied_whole_with_its_latest_writes_and_nothing_but_its_marts(tmp_path: Path):
    warehouse = build_warehouse(tmp_path / "work.duckdb", RUN_A)
    target = tmp_path / "published" / snapshot_name(date(2026, 6, 30), RUN_A)
    with open_warehouse(warehouse, read_only=False) as connection:
        connection.execute("create table marts.fct_late as select range as id from range(1000)")
        connection.execute("create schema marts_db.scratch")
        connection.execute("create table marts_db.scratch.left_over as select 1 as id")
        # still in the marts file's write-ahead log: a copy of the file alone would miss it
        assert (tmp_path / "work_marts.duckdb.wal").stat().st_size > 0
        rows = write_snapshot(connection, target, run_id=RUN_A)
    assert rows["marts.fct_late"] == 1000 and rows["marts.dim_customers"] == 4
    with duckdb.connect(str(target), read_only=True) as snapshot:
        schemas = {row[0] for row in snapshot.execute("select distinct schema_name from duckdb_tables()").fetchall()}
        late = snapshot.execute("select count(*), sum(id) from marts.fct_late").fetchone()
    assert schemas == {"marts", "ml", "meta"}
    assert late == (1000, 499500)


def test_the_pointer_names_the_current_snapshot_and_is_replaced_whole(tmp_path: Path):
    assert current_snapshot(tmp_path) is None
    point_to(tmp_path, tmp_path / "crm_a.duckdb", as_of=date(2026, 6, 29), run_id="run-a")
    point_to(tmp_path, tmp_path / "crm_b.duckdb", as_of=date(2026, 6, 30), run_id="run-b")
    pointer = current_snapshot(tmp_path)
    assert pointer["snapshot"] == "crm_b.duckdb" and pointer["as_of"] == "2026-06-30"
    assert pointer["path"] == str(tmp_path / "crm_b.duckdb")
    assert json.loads((tmp_path / "current.json").read_text())["run_id"] == "run-b"
    assert not (tmp_path / "current.tmp").exists()


def test_pruning_keeps_the_newest_and_never_the_current_one_nor_the_protected(tmp_path: Path):
    now = time.time()
    for age, name in enumerate(["crm_e", "crm_d", "crm_c", "crm_b", "crm_a"]):
        path = tmp_path / f"{name}.duckdb"
        path.write_bytes(b"")
        os.utime(path, (now - age * 60, now - age * 60))
    point_to(tmp_path, tmp_path / "crm_a.duckdb", as_of=date(2026, 6, 30), run_id="rollback")
    removed = prune_snapshots(tmp_path, keep=2, protected={"crm_b.duckdb"})
    assert sorted(path.name for path in removed) == ["crm_c.duckdb"]
    assert sorted(path.name for path in tmp_path.glob("*.duckdb")) == [
        "crm_a.duckdb",
        "crm_b.duckdb",
        "crm_d.duckdb",
        "crm_e.duckdb",
    ]


def test_publishing_never_prunes_the_held_the_current_or_the_previous_snapshot(tmp_path: Path):
    warehouse, published = tmp_path / "work.duckdb", tmp_path / "published"
    first = publish_run(build_warehouse(warehouse, RUN_A), published, RUN_A, keep_snapshots=1)
    second = publish_run(build_warehouse(warehouse, RUN_B, amount=11), published, RUN_B, keep_snapshots=1)
    held = publish_run(build_warehouse(warehouse, "cccccccc-run", amount=500), published, "cccccccc-run",
                       keep_snapshots=1)  # fmt: skip
    assert held.held is not None
    assert {path.name for path in published.glob("crm_*.duckdb")} == {
        first.target.name,
        second.target.name,
        held.target.name,
    }


@pytest.mark.parametrize(
    ("previous", "current", "held"),
    [
        (100.0, 301.0, True),  # up more than 3 times
        (100.0, 33.0, True),  # down more than 3 times
        (100.0, 300.0, False),  # exactly the factor passes
        (100.0, 34.0, False),
        (0.0, 5.0, True),  # from nothing
        (100.0, -50.0, True),  # changed sign
        (None, 5.0, False),  # a figure the previous snapshot could not give
    ],
)
def test_the_guard_holds_a_figure_that_moved_by_more_than_the_factor_either_way(previous, current, held):
    reasons = guard_reasons({"net_revenue": current}, {"net_revenue": previous}, 3.0)
    assert bool(reasons) == held
    assert guard_reasons({"net_revenue": current}, None, 3.0) == [], "no guard on a first publish"


def test_what_changed_follows_each_model_by_the_figure_it_is_judged_by():
    from models_ml.clv_holdout import HOLDOUT_FIGURE
    from pipelines.publish.changes import MAIN_METRICS

    assert MAIN_METRICS["clv"] == (HOLDOUT_FIGURE, True)
    assert MAIN_METRICS["churn"] == ("auc", False)
