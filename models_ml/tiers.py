"""Tier movement: who is about to move up a loyalty tier and who is at risk of moving down.

Loyalty tiers are earned on trailing 12-month spend, as airline programmes earn status on a year's miles. The
review a programme manager does each month: an upgrade candidate is close to the next tier already (trailing
spend at least ``closeness`` of its threshold) and predicted (by the lifetime-value model's expected spend over
the next 12 months) to spend enough to reach it; a downgrade risk is predicted to spend less than their own
tier's threshold over the next 12 months, so would fall below it if the prediction holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

import polars as pl

from models_ml.protocol import ModelOutput, Verdict, refusing
from models_ml.validation import InsufficientDataError, validate_columns

TIERS = ("bronze", "silver", "gold", "platinum")
REQUIRED_COLUMNS = ("customer_id", "loyalty_tier", "trailing_12m_net_revenue", "expected_spend_12m")


def _tier_of(spend: pl.Expr, thresholds: Mapping[str, float]) -> pl.Expr:
    expression = pl.lit(TIERS[0])
    for tier in TIERS[1:]:
        expression = pl.when(spend >= thresholds[tier]).then(pl.lit(tier)).otherwise(expression)
    return expression


def _whole(column: str) -> pl.Expr:
    return pl.col(column).round(0).cast(pl.Int64).cast(pl.String)


def tier_movement(customers: pl.DataFrame, thresholds: Mapping[str, float], *, closeness: float = 0.75) -> pl.DataFrame:
    """Classify each customer as ``upgrade candidate``, ``downgrade risk`` or ``stable``.

    Parameters
    ----------
    customers
        ``customer_id``, ``loyalty_tier`` (bronze, silver, gold, platinum), ``trailing_12m_net_revenue`` and
        ``expected_spend_12m`` (predicted net spend over the next 12 months; null where there is no prediction:
        that customer is ``stable``, with no predicted tier).
    thresholds
        Minimum trailing 12-month spend of ``silver``, ``gold`` and ``platinum``.
    closeness
        Share of the next tier's threshold the trailing spend must already reach to count as close to it.

    Returns
    -------
    polars.DataFrame
        The input columns plus ``predicted_tier`` (the tier the predicted spend earns), ``next_tier``,
        ``spend_to_next_tier`` (what is missing today), ``movement`` and ``reason`` (in words).

    Raises
    ------
    InsufficientDataError
        When no customer has a predicted spend: without lifetime-value scores nobody's movement can be predicted.
    ValueError
        When the input breaks its contract (a missing column, an unknown tier, closeness out of range).
    """
    validate_columns(customers, REQUIRED_COLUMNS, "tier_movement", numeric=REQUIRED_COLUMNS[2:])
    unknown = set(customers["loyalty_tier"].drop_nulls().unique().to_list()) - set(TIERS)
    if unknown:
        raise ValueError(f"tier_movement: loyalty_tier has unknown value(s) {sorted(unknown)}; expected {TIERS}")
    if not 0 < closeness <= 1:
        raise ValueError(f"tier_movement: closeness must be in (0, 1], got {closeness}")
    if customers.height and customers["expected_spend_12m"].null_count() == customers.height:
        raise InsufficientDataError(
            "tier_movement: no customer has a predicted 12-month spend (there are no lifetime-value scores), so"
            " nobody can be predicted to move up or down a tier"
        )
    floor = {"bronze": 0.0, **{tier: float(thresholds[tier]) for tier in TIERS[1:]}}
    next_tier = {tier: TIERS[index + 1] for index, tier in enumerate(TIERS[:-1])}
    frame = customers.with_columns(
        predicted_tier=pl.when(pl.col("expected_spend_12m").is_not_null()).then(
            _tier_of(pl.col("expected_spend_12m"), floor)
        ),
        next_tier=pl.col("loyalty_tier").replace_strict(next_tier, default=None, return_dtype=pl.String),
        tier_floor=pl.col("loyalty_tier").replace_strict(floor, default=None, return_dtype=pl.Float64),
    ).with_columns(
        next_floor=pl.col("next_tier").replace_strict(floor, default=None, return_dtype=pl.Float64),
    )
    close = pl.col("trailing_12m_net_revenue") >= closeness * pl.col("next_floor")
    reaches = pl.col("expected_spend_12m") >= pl.col("next_floor")
    falls = (pl.col("loyalty_tier") != TIERS[0]) & (pl.col("expected_spend_12m") < pl.col("tier_floor"))
    upgrade = pl.col("next_tier").is_not_null() & close & reaches
    return (
        frame.with_columns(
            spend_to_next_tier=(pl.col("next_floor") - pl.col("trailing_12m_net_revenue")).clip(lower_bound=0),
            movement=pl.when(upgrade)
            .then(pl.lit("upgrade candidate"))
            .when(falls)
            .then(pl.lit("downgrade risk"))
            .otherwise(pl.lit("stable")),
        )
        .with_columns(
            reason=pl.when(pl.col("movement") == "upgrade candidate")
            .then(
                pl.format(
                    "spent {} of the {} needed for {}; predicted to spend {} in the next 12 months",
                    _whole("trailing_12m_net_revenue"),
                    _whole("next_floor"),
                    pl.col("next_tier"),
                    _whole("expected_spend_12m"),
                )
            )
            .when(pl.col("movement") == "downgrade risk")
            .then(
                pl.format(
                    "predicted to spend {} in the next 12 months, below the {} that {} needs",
                    _whole("expected_spend_12m"),
                    _whole("tier_floor"),
                    pl.col("loyalty_tier"),
                )
            )
            .otherwise(pl.lit(None, dtype=pl.String)),
        )
        .drop("tier_floor", "next_floor")
    )


def run_tier_movement(
    customers: pl.DataFrame, thresholds: Mapping[str, float], *, closeness: float, as_of: date
) -> ModelOutput:
    """The tier movement run (``ml.tier_movement``): :func:`tier_movement` with the count of each movement as its
    figures, or no rows and the reason when nobody's spend is predicted. Tiers are earned on the 365 days before
    ``as_of``."""
    facts = {
        "parameters": {**thresholds, "closeness": closeness},
        "rows_used": customers.height,
        "training_from": as_of - timedelta(days=365),
        "training_to": as_of,
    }

    def attempt() -> ModelOutput:
        moved = tier_movement(customers, thresholds, closeness=closeness)
        counts = dict(moved.group_by("movement").len().iter_rows())
        return ModelOutput({"tier_movement": moved}, Verdict("model", None, counts), **facts)

    return refusing(attempt, ModelOutput({"tier_movement": tier_movement(customers.head(0), thresholds)}, **facts))
