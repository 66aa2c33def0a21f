"""Market basket analysis: association rules of one item => one item, counted in DuckDB SQL.

A rule {a} => {b} says how much more often baskets holding ``a`` also hold ``b`` than baskets in general. With N
baskets, n(a), n(b) the baskets holding each item and n(ab) those holding both, the measures are arules' (Hahsler,
Gruen & Hornik 2005, "arules: a computational environment for mining association rules and frequent item sets"):

- support = n(ab) / N; confidence = n(ab) / n(a); lift = confidence / P(b) = n(ab) N / (n(a) n(b));
- leverage = support - P(a) P(b) (Piatetsky-Shapiro 1991);
- conviction = (1 - P(b)) / (1 - confidence) (Brin et al. 1997); null when confidence is 1 (infinite).

Only pairs are mined (rules with one item on each side): what a marketer can act on ("bought X, offer Y") and what
the next best offers read. The pair counting is SQL over an in-memory DuckDB relation rather than a library
(mlxtend's fpgrowth, efficient-apriori): tests/benchmarks/bench_basket.py measured it faster and lighter at 10M
order lines (figures in docs/models.md), and the same statement can run inside a warehouse later. Items below the
support threshold are dropped before the pairs are formed (the Apriori property: a pair is never more frequent
than either of its items), which keeps the self-join small whatever the catalogue's length.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date

import polars as pl

from models_ml import engine
from models_ml.protocol import ModelOutput, StoredFit, Verdict, fingerprint, scored_with
from models_ml.validation import validate_columns

__all__ = ["RULE_SCHEMA", "association_rules", "basket_fit_key", "reuse_basket_rules", "run_basket_rules"]

# Bumped when what stored rules hold changes: rules stored by other code are never reused.
BASKET_FIT_FORMAT = 1


@dataclass(frozen=True)
class BasketFit:
    """A night's rules as it published them (its tables, figures and facts), for the nights that publish them
    again until the next count is due (``model_refit_days``)."""

    output: ModelOutput


RULE_SCHEMA = {
    "antecedent": pl.String,
    "antecedent_name": pl.String,
    "consequent": pl.String,
    "consequent_name": pl.String,
    "baskets": pl.Int64,
    "antecedent_baskets": pl.Int64,
    "consequent_baskets": pl.Int64,
    "both_baskets": pl.Int64,
    "support": pl.Float64,
    "confidence": pl.Float64,
    "lift": pl.Float64,
    "leverage": pl.Float64,
    "conviction": pl.Float64,
}

# Plain SQL (CTEs, joins, group by, union all, case) that runs unchanged on most engines; values are bound ($...).
# Counts are compared as shares (n / N >= threshold) so that a pair exactly at the threshold is kept, as in arules.
RULES_SQL = """
with lines as (
    select distinct basket_id, item
    from basket_lines
    where basket_id is not null
),

totals as (
    select count(distinct basket_id) as baskets
    from lines
),

item_counts as (
    select item, count(*) as item_baskets
    from lines
    where item is not null
    group by item
),

frequent_items as (
    select item_counts.item, item_counts.item_baskets
    from item_counts
    cross join totals
    where cast(item_counts.item_baskets as double) / totals.baskets >= $min_support
        and item_counts.item_baskets >= $min_baskets
),

-- the pairs are formed and counted on a number per frequent item rather than on its text: the self-join compares
-- and the grouping hashes millions of item pairs (at a million customers a fifth to a third of the statement's time)
numbered_items as (
    select
        item,
        row_number() over (order by item) as item_number
    from frequent_items
),

frequent_lines as (
    select
        lines.basket_id,
        numbered_items.item_number
    from lines
    inner join numbered_items on lines.item = numbered_items.item
),

numbered_pairs as (
    select
        first_line.item_number as number_a,
        second_line.item_number as number_b,
        count(*) as both_baskets
    from frequent_lines as first_line
    inner join frequent_lines as second_line
        on first_line.basket_id = second_line.basket_id and first_line.item_number < second_line.item_number
    group by first_line.item_number, second_line.item_number
),

pairs as (
    select
        first_item.item as item_a,
        second_item.item as item_b,
        numbered_pairs.both_baskets
    from numbered_pairs
    inner join numbered_items as first_item on numbered_pairs.number_a = first_item.item_number
    inner join numbered_items as second_item on numbered_pairs.number_b = second_item.item_number
),

frequent_pairs as (
    select pairs.item_a, pairs.item_b, pairs.both_baskets
    from pairs
    cross join totals
    where cast(pairs.both_baskets as double) / totals.baskets >= $min_support
        and pairs.both_baskets >= $min_baskets
),

directed as (
    select item_a as antecedent, item_b as consequent, both_baskets from frequent_pairs
    union all
    select item_b as antecedent, item_a as consequent, both_baskets from frequent_pairs
),

names as (
    select item, min(item_name) as item_name
    from basket_lines
    where item is not null
    group by item
),

measured as (
    select
        directed.antecedent,
        coalesce(antecedent_names.item_name, directed.antecedent) as antecedent_name,
        directed.consequent,
        coalesce(consequent_names.item_name, directed.consequent) as consequent_name,
        totals.baskets,
        antecedents.item_baskets as antecedent_baskets,
        consequents.item_baskets as consequent_baskets,
        directed.both_baskets,
        cast(directed.both_baskets as double) / totals.baskets as support,
        cast(directed.both_baskets as double) / antecedents.item_baskets as confidence,
        cast(directed.both_baskets as double) * totals.baskets
        / (cast(antecedents.item_baskets as double) * consequents.item_baskets) as lift,
        cast(directed.both_baskets as double) / totals.baskets
        - (cast(antecedents.item_baskets as double) / totals.baskets)
        * (cast(consequents.item_baskets as double) / totals.baskets) as leverage,
        case
            when directed.both_baskets < antecedents.item_baskets
                then (1 - cast(consequents.item_baskets as double) / totals.baskets)
                / (1 - cast(directed.both_baskets as double) / antecedents.item_baskets)
        end as conviction
    from directed
    cross join totals
    inner join frequent_items as antecedents on directed.antecedent = antecedents.item
    inner join frequent_items as consequents on directed.consequent = consequents.item
    left join names as antecedent_names on directed.antecedent = antecedent_names.item
    left join names as consequent_names on directed.consequent = consequent_names.item
)

select *
from measured
where confidence >= $min_confidence and lift >= $min_lift
order by lift desc, support desc, antecedent, consequent
"""


def association_rules(
    baskets: pl.DataFrame, *, min_support: float, min_confidence: float, min_lift: float, min_baskets: int = 1
) -> pl.DataFrame:
    """Every rule {a} => {b} between two items whose support, confidence and lift reach the thresholds.

    Parameters
    ----------
    baskets
        One row per item per basket: ``basket_id``, ``item`` (the item's key, e.g. a product code or a category),
        ``item_name`` (its name in words; the key when null). Repeated rows count once. A row whose ``item`` is
        null counts its basket in N without adding an item (e.g. a line whose product has no category).
    min_support, min_confidence, min_lift
        Thresholds (settings basket_min_support, basket_min_confidence, basket_min_lift); a rule exactly at a
        threshold is kept.
    min_baskets
        The fewest baskets a rule's pair must share (setting basket_min_baskets), whatever the support: on a few
        dozen orders a support threshold is one basket, and a pair bought together once is not a rule.

    Returns
    -------
    pl.DataFrame
        One row per directed rule (both {a} => {b} and {b} => {a} when both pass), columns ``RULE_SCHEMA``, by
        lift then support, highest first. Empty when no pair reaches the thresholds.
    """
    validate_columns(baskets, ["basket_id", "item", "item_name"], "association_rules", key=None)
    for name, value in (("min_support", min_support), ("min_confidence", min_confidence)):
        if not 0 <= value <= 1:
            raise ValueError(f"association_rules: {name} must be between 0 and 1, got {value}")
    if min_lift < 0:
        raise ValueError(f"association_rules: min_lift must be at least 0, got {min_lift}")
    lines = baskets.select("basket_id", pl.col("item").cast(pl.String), pl.col("item_name").cast(pl.String))
    connection = engine.connect()
    try:
        connection.register("basket_lines", engine.arrow(lines))
        parameters = {
            "min_support": min_support,
            "min_confidence": min_confidence,
            "min_lift": min_lift,
            "min_baskets": min_baskets,
        }
        rules = connection.sql(RULES_SQL, params=parameters).pl()
    finally:
        connection.close()
    return pl.DataFrame(schema=RULE_SCHEMA) if rules.is_empty() else rules.cast(RULE_SCHEMA)


_PLURAL = {"category": "categories"}


def run_basket_rules(
    levels: Mapping[str, pl.DataFrame],
    *,
    min_support: float,
    min_confidence: float,
    min_lift: float,
    min_baskets: int = 1,
    training_from: date | None = None,
    training_to: date | None = None,
) -> ModelOutput:
    """The basket rules run (``ml.basket_rules``): :func:`association_rules` at each level (e.g. ``{"product":
    ..., "category": ...}``), stacked with a ``level`` column first.

    Its figures per level are ``baskets_<level>``, ``items_<level>`` (distinct items in them) and
    ``rules_<level>``; a level without a rule gets a sentence saying why. There is no baseline: the rules are
    counts, published as they are.
    """
    frames, metrics, notes = [], {}, []
    for level, baskets in levels.items():
        rules = association_rules(
            baskets, min_support=min_support, min_confidence=min_confidence, min_lift=min_lift, min_baskets=min_baskets
        )
        items = baskets["item"].drop_nulls().unique()
        counts = {"baskets": baskets["basket_id"].n_unique(), "items": items.len(), "rules": rules.height}
        metrics |= {f"{name}_{level}": value for name, value in counts.items()}
        frames.append(rules.select(pl.lit(level).alias("level"), pl.all()))
        if rules.height:
            continue
        if items.len() < 2:
            what = f"no {level}" if items.is_empty() else f"one {level} only ({items[0]})"
            notes.append(f"No {level} rules: the orders hold {what}, so there is no pair to count.")
        else:
            notes.append(
                f"No {level} rules: no pair of the {items.len()} {_PLURAL.get(level, level + 's')} in "
                f"{counts['baskets']} orders reaches support {min_support}, confidence {min_confidence}, lift "
                f"{min_lift} and {min_baskets} orders together."
            )
    rules = pl.concat(frames) if frames else pl.DataFrame(schema={"level": pl.String, **RULE_SCHEMA})
    thresholds = {"min_support": min_support, "min_confidence": min_confidence, "min_lift": min_lift,
                  "min_baskets": min_baskets}  # fmt: skip
    output = ModelOutput(
        {"basket_rules": rules},
        Verdict("model", None, metrics, notes=tuple(notes)),
        parameters=thresholds,
        rows_used=max((frame.height for frame in levels.values()), default=0),
        training_from=training_from,
        training_to=training_to,
    )
    return replace(output, fit=BasketFit(output), fit_key=basket_fit_key(list(levels), **thresholds))


def basket_fit_key(levels: Sequence[str], **thresholds: float) -> str:
    """The fingerprint of what a night's rules depend on besides the data: the levels and the thresholds (the
    basket_* settings) and the format of the stored rules. A night publishes stored rules only under the same key."""
    return fingerprint(format=BASKET_FIT_FORMAT, levels=list(levels), thresholds=thresholds)


def reuse_basket_rules(stored: StoredFit) -> ModelOutput:
    """The rules an earlier night counted (``stored``, of :func:`run_basket_rules`), published again tonight: its
    tables, figures and facts, with a note saying when they were counted and when the next count is due."""
    output: ModelOutput = stored.fit.output
    tonight = "Tonight publishes that night's rules again: the rules are its counts of the orders before it."
    verdict = scored_with(stored, output.verdict, made="rules", tonight=tonight)
    return replace(output, verdict=verdict, fit=None, fit_key=None, fitted_as_of=stored.fitted_as_of)
