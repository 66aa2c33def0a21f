"""The SQL summaries the lifetime-value and churn models read, on a tiny warehouse with hand-checked answers."""

from datetime import date

import duckdb
import pytest

from models_ml import ChurnCutoffs
from pipelines.ml.features import (
    ENGAGEMENT_FEATURES,
    behaviour,
    churn_inputs,
    clv_summary,
    feature_label,
    window_actuals,
)

CUTOFF = date(2026, 1, 31)


@pytest.fixture
def connection():
    connection = duckdb.connect()
    connection.execute("create schema marts")
    connection.execute(
        """create table marts.fct_orders as select * from (values
            ('A', date '2026-01-01', 100.00, 100.00),
            ('A', date '2026-01-01', 20.00, 20.00),   -- same day: one purchase occasion worth 120
            ('A', date '2026-01-11', 50.00, 80.00),   -- partly refunded
            ('A', date '2026-01-21', 0.00, 60.00),    -- wholly refunded: not a purchase occasion (net)
            ('B', date '2026-01-30', 40.00, 40.00),
            ('B', date '2026-02-10', 70.00, 70.00),   -- after the cutoff
            ('C', date '2026-02-02', 10.00, 10.00)    -- first order after the cutoff
        ) as t(customer_id, order_date, net_revenue, gross_revenue)"""
    )
    yield connection
    connection.close()


def test_net_summary_counts_purchase_occasions_before_the_cutoff(connection):
    summary = {row["customer_id"]: row for row in clv_summary(connection, CUTOFF).iter_rows(named=True)}
    assert set(summary) == {"A", "B"}
    a = summary["A"]
    assert (a["frequency"], a["recency"], a["T"]) == (1, 10.0, 30.0)
    assert a["monetary_value"] == pytest.approx(50.0)  # the repeat occasion only
    assert a["average_order_value"] == pytest.approx(85.0)  # (120 + 50) / 2
    b = summary["B"]
    assert (b["frequency"], b["recency"], b["T"], b["monetary_value"]) == (0, 0.0, 1.0, None)


def test_gross_summary_reads_amounts_before_returns(connection):
    summary = {row["customer_id"]: row for row in clv_summary(connection, CUTOFF, "gross").iter_rows(named=True)}
    a = summary["A"]
    assert (a["frequency"], a["recency"]) == (2, 20.0)
    assert a["monetary_value"] == pytest.approx(70.0)  # (80 + 60) / 2
    with pytest.raises(ValueError, match="spend must be one of"):
        clv_summary(connection, CUTOFF, "list price")


def test_window_actuals_count_what_happened_after_the_cutoff(connection):
    actuals = {row["customer_id"]: row for row in window_actuals(connection, CUTOFF, 15).iter_rows(named=True)}
    assert actuals == {
        "B": {"customer_id": "B", "purchases": 1, "spend": 70.0},
        "C": {"customer_id": "C", "purchases": 1, "spend": 10.0},
    }


# --- Behaviour and engagement, and what the churn run loads -----------------------------------------------------


@pytest.fixture
def touchpoints():
    connection = duckdb.connect()
    connection.execute("create schema marts")
    connection.execute("create schema ml")
    connection.execute(
        """create table marts.fct_orders as select * from (values
            ('A', date '2026-01-05', 'web', 30.00, 30.00, 0.00),
            ('A', date '2026-01-25', 'store', 50.00, 60.00, 10.00),
            ('A', date '2026-02-10', 'web', 20.00, 20.00, 0.00),
            ('B', date '2025-12-01', 'phone', 40.00, 40.00, 0.00)
        ) as t(customer_id, order_date, sales_channel, net_revenue, gross_amount, refund_amount)"""
    )
    connection.execute(
        """create table marts.fct_interactions as select * from (values
            ('A', 'web_session', 'web_session', date '2026-01-20'),
            ('A', 'web_session', 'web_session', date '2026-01-01'),  -- 30 days before: in the 30-day count
            ('A', 'web_session', 'web_session', date '2025-12-15'),
            ('A', 'web_session', 'web_session', date '2025-10-01'),  -- older than 90 days
            ('A', 'open', 'email', date '2026-01-10'),
            ('A', 'open', 'email', date '2025-09-01'),
            ('A', 'open', 'email', date '2026-02-05'),  -- after the cutoff
            ('A', 'click', 'email', date '2026-01-10'),
            ('A', 'click', 'sms', date '2026-01-11'),  -- a text message's link, not an email's
            (null, 'web_session', 'web_session', date '2026-01-30')  -- nobody's: reaches no customer
        ) as t(customer_id, interaction_type, channel_id, occurred_date)"""
    )
    connection.execute(
        """create table marts.fct_support_cases (customer_id varchar, satisfaction_score integer,
        closed_at timestamp, opened_date date)"""
    )
    connection.execute(
        """create table marts.fct_order_lines (customer_id varchar, product_id varchar, order_date date,
        net_revenue decimal(18, 2))"""
    )
    connection.execute("create table marts.dim_products (product_id varchar, department_name varchar)")
    connection.execute("create table ml.clv_scores (customer_id varchar, model_run_id varchar, as_of date)")
    connection.execute("create table ml.model_runs (model_run_id varchar, parameters json)")
    yield connection
    connection.close()


def test_engagement_as_of_the_cutoff_is_counted_per_window_and_0_or_unknown_without_any(touchpoints):
    rows = {row["customer_id"]: row for row in behaviour(touchpoints, CUTOFF).iter_rows(named=True)}
    engagement = ("web_sessions_30d", "web_sessions_90d", "days_since_web_session", "email_opens_90d",
                  "email_clicks_90d", "days_since_email_open")  # fmt: skip
    assert {name: rows["A"][name] for name in engagement} == {
        "web_sessions_30d": 2,
        "web_sessions_90d": 3,
        "days_since_web_session": 11,
        "email_opens_90d": 1,
        "email_clicks_90d": 1,
        "days_since_email_open": 21,
    }
    assert {name: rows["B"][name] for name in engagement} == {
        "web_sessions_30d": 0,
        "web_sessions_90d": 0,
        "days_since_web_session": None,
        "email_opens_90d": 0,
        "email_clicks_90d": 0,
        "days_since_email_open": None,
    }
    assert set(engagement) <= set(ENGAGEMENT_FEATURES)
    assert all(feature_label(name) != name.replace("_", " ") for name in ENGAGEMENT_FEATURES), "each has words"


def test_the_churn_run_loads_its_cutoffs_from_the_last_order_and_who_bought_after_each(touchpoints):
    inputs = churn_inputs(touchpoints, date(2026, 3, 31), 20)
    # the last order is on 10 February: the anchor is the day after, the test cutoff 20 days before it
    assert inputs.cutoffs == ChurnCutoffs(train=date(2026, 1, 2), test=date(2026, 1, 22), anchor=date(2026, 2, 11))
    assert inputs.train.behaviour["customer_id"].to_list() == ["B"]  # A first ordered on 5 January
    assert inputs.train.bought.to_list() == ["A"] and inputs.test.bought.to_list() == ["A"]
    assert inputs.test.behaviour["customer_id"].to_list() == ["A", "B"]
    assert inputs.test.summary["customer_id"].to_list() == ["A", "B"]
    assert inputs.current.bought is None and inputs.current.cutoff == date(2026, 3, 31)
    assert inputs.published_fit is None, "no lifetime-value run published a fit"
