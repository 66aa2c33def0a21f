"""The overview's "Scores this run" reads the snapshot's own as-of date, one line per model, on a hand-made snapshot."""

import json
from pathlib import Path

import duckdb
from streamlit.testing.v1 import AppTest

from pipelines.settings import PROJECT_ROOT

OVERVIEW = str(PROJECT_ROOT / "dashboards" / "pages" / "overview.py")
RUNS = [  # model, as_of, finished_at, score_source, notes
    ("clv", "2026-03-31", "2026-04-01 03:00", "none", "an earlier as-of date"),
    ("churn", "2026-03-31", "2026-04-01 03:00", "baseline", "an earlier as-of date"),
    ("clv", "2026-06-30", "2026-07-01 02:00", "none", "an older run of this as-of date"),
    ("clv", "2026-06-30", "2026-07-01 05:00", "model", "the latest run of this as-of date"),
    ("churn", "2026-06-30", "2026-07-01 05:00", "baseline", "the latest run of this as-of date"),
    ("rfm", "2026-06-30", "2026-07-01 05:00", "model", "not a model the overview judges"),
]


def _publish(published: Path, as_of: str) -> None:
    published.mkdir()
    with duckdb.connect(str(published / "crm_test.duckdb")) as connection:
        connection.execute("create schema marts")
        connection.execute("create schema ml")
        connection.execute(
            """create table marts.dim_customers as select * from (values
            (true, 120.0, 300.0, 3, 'silver', 'EUR'), (true, 0.0, 50.0, 1, 'bronze', 'EUR'))
            as t(has_purchased, trailing_12m_net_revenue, lifetime_net_revenue, lifetime_orders, loyalty_tier,
                 reporting_currency_code)"""
        )
        connection.execute(
            """create table ml.rfm_segments as select * from (values
            ('champions', 1, 0.5, 300.0, 0.85, 10.0, 3.0, date '2026-06-30'),
            ('hibernating', 1, 0.5, 50.0, 0.15, 200.0, 1.0, date '2026-06-30'),
            ('old segment', 9, 1.0, 9.0, 1.0, 9.0, 9.0, date '2026-03-31'))
            as t(segment, customers, customer_share, monetary, monetary_share, average_recency_days,
                 average_frequency, as_of)"""
        )
        connection.execute(
            """create table ml.model_runs (model_run_id varchar, model varchar, as_of date, finished_at timestamp,
            score_source varchar, beats_baseline boolean, metrics json, baseline_metrics json, notes varchar)"""
        )
        for index, (model, day, finished, source, notes) in enumerate(RUNS):
            connection.execute(
                "insert into ml.model_runs values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [f"{model}-{index}", model, day, finished, source, source == "model", "{}", "{}", notes],
            )
    pointer = {"snapshot": "crm_test.duckdb", "as_of": as_of, "run_id": "run-0123456789", "published_at": "now"}
    (published / "current.json").write_text(json.dumps(pointer), encoding="utf-8")


def test_scores_this_run_shows_the_latest_run_of_each_model_at_the_snapshots_as_of_date(tmp_path, monkeypatch):
    _publish(tmp_path / "published", "2026-06-30")
    monkeypatch.setenv("CRM_PUBLISHED_DIR", str(tmp_path / "published"))
    app = AppTest.from_file(OVERVIEW, default_timeout=30).run()
    assert not app.exception, app.exception
    said = [element.value for element in [*app.success, *app.warning]]
    assert [text for text in said if text.startswith("Lifetime value")] == [
        "Lifetime value: the model's scores (no holdout error of spend for the model this run)."
    ]
    (churn,) = [text for text in said if text.startswith("Churn risk")]
    assert "baseline's scores" in churn and "the latest run of this as-of date" in churn
    assert not any("earlier as-of date" in text or "older run" in text for text in said)
    assert set(app.dataframe[0].value["segment"]) == {"champions", "hibernating"}


def test_a_snapshot_without_model_runs_for_its_date_says_so(tmp_path, monkeypatch):
    _publish(tmp_path / "published", "2026-09-30")
    monkeypatch.setenv("CRM_PUBLISHED_DIR", str(tmp_path / "published"))
    app = AppTest.from_file(OVERVIEW, default_timeout=30).run()
    assert not app.exception, app.exception
    assert not app.success and not app.warning
    assert any("No lifetime-value or churn model ran for 2026-09-30" in element.value for element in app.info)
