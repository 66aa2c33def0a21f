"""The Model quality page run by Streamlit's AppTest on the snapshot the real pipeline published: its figures
against the model runs' own metrics (ml.model_runs), and what it says when a model did not run."""

import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from dashboards.auth import User
from dashboards.theme import Formats
from pipelines.publish.snapshot import current_snapshot, point_to
from pipelines.readiness import CAPABILITIES
from pipelines.settings import PROJECT_ROOT, load_settings
from tests.integration.pages import open_page, point_at

pytestmark = pytest.mark.integration
MODEL_QUALITY = str(PROJECT_ROOT / "dashboards" / "views" / "model_quality.py")
EXECUTIVE = User(username="eve", name="Eve", role="executive", contacts=False)


@pytest.fixture
def snapshot(pipeline_run, monkeypatch) -> dict:
    world, _ = pipeline_run
    point_at(world, monkeypatch)
    return current_snapshot(world.root / "published")


def open_this_page() -> AppTest:
    return open_page(MODEL_QUALITY, EXECUTIVE)


def table_titled(app: AppTest, first_column: str, *columns: str):
    """The shown table whose columns include ``first_column`` and ``columns``."""
    for frame in app.dataframe:
        value = frame.value
        if {first_column, *columns} <= set(value.columns):
            return value
    raise AssertionError(f"no table with the columns {first_column, *columns}")


def published_runs(path: str) -> dict[str, dict]:
    """The snapshot's model runs of its as-of, latest per model, with their metrics parsed."""
    with duckdb.connect(path, read_only=True) as connection:
        rows = connection.execute(
            "select model, score_source, metrics, baseline_metrics from ml.model_runs "
            "where as_of = (select max(as_of) from ml.model_runs) "
            "qualify row_number() over (partition by model order by finished_at desc) = 1"
        ).fetchall()
    return {
        model: {
            "score_source": source,
            "metrics": json.loads(metrics or "{}"),
            "baseline": json.loads(baseline or "null"),
        }
        for model, source, metrics, baseline in rows
    }


def test_the_page_shows_each_model_against_its_baseline_from_the_runs_metrics(snapshot):
    runs = published_runs(snapshot["path"])
    settings = load_settings()
    formats = Formats(settings.currency, settings.display_locale)

    app = open_this_page()

    assert not app.exception, app.exception
    assert not app.error
    said = "\n".join(element.value for element in app.markdown)
    churn = runs["churn"]
    assert f"model **{formats.number(churn['metrics']['auc'], 3)}**" in said
    assert f"baseline {formats.number(churn['baseline']['auc'], 3)}" in said
    clv = runs["clv"]
    assert f"model **{formats.money(clv['metrics']['rmse_spend'], 2)}**" in said
    badges = {
        "model": "Model's scores published",
        "baseline": "Baseline's scores published",
        "none": "No scores this run",
    }
    labels = {
        "clv": "Lifetime value",
        "churn": "Churn risk",
        "rfm": "RFM segments",
        "behaviour_segments": "Behaviour segments",
        "tier_movement": "Tier movement",
        "next_best_offer": "Next best offers",
        "basket_rules": "Basket rules",
    }
    markdown = [element.value for element in app.markdown]
    for model, run in runs.items():  # each model's card: its name, then whose scores are published
        card = markdown.index(f"**{labels[model]}**")
        assert badges[run["score_source"]] in markdown[card + 1], model

    # lifetime value by decile: the run's own decile figures, the model's and the baseline's
    predicted, actual = f"Predicted spend ({settings.currency})", f"Actual spend ({settings.currency})"
    deciles = table_titled(app, "Decile", "Customers", predicted, actual)
    for scorer, figures in (("model", clv["metrics"]), ("baseline", clv["baseline"])):
        shown = deciles[deciles["Scores of"] == scorer].sort_values("Decile")
        expected = sorted(figures["deciles"], key=lambda row: row["decile"])
        assert list(shown["Customers"]) == [row["customers"] for row in expected]
        assert list(shown[predicted]) == pytest.approx([row["predicted"] for row in expected])
        assert list(shown[actual]) == pytest.approx([row["observed"] for row in expected])
        assert sum(shown["Customers"]) == figures["customers"]

    # every model run of the snapshot is in the history
    with duckdb.connect(snapshot["path"], read_only=True) as connection:
        model_runs = connection.execute("select count(*) from ml.model_runs").fetchone()[0]
    history = table_titled(app, "Scores published", "Customers used", "Seconds")
    assert len(history) == model_runs

    # what the data supports: every capability, in words
    readiness = table_titled(app, "Capability", "Status", "Why")
    assert list(readiness["Capability"]) == [capability.name for capability in CAPABILITIES]
    churn_status = readiness.set_index("Capability").loc["Churn risk", "Status"]
    assert ("not ready" in churn_status) == (churn["score_source"] == "none")
    assert not app.info, [element.value for element in app.info]  # no section is missing on the demo data


def copy_published(snapshot: dict, folder: Path) -> Path:
    """A copy of the snapshot made current in ``folder`` (a test may change it; the session's stays as it was)."""
    folder.mkdir()
    copy = folder / Path(snapshot["path"]).name
    shutil.copyfile(snapshot["path"], copy)
    point_to(folder, copy, as_of=date.fromisoformat(snapshot["as_of"]), run_id=snapshot["run_id"])
    return copy


def test_without_a_churn_run_each_churn_section_says_why_in_the_readiness_words(snapshot, tmp_path, monkeypatch):
    copy = copy_published(snapshot, tmp_path / "published")
    reason = "churn needs two 90-day windows of sales history before the as-of date; this data has 70 days"
    with duckdb.connect(str(copy)) as connection:
        for table in ("rpt_model_scorecard", "rpt_model_calibration"):
            connection.execute(f"delete from marts.{table} where model = 'churn'")
        for table in ("rpt_churn_curves", "rpt_churn_drivers"):
            connection.execute(f"delete from marts.{table}")
        connection.execute(
            "update meta.readiness set status = 'not ready', reason = ? where capability = 'churn' and run_id = ?",
            [reason, snapshot["run_id"]],
        )
    monkeypatch.setenv("CRM_PUBLISHED_DIR", str(tmp_path / "published"))

    app = open_this_page()

    assert not app.exception, app.exception
    said = [element.value for element in app.info]
    expected = f"No churn risk model ran for {snapshot['as_of']}: {reason}"
    assert sum(expected in text for text in said) == 4, said  # ROC, gains, calibration, drivers


def test_a_snapshot_from_before_the_marts_says_so_rather_than_failing(snapshot, tmp_path, monkeypatch):
    copy = copy_published(snapshot, tmp_path / "published")
    with duckdb.connect(str(copy)) as connection:
        for (name,) in connection.execute(
            "select table_name from duckdb_tables() where schema_name = 'marts' and table_name like 'rpt_%'"
        ).fetchall():
            connection.execute(f'drop table marts."{name}"')
        connection.execute("drop table meta.readiness")
    monkeypatch.setenv("CRM_PUBLISHED_DIR", str(tmp_path / "published"))

    app = open_this_page()

    assert not app.exception, app.exception
    assert not app.error
    said = [element.value for element in app.info]
    assert any("before the model-quality marts existed" in text for text in said)
    assert any("before readiness was recorded" in text for text in said)


def test_a_model_scored_with_an_earlier_nights_fit_says_which_night_fitted_it(snapshot, tmp_path, monkeypatch):
    """The churn run of this snapshot as if it had scored with the fit of three nights before (model_refit_days);
    then the same snapshot as published before fitted_as_of existed: every model fitted on its own night."""
    as_of = date.fromisoformat(snapshot["as_of"])
    copy = copy_published(snapshot, tmp_path / "published")
    with duckdb.connect(str(copy)) as connection:
        connection.execute(
            "update marts.rpt_model_scorecard set fitted_as_of = ? where model = 'churn'", [date(2026, 6, 27)]
        )
    monkeypatch.setenv("CRM_PUBLISHED_DIR", str(tmp_path / "published"))

    app = open_this_page()

    assert not app.exception, app.exception
    captions = [element.value for element in app.caption]
    assert (
        "Scored with the fit or the holdout check made on the night of 2026-06-27 (the notes say which); the figures "
        "are that night's." in captions
    )
    fitted = table_titled(app, "Model", "Fitted on the night of").set_index("Model")["Fitted on the night of"]
    assert fitted["Churn risk"] == "2026-06-27"
    assert set(fitted.drop("Churn risk")) == {as_of.isoformat()}

    older = copy_published(snapshot, tmp_path / "older")  # the page keeps the first copy open
    with duckdb.connect(str(older)) as connection:
        connection.execute("alter table marts.rpt_model_scorecard drop column fitted_as_of")
    monkeypatch.setenv("CRM_PUBLISHED_DIR", str(tmp_path / "older"))
    app = open_this_page()

    assert not app.exception, app.exception
    assert not any("Scored with the fit" in element.value for element in app.caption)
    fitted = table_titled(app, "Model", "Fitted on the night of")["Fitted on the night of"]
    assert set(fitted) == {as_of.isoformat()}
