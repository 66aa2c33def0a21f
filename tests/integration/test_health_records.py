"""What the night records for the Model quality and Data health pages: readiness, dbt test results and source
freshness per run (meta), the curves of the model runs (ml.model_runs), and how the latest runs ended."""

import json
import os
from collections import Counter
from datetime import UTC, datetime

import dagster as dg
import duckdb
import pytest

from pipelines import sql
from pipelines.ingest.contracts import BUILT_IN_DIR, load_contracts
from pipelines.publish import snapshot
from pipelines.publish.health import short_message
from pipelines.readiness import CAPABILITIES
from pipelines.resources import AS_OF_TAG
from pipelines.runs import recent_runs
from pipelines.settings import load_settings
from pipelines.transform.project import DBT_PROJECT_DIR
from tests.conftest import AS_OF, open_warehouse

pytestmark = pytest.mark.integration

DBT_STEPS = ("dbt_models", "dbt_score_models")


@pytest.fixture(scope="module")
def night(pipeline_run):
    world, result = pipeline_run
    assert result.success
    connection = open_warehouse(world.root / "warehouse" / "crm.duckdb")
    yield world, result, connection
    connection.close()


def test_every_capability_has_its_verdict_for_the_run(night):
    _world, result, connection = night
    rows = connection.execute(
        "select capability, status, reason, as_of from meta.readiness where run_id = ?", [result.run_id]
    ).fetchall()
    assert sorted(row[0] for row in rows) == sorted(capability.key for capability in CAPABILITIES)
    assert {row[1] for row in rows} <= {"ready", "partial", "not ready"} and {row[3] for row in rows} == {AS_OF}
    orders = connection.execute("select count(*) from raw.erp__orders where ordered_at < ?", [AS_OF]).fetchone()[0]
    star_schema = next(row for row in rows if row[0] == "star_schema")
    assert star_schema[1] == "ready" and star_schema[2].startswith(f"{orders:,} orders"), star_schema


def _dbt_tests_the_run_reported(result) -> dict[str, dict[str, str]]:
    """Per dbt step, each test's unique id and status as dagster-dbt reported them while dbt ran (checks and
    observations, from dbt's event stream, not from its run_results.json)."""
    reported: dict[str, dict[str, str]] = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            metadata = event.event_specific_data.metadata
        elif event.event_type_value == "ASSET_OBSERVATION":
            metadata = event.event_specific_data.asset_observation.metadata
        else:
            continue
        unique_id = getattr(metadata.get("unique_id"), "value", None)
        if unique_id and unique_id.startswith("test."):
            reported.setdefault(event.step_key, {})[unique_id] = metadata["status"].value
    return reported


def test_each_dbt_test_of_each_step_has_its_result(night):
    _world, result, connection = night
    reported = _dbt_tests_the_run_reported(result)
    assert set(reported) == set(DBT_STEPS)
    every_test = set()
    for step in DBT_STEPS:
        [target] = sorted((DBT_PROJECT_DIR / "target").glob(f"{step}-{result.run_id[:7]}-*"))
        nodes = json.loads((target / "manifest.json").read_text())["nodes"]
        every_test |= {unique_id for unique_id, node in nodes.items() if node["resource_type"] == "test"}
        rows = connection.execute(
            "select test_name, status from meta.dbt_test_results where run_id = ? and step = ?", [result.run_id, step]
        ).fetchall()
        assert sorted(name for name, _ in rows) == sorted(nodes[unique_id]["name"] for unique_id in reported[step])
        recorded = Counter(status for _, status in rows)
        seen = Counter(reported[step].values())
        assert (recorded["pass"], recorded["warn"]) == (seen["pass"], seen["warn"]), step
        assert recorded["pass"] > 0
    # every test node of the project ran in one step or the other, once
    assert sum(len(tests) for tests in reported.values()) == len(every_test)
    missing_model = connection.execute(
        "select count(*) from meta.dbt_test_results where run_id = ? and model is null", [result.run_id]
    ).fetchone()[0]
    assert missing_model == 0, "every test names the model it tests"


def test_a_test_message_keeps_its_words_but_not_the_values_or_paths():
    assert short_message("pass", "") is None
    assert short_message("fail", "Got 3 results, configured to fail if != 0") == (
        "Got 3 results, configured to fail if != 0"
    )
    error = (
        "Runtime Error in test not_null_fct_orders_customer_id (models/marts/_marts__models.yml)\n"
        "  Conversion Error: Could not convert string 'Jane Doe, 12 Main St' to INT32 in \"/srv/crm/warehouse.duckdb\""
    )
    assert short_message("error", error) == "Conversion Error: Could not convert string '…' to INT32 in \"…\""


def test_each_contract_has_its_freshness_with_files_named_in_the_landing_zone(night, monkeypatch):
    world, result, connection = night
    for name, value in world.environ.items():
        monkeypatch.setenv(name, value)
    contracts = load_contracts(BUILT_IN_DIR, load_settings().contracts_dir)
    rows = connection.execute(
        "select source_table, late, last_file, last_file_at, message from meta.source_freshness where run_id = ?",
        [result.run_id],
    ).fetchall()
    assert sorted(row[0] for row in rows) == sorted(contract.name for contract in contracts)
    with_files = [row for row in rows if row[2] is not None]
    assert with_files, "the small world has files"
    for source_table, late, last_file, last_file_at, message in with_files:
        file = world.landing / last_file
        assert file.is_file() and not os.path.isabs(last_file), last_file
        modified = datetime.fromtimestamp(file.stat().st_mtime, UTC).replace(tzinfo=None)
        assert abs((last_file_at - modified).total_seconds()) < 1, (source_table, last_file_at, modified)
        assert last_file in message and str(world.root) not in message, message
        assert late is False, "files generated for this session are not late"


def test_the_model_runs_hold_the_curves_the_pages_draw(night):
    _world, result, connection = night
    runs = {
        model: (json.loads(metrics), json.loads(baseline))
        for model, metrics, baseline in connection.execute(
            "select model, metrics, baseline_metrics from ml.model_runs where run_id = ? and model in ('churn', 'clv')",
            [result.run_id],
        ).fetchall()
    }
    for figures in runs["churn"]:
        roc, gains = figures["roc"], figures["gains"]
        assert 2 <= len(roc) <= 51 and roc[0] == {"fpr": 0.0, "tpr": 0.0} and roc[-1] == {"fpr": 1.0, "tpr": 1.0}
        assert [row["share_contacted"] for row in gains] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
        assert gains[-1]["share_of_churners"] == 1.0
    for figures in runs["clv"]:
        deciles = figures["deciles"]
        assert [row["decile"] for row in deciles] == list(range(1, 11))
        assert sum(row["customers"] for row in deciles) == figures["customers"]
        observed = sum(row["customers"] * row["observed"] for row in deciles)
        assert observed == pytest.approx(figures["total_actual_spend"])


def test_the_health_tables_are_published(night):
    world, result, _ = night
    pointer = snapshot.current_snapshot(world.root / "published")
    with open_warehouse(world.root / "warehouse" / "crm.duckdb") as warehouse:
        for table in snapshot.HEALTH_TABLES:
            expected = warehouse.execute(
                f"select count(*) from {sql.qualified('meta', table)} where run_id = ?", [result.run_id]
            ).fetchone()[0]
            assert pointer["rows"][f"meta.{table}"] == expected > 0, table
    with duckdb.connect(pointer["path"], read_only=True) as published:
        statuses = published.execute("select distinct status from meta.dbt_test_results").fetchall()
        assert {status for (status,) in statuses} <= {"pass", "warn", "fail", "error", "skipped"}


def test_recent_runs_say_how_each_run_ended_and_which_step_failed():
    @dg.asset
    def loaded() -> None:
        return None

    @dg.asset(deps=[loaded])
    def broken() -> None:
        raise ValueError("no luck")

    good = dg.define_asset_job("nightly", selection=[loaded])
    bad = dg.define_asset_job("nightly", selection=[loaded, broken])
    with dg.DagsterInstance.ephemeral() as instance:
        ok = dg.Definitions(assets=[loaded, broken], jobs=[good]).resolve_job_def("nightly")
        first = ok.execute_in_process(instance=instance, tags={AS_OF_TAG: "2026-06-29"})
        failing = dg.Definitions(assets=[loaded, broken], jobs=[bad]).resolve_job_def("nightly")
        second = failing.execute_in_process(instance=instance, tags={AS_OF_TAG: "2026-06-30"}, raise_on_error=False)
        runs = recent_runs(instance, "nightly")
        assert recent_runs(instance, "nightly", limit=1) == runs[:1]
    assert [(run["run_id"], run["as_of"], run["outcome"], run["failed_step"]) for run in runs] == [
        (second.run_id, "2026-06-30", "failure", "broken"),
        (first.run_id, "2026-06-29", "success", None),
    ]
    assert all(run["started"] <= run["finished"] for run in runs)
