"""Each dashboard page run by Streamlit's AppTest on the snapshot the real pipeline published."""

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from pipelines.publish.snapshot import current_snapshot
from pipelines.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration
OVERVIEW = str(PROJECT_ROOT / "dashboards" / "pages" / "overview.py")


def test_overview_shows_headline_figures_and_every_segment_of_the_snapshot(pipeline_run, monkeypatch):
    world, _ = pipeline_run
    for name, value in world.environ.items():
        monkeypatch.setenv(name, value)
    app = AppTest.from_file(OVERVIEW, default_timeout=60).run()
    assert not app.exception, app.exception
    metrics = {metric.label: metric.value for metric in app.metric}
    with duckdb.connect(current_snapshot(world.root / "published")["path"], read_only=True) as connection:
        buyers = connection.execute("select count(*) from marts.dim_customers where has_purchased").fetchone()[0]
        segments = {row[0] for row in connection.execute("select segment from ml.rfm_segments").fetchall()}
    assert metrics["Customers (ever bought)"] == f"{buyers:,}"
    shown = set(app.dataframe[0].value["segment"])
    assert shown == segments and len(segments) >= 5
    assert "As of 2026-06-30" in app.caption[0].value
    with duckdb.connect(current_snapshot(world.root / "published")["path"], read_only=True) as connection:
        sources = dict(
            connection.execute(
                "select model, score_source from ml.model_runs where model in ('clv', 'churn')"
            ).fetchall()
        )
    said = [element.value for element in [*app.success, *app.warning]]
    for model, name in (("clv", "Lifetime value"), ("churn", "Churn risk")):
        (line,) = [text for text in said if text.startswith(name)]
        assert ("the model's scores" in line) == (sources[model] == "model"), line


def test_overview_says_what_to_do_when_nothing_is_published(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_PUBLISHED_DIR", str(tmp_path / "nothing"))
    app = AppTest.from_file(OVERVIEW, default_timeout=30).run()
    assert not app.exception
    assert "make run" in app.info[0].value
