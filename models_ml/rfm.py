"""RFM: recency, frequency and monetary quintile scores, and named segments.

The scores follow Hughes' RFM (A. M. Hughes, *Strategic Database Marketing*, 1994): each customer gets a score
of 1 (worst) to 5 (best) on each of recency, frequency and monetary value, from the quintile they fall in. The
named segments are the widely used eleven-segment map on the recency and frequency scores (champions, loyal
customers, potential loyalists, new customers, promising, need attention, about to sleep, at risk, can't lose
them, hibernating, lost). Segment sizes and value, and the moves between segments from one run to the next, are
dbt models over the scores (marts.rpt_segment_profiles, marts.rpt_segment_migration).
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from models_ml.protocol import ModelOutput, Verdict
from models_ml.validation import validate_columns

REQUIRED_COLUMNS = ("customer_id", "days_since_last_order", "frequency", "monetary")

# (recency score, frequency score) -> segment: the standard RFM segment map. Monetary value refines the cell but
# does not move the segment, as in the usual map.
_SEGMENT_GRID = {
    "champions": [(r, f) for r in (5,) for f in (4, 5)],
    "loyal customers": [(r, f) for r in (3, 4) for f in (4, 5)],
    "potential loyalists": [(r, f) for r in (4, 5) for f in (2, 3)],
    "new customers": [(5, 1)],
    "promising": [(4, 1)],
    "need attention": [(3, 3)],
    "about to sleep": [(3, 1), (3, 2)],
    "at risk": [(r, f) for r in (1, 2) for f in (3, 4)],
    "can't lose them": [(1, 5), (2, 5)],
    "hibernating": [(1, 2), (2, 1), (2, 2)],
    "lost": [(1, 1)],
}
SEGMENTS = tuple(_SEGMENT_GRID)
SEGMENT_BY_CELL = {cell: segment for segment, cells in _SEGMENT_GRID.items() for cell in cells}
assert len(SEGMENT_BY_CELL) == 25, "every (recency, frequency) cell must have exactly one segment"


def quintile_score(values: pl.Expr, higher_is_better: bool = True) -> pl.Expr:
    """Score 1-5 by quintile of rank, equal values taking the lowest rank of their group.

    Equal values always share a score, so with many ties the quintiles are unequal in size rather than splitting
    equal customers arbitrarily; taking the lowest rank means everyone who bought once (most customers) scores
    frequency 1, as the segment map expects of new customers.
    """
    ranked = (values if higher_is_better else -values).rank(method="min")
    return (((ranked - 0.5) / values.len() * 5).floor() + 1).clip(1, 5).cast(pl.Int8)


def score_rfm(customers: pl.DataFrame) -> pl.DataFrame:
    """Score customers on recency, frequency and monetary value and name their segment.

    Parameters
    ----------
    customers
        One row per customer who has ordered: ``customer_id``, ``days_since_last_order`` (recency, days before
        the cutoff), ``frequency`` (orders in the RFM window) and ``monetary`` (net revenue in the window). A null
        frequency or monetary value means no order in the window and scores as 0.

    Returns
    -------
    polars.DataFrame
        The input columns plus ``recency_score``, ``frequency_score``, ``monetary_score`` (1-5, 5 best),
        ``rfm_cell`` (e.g. ``"545"``) and ``segment``.
    """
    validate_columns(
        customers, REQUIRED_COLUMNS, "rfm", numeric=REQUIRED_COLUMNS[1:], not_null=("days_since_last_order",),
        advice="score only customers who have ordered",
    )  # fmt: skip
    scored = customers.with_columns(pl.col("frequency", "monetary").fill_null(0)).with_columns(
        recency_score=quintile_score(pl.col("days_since_last_order"), higher_is_better=False),
        frequency_score=quintile_score(pl.col("frequency")),
        monetary_score=quintile_score(pl.col("monetary")),
    )
    segments = pl.DataFrame(
        {
            "recency_score": [cell[0] for cell in SEGMENT_BY_CELL],
            "frequency_score": [cell[1] for cell in SEGMENT_BY_CELL],
            "segment": list(SEGMENT_BY_CELL.values()),
        },
        schema={"recency_score": pl.Int8, "frequency_score": pl.Int8, "segment": pl.String},
    )
    return scored.join(segments, on=["recency_score", "frequency_score"], how="left").with_columns(
        rfm_cell=pl.concat_str([pl.col("recency_score"), pl.col("frequency_score"), pl.col("monetary_score")])
    )


def run_rfm(customers: pl.DataFrame, *, as_of: date, window_days: int) -> ModelOutput:
    """The RFM run: every customer who has ordered scored and named (``ml.rfm_scores``).

    Parameters
    ----------
    customers
        As for :func:`score_rfm`, frequency and monetary value over the ``window_days`` before ``as_of``.
    """
    scored = score_rfm(customers)
    return ModelOutput(
        {"rfm_scores": scored},
        Verdict("model", None, {"segments": scored["segment"].n_unique()}),
        parameters={"rfm_window_days": window_days, "method": "quintiles of rank, ties at the lowest"},
        rows_used=customers.height,
        training_from=as_of - timedelta(days=window_days),
        training_to=as_of,
    )
