"""RFM: recency, frequency and monetary quintile scores, and named segments.

The scores follow Hughes' RFM (A. M. Hughes, *Strategic Database Marketing*, 1994): each customer gets a score
of 1 (worst) to 5 (best) on each of recency, frequency and monetary value, from the quintile they fall in. The
named segments are the widely used eleven-segment map on the recency and frequency scores (champions, loyal
customers, potential loyalists, new customers, promising, need attention, about to sleep, at risk, can't lose
them, hibernating, lost).
"""

from __future__ import annotations

import polars as pl

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


def _validate(customers: pl.DataFrame) -> None:
    validate_columns(customers, REQUIRED_COLUMNS, "rfm", numeric=REQUIRED_COLUMNS[1:])
    if customers["days_since_last_order"].null_count():
        raise ValueError("rfm: days_since_last_order has nulls; score only customers who have ordered")


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
    _validate(customers)
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


def summarise_segments(scored: pl.DataFrame) -> pl.DataFrame:
    """Size and value of each segment: customers, share of customers, revenue and share of revenue."""
    total_customers, total_monetary = scored.height, scored["monetary"].sum()
    return (
        scored.group_by("segment")
        .agg(
            customers=pl.len(),
            monetary=pl.col("monetary").sum(),
            average_recency_days=pl.col("days_since_last_order").mean(),
            average_frequency=pl.col("frequency").mean(),
        )
        .with_columns(
            customer_share=pl.col("customers") / total_customers,
            monetary_share=pl.col("monetary") / total_monetary if total_monetary else pl.lit(0.0),
        )
        .sort("monetary", descending=True)
    )
