"""The Data health page run by Streamlit's AppTest on the snapshot the real pipeline published: its figures against
the bookkeeping the run recorded (meta.load_ledger, meta.quarantine, fct_row_exclusions, meta.validation_results,
meta.dbt_test_results), the Dagster run history read from a real instance, and what it says when data is missing."""

import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from dashboards.auth import User
from pipelines.publish.changes import change_sentences
from pipelines.publish.snapshot import current_snapshot, point_to
from pipelines.resources import AS_OF_TAG
from pipelines.settings import PROJECT_ROOT
from tests.integration.pages import open_page, point_at

pytestmark = pytest.mark.integration
DATA_HEALTH = str(PROJECT_ROOT / "dashboards" / "views" / "data_health.py")
ANALYST = User(username="ana", name="Ana", role="analyst", contacts=False)


@pytest.fixture
def snapshot(pipeline_run, monkeypatch) -> dict:
    world, _ = pipeline_run
    point_at(world, monkeypatch)
    return current_snapshot(world.root / "published")


def open_this_page() -> AppTest:
    return open_page(DATA_HEALTH, ANALYST)


def table_with(app: AppTest, *columns: str):
    for frame in app.dataframe:
        if set(columns) <= set(frame.value.columns):
            return frame.value
    raise AssertionError(f"no table with the columns {columns}")


def test_the_page_shows_every_file_check_and_change_the_run_recorded(snapshot):
    with duckdb.connect(snapshot["path"], read_only=True) as connection:
        ledger = dict(connection.execute("select file, rows_read from meta.load_ledger").fetchall())
        quarantined = dict(connection.execute("select file, rows_quarantined from meta.load_ledger").fetchall())
        excluded = dict(
            connection.execute("select source_file, count(*) from marts.fct_row_exclusions group by all").fetchall()
        )
        expectations, failing = connection.execute(
            "select count(*), count(*) filter (where not success) from meta.validation_results"
        ).fetchone()
        tests = connection.execute(
            "select status from meta.dbt_test_results where run_id = ?", [snapshot["run_id"]]
        ).fetchall()
        sources = connection.execute(
            "select count(*) from meta.source_freshness where run_id = ?", [snapshot["run_id"]]
        ).fetchone()[0]

    app = open_this_page()

    assert not app.exception, app.exception
    assert not app.error
    files = table_with(app, "File", "Rows read", "Quarantined", "Excluded")
    assert dict(zip(files["File"], files["Rows read"], strict=True)) == ledger
    assert dict(zip(files["File"], files["Quarantined"], strict=True)) == quarantined
    assert {file: count for file, count in zip(files["File"], files["Excluded"], strict=True) if count} == excluded

    results = table_with(app, "Result", "Expectation", "Rows against it")
    assert len(results) == expectations  # one run: every source's latest validation is this run's
    assert (results["Result"] == "✗ fails").sum() == failing
    assert results["Result"].iloc[0] == ("✗ fails" if failing else "✓ holds")  # failures first

    shown_tests = table_with(app, "Result", "Step", "Test", "Failing rows")
    assert len(shown_tests) == len(tests) > 0
    not_passing = sum(status != "pass" for (status,) in tests)
    assert (~shown_tests["Result"].str.endswith("pass")).sum() == not_passing
    assert list(shown_tests["Result"].str.endswith("pass")) == sorted(shown_tests["Result"].str.endswith("pass"))

    assert len(table_with(app, "State", "Source", "Latest file")) == sources > 0

    published = table_with(app, "Published", "As of", "Run", "Customers")
    now = published[published[""] == "● now"]
    assert list(now["Run"]) == [snapshot["run_id"][:8]]
    with duckdb.connect(snapshot["path"], read_only=True) as connection:
        buyers = connection.execute("select count(*) from marts.dim_customers where has_purchased").fetchone()[0]
    assert now["Customers"].iloc[0] == buyers

    said = "\n".join(element.value for element in app.markdown)
    for sentence in change_sentences(snapshot["changes"]):
        assert sentence in said
    # the fixture's run used a throwaway Dagster instance: the page says there is no history, and carries on
    assert any("No run history in the Dagster folder" in element.value for element in app.info)


def test_the_nightly_runs_are_read_from_the_dagster_instance(snapshot, tmp_path, monkeypatch):
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")

    @dg.asset
    def something() -> int:
        return 1

    @dg.asset
    def broken(something: int) -> int:
        raise ValueError("broken on purpose")

    with dg.DagsterInstance.from_config(str(home)) as instance:
        for selection, as_of in (([something], "2026-06-29"), ([something, broken], "2026-06-30")):
            job = dg.Definitions(assets=selection, jobs=[dg.define_asset_job("nightly")]).resolve_job_def("nightly")
            job.execute_in_process(instance=instance, tags={AS_OF_TAG: as_of}, raise_on_error=False)
    monkeypatch.setenv("CRM_DAGSTER_HOME", str(home))

    app = open_this_page()

    assert not app.exception, app.exception
    runs = table_with(app, "Outcome", "As of", "Started", "Finished")
    assert list(runs["As of"]) == ["2026-06-30", "2026-06-29"]
    assert list(runs["Outcome"]) == ["✗ failure", "✓ success"]
    assert list(runs["Failed step"]) == ["broken", ""]


def test_a_snapshot_without_the_health_records_says_so_rather_than_failing(snapshot, tmp_path, monkeypatch):
    folder = tmp_path / "published"
    folder.mkdir()
    copy = folder / Path(snapshot["path"]).name
    shutil.copyfile(snapshot["path"], copy)
    point_to(folder, copy, as_of=date.fromisoformat(snapshot["as_of"]), run_id=snapshot["run_id"])
    with duckdb.connect(str(copy)) as connection:
        for table in ("marts.rpt_file_health", "meta.source_freshness", "meta.dbt_test_results", "meta.readiness"):
            connection.execute(f"drop table if exists {table}")
        connection.execute("delete from meta.validation_results")
    monkeypatch.setenv("CRM_PUBLISHED_DIR", str(folder))

    app = open_this_page()

    assert not app.exception, app.exception
    assert not app.error
    said = "\n".join(element.value for element in app.info)
    for what in ("source freshness", "per-file health", "the dbt test results"):
        assert f"published before {what} was recorded" in said
    assert "No expectation was checked" in said
    assert "recorded no comparison" in said  # the copy's pointer has no changes
