"""The SQL summaries the lifetime-value and churn models read, on a tiny warehouse with hand-checked answers."""

from datetime import date

import duckdb
import pytest

from pipelines.ml.features import clv_summary, window_actuals

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
