"""The whole nightly graph, materialised for real by Dagster (ingest, dbt build, RFM, publish) on small data."""

import duckdb
import pytest

from pipelines.publish.snapshot import current_snapshot
from tests.conftest import open_warehouse

pytestmark = pytest.mark.integration


def snapshot_connection(world) -> duckdb.DuckDBPyConnection:
    pointer = current_snapshot(world.root / "published")
    assert pointer is not None, "the run published no snapshot"
    return duckdb.connect(pointer["path"], read_only=True)


def test_the_run_succeeds_and_every_asset_materialises(pipeline_run):
    _, result = pipeline_run
    failures = [event.step_key for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    assert result.success, f"failed steps: {failures}"
    keys = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    assert {"raw/erp/order_lines", "marts/dim_customers", "marts/fct_order_lines", "ml/rfm_scores"} <= keys
    assert "published_snapshot" in keys


def test_every_dbt_test_ran_and_passed(pipeline_run):
    _, result = pipeline_run
    evaluations = [
        event.event_specific_data for event in result.all_events if event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    assert len(evaluations) >= 40, "expected the dbt tests to run as asset checks"
    # every dbt test passes; the models' beats_baseline warnings are judged in test_models
    assert [e.check_name for e in evaluations if not e.passed and e.check_name != "beats_baseline"] == []


def test_raw_tables_hold_every_exported_row(pipeline_run):
    world, _ = pipeline_run
    with open_warehouse(world.root / "warehouse" / "crm.duckdb") as connection:
        ledger = dict(connection.execute("select file, rows_read from meta.load_ledger").fetchall())
        loaded = connection.execute(
            "select sum(rows_loaded) + sum(rows_quarantined), sum(rows_read) from meta.load_ledger"
        ).fetchone()
    assert loaded[0] == loaded[1]
    for file, rows in world.rows.items():
        if file in ledger:
            assert ledger[file] == rows, file
    assert "erp/order_lines.csv" in ledger


def test_published_marts_reconcile_with_the_exports(pipeline_run):
    world, _ = pipeline_run
    with snapshot_connection(world) as connection:
        customers = connection.execute(
            "select count(*) from marts.dim_customers where customer_type = 'customer'"
        ).fetchone()[0]
        lines = connection.execute("select count(*) from marts.fct_order_lines").fetchone()[0]
        exported_net = connection.execute("select sum(net_amount) from marts.fct_order_lines").fetchone()[0]
    assert customers == world.rows["erp/customers.csv"]
    assert lines == world.rows["erp/order_lines.csv"]
    exported = duckdb.sql(
        f"""select sum(replace(line_amount, ',', '.')::decimal(18,2))
        from read_csv('{world.landing / "erp" / "order_lines.csv"}', delim=';', all_varchar=true)"""
    ).fetchall()[0][0]
    refunds = duckdb.sql(
        f"""select coalesce(sum(replace(refund_amount, ',', '.')::decimal(18,2)), 0)
        from read_csv('{world.landing / "erp" / "returns.csv"}', delim=';', all_varchar=true)
        where returned_on < '2026-06-30'"""
    ).fetchall()[0][0]
    assert exported_net == exported - refunds


def test_rfm_scores_every_customer_who_bought_once_with_a_named_segment(pipeline_run):
    world, _ = pipeline_run
    with snapshot_connection(world) as connection:
        buyers = connection.execute("select count(*) from marts.dim_customers where has_purchased").fetchone()[0]
        scored, unnamed = connection.execute(
            "select count(*), count(*) filter (where segment is null) from ml.rfm_scores"
        ).fetchone()
        runs = connection.execute("select rows_used from ml.model_runs where model = 'rfm'").fetchall()
    assert scored == buyers > 0
    assert unnamed == 0
    assert runs == [(buyers,)]


def test_the_snapshot_holds_marts_and_scores_but_never_raw_or_staging(pipeline_run):
    world, _ = pipeline_run
    with snapshot_connection(world) as connection:
        schemas = {
            row[0]
            for row in connection.execute("select distinct table_schema from information_schema.tables").fetchall()
        }
    assert {"marts", "ml", "meta"} <= schemas
    assert not schemas & {"raw", "staging", "intermediate"}
