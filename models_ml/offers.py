"""Next best offers: per customer, the items they have not bought that what they bought points to.

Two kinds of evidence, both counted by the one pair counter of :mod:`models_ml.basket`:

- **rules**: a basket rule {x} => {y} (models_ml.basket) whose antecedent the customer bought; its strength is the
  rule's confidence, and its reason the rule's lift;
- **similarity**: item-to-item co-purchase similarity over customers (Sarwar et al. 2001, "Item-based
  collaborative filtering recommendation algorithms"): the cosine of two items' customer sets,
  n(x and y) / sqrt(n(x) n(y)), each bought item contributing its ``NEIGHBOURS`` most similar items.

An item's score for a customer is the sum of its evidence (confidences and cosines) over everything the customer
bought; items the customer bought or returned are never offered. Customers with fewer candidates than offers get
the most-bought remaining items (source ``popularity``, score 0: no evidence beyond popularity).

The protocol (:func:`choose_offers`) ranks offers on the history up to ``as_of - holdout_days``, counts how many
were bought in the holdout (hit rate and precision at k), does the same for the popularity baseline (the most
bought items the customer has not bought), and publishes the model's offers only when its hit rate is higher.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import polars as pl

from models_ml import engine
from models_ml.basket import association_rules
from models_ml.protocol import BASELINE_PUBLISHED, ModelOutput, Verdict, compare, refusing
from models_ml.validation import InsufficientDataError, validate_columns

__all__ = [
    "NEIGHBOURS",
    "OFFER_SCHEMA",
    "OfferChoice",
    "choose_offers",
    "offer_hits",
    "popularity_offers",
    "rank_offers",
    "run_next_best_offers",
    "similar_items",
]

# Each bought item brings its 20 most similar items: with 5 offers a customer, several times more candidates than
# offers, and the work grows with customers x items bought x 20, not with the catalogue. (On the demo world the
# holdout hit rate moved by about one point between 10 neighbours and all of them.)
NEIGHBOURS = 20

OFFER_SCHEMA = {
    "customer_id": pl.String,
    "offer_rank": pl.Int64,
    "item_id": pl.String,
    "item_name": pl.String,
    "score": pl.Float64,
    "source": pl.String,
    "reason": pl.String,
}
SIMILAR_SCHEMA = {
    "item": pl.String,
    "neighbour": pl.String,
    "customers_both": pl.Int64,
    "cosine": pl.Float64,
    "lift": pl.Float64,
    "share": pl.Float64,
}

# The offers are made in steps, each a table of the in-memory connection (plain SQL: create table as, joins, group
# by, window functions): what each customer bought, what each may not be offered (bought or returned), the items'
# popularity, the evidence for every other item (a view: customers x items bought x neighbours rows are streamed,
# never stored), the best offer_count scored items per customer with each one's reason, found in the same one pass
# over the evidence (arg_min), then, for customers with fewer candidates than offers, the most bought items as
# filler. Scoring by group by keeps the window functions off the millions of evidence rows.
OWNED_SQL = """
create table owned as
select distinct customer_id, item
from history
where customer_id is not null and item is not null
"""

EXCLUDED_SQL = """
create table excluded as
select customer_id, item from owned
union
select customer_id, item from returned where customer_id is not null and item is not null
"""

POPULARITY_SQL = """
create table popularity as
select
    item,
    cast(count(*) as double) / (select count(distinct owned.customer_id) from owned) as buyer_share,
    row_number() over (order by count(*) desc, item) as popularity_rank
from owned
group by item
"""

EVIDENCE_SQL = """
create view evidence as
with candidates as (
    select
        owned.customer_id,
        rules.consequent as item,
        'rule' as source,
        owned.item as because,
        rules.confidence as strength,
        rules.lift,
        rules.confidence as share
    from owned
    inner join rules on owned.item = rules.antecedent
    union all
    select
        owned.customer_id,
        item_neighbours.neighbour as item,
        'similarity' as source,
        owned.item as because,
        item_neighbours.cosine as strength,
        item_neighbours.lift,
        item_neighbours.share
    from owned
    inner join item_neighbours on owned.item = item_neighbours.item
)

select candidates.*
from candidates
where not exists (
    select 1 from excluded
    where excluded.customer_id = candidates.customer_id and excluded.item = candidates.item
)
"""

MODEL_OFFERS_SQL = """
create table model_offers as
with scored as (
    select
        customer_id,
        item,
        sum(strength) as score,
        -- the evidence that speaks for the offer: a rule before a similarity, then the strongest, then by name
        arg_min(
            struct_pack(source := source, because := because, lift := lift, share := share),
            struct_pack(kind := case when source = 'rule' then 0 else 1 end, weakness := -strength, because := because)
        ) as reason
    from evidence
    group by customer_id, item
),

ranked as (
    select
        scored.customer_id,
        scored.item,
        scored.score,
        scored.reason,
        row_number() over (
            partition by scored.customer_id
            order by scored.score desc, popularity.popularity_rank nulls last, scored.item
        ) as model_rank
    from scored
    left join popularity on scored.item = popularity.item
)

select
    customer_id,
    item,
    score,
    reason.source as source,
    reason.because as because,
    reason.lift as lift,
    reason.share as share
from ranked
where model_rank <= $offer_count
"""

OFFERS_SQL = """
with customers as (
    select
        excluded.customer_id,
        count(*) + $offer_count as filler_limit
    from excluded
    where excluded.customer_id in (select owned.customer_id from owned)
    group by excluded.customer_id
),

short_customers as (
    select customers.customer_id, customers.filler_limit
    from customers
    left join (
        select customer_id, count(*) as offers from model_offers group by customer_id
    ) as counted on customers.customer_id = counted.customer_id
    where coalesce(counted.offers, 0) < $offer_count
),

filler as (
    select
        short_customers.customer_id,
        popularity.item,
        0.0 as score,
        'popularity' as source,
        cast(null as varchar) as because,
        cast(null as double) as lift,
        popularity.buyer_share as share
    from short_customers
    inner join popularity on popularity.popularity_rank <= short_customers.filler_limit
    where
        not exists (
            select 1 from excluded
            where excluded.customer_id = short_customers.customer_id and excluded.item = popularity.item
        )
        and not exists (
            select 1 from model_offers
            where model_offers.customer_id = short_customers.customer_id and model_offers.item = popularity.item
        )
),

candidates as (
    select
        customer_id,
        item,
        score,
        source,
        because,
        lift,
        share
    from model_offers
    union all
    select * from filler
),

names as (
    select item, min(item_name) as item_name from history where item is not null group by item
),

ranked as (
    select
        candidates.*,
        row_number() over (
            partition by candidates.customer_id
            order by candidates.score desc, popularity.popularity_rank nulls last, candidates.item
        ) as offer_rank
    from candidates
    left join popularity on candidates.item = popularity.item
)

select
    ranked.customer_id,
    ranked.offer_rank,
    ranked.item as item_id,
    coalesce(item_names.item_name, ranked.item) as item_name,
    ranked.score,
    ranked.source,
    ranked.because,
    coalesce(because_names.item_name, ranked.because) as because_name,
    ranked.lift,
    ranked.share
from ranked
left join names as item_names on ranked.item = item_names.item
left join names as because_names on ranked.because = because_names.item
where ranked.offer_rank <= $offer_count
order by ranked.customer_id, ranked.offer_rank
"""
STEPS = (OWNED_SQL, EXCLUDED_SQL, POPULARITY_SQL, EVIDENCE_SQL)


def similar_items(purchases: pl.DataFrame, *, min_support: float, neighbours: int = NEIGHBOURS) -> pl.DataFrame:
    """Each item's ``neighbours`` most similar items by the cosine of their customer sets.

    Parameters
    ----------
    purchases
        ``customer_id``, ``item``, ``item_name``: what each customer bought (repeats count once).
    min_support
        Pairs bought by fewer than this share of customers are left out (as for basket rules), which bounds the
        pairs counted whatever the catalogue's length.

    Returns
    -------
    pl.DataFrame
        ``item``, ``neighbour``, ``customers_both``, ``cosine``, ``lift`` (how many times more often buyers of
        ``item`` bought ``neighbour`` than customers in general) and ``share`` (the share of buyers of ``item``
        who bought ``neighbour``).
    """
    validate_columns(purchases, ["customer_id", "item", "item_name"], "similar_items", key=None)
    pairs = association_rules(
        purchases.select(basket_id="customer_id", item="item", item_name="item_name"),
        min_support=min_support,
        min_confidence=0.0,
        min_lift=0.0,
    )
    cosine = pl.col("both_baskets") / (pl.col("antecedent_baskets") * pl.col("consequent_baskets")).sqrt()
    return (
        pairs.select(
            item="antecedent",
            neighbour="consequent",
            customers_both="both_baskets",
            cosine=cosine,
            lift="lift",
            share="confidence",
        )
        .sort(["item", "cosine", "neighbour"], descending=[False, True, False])
        .group_by("item", maintain_order=True)
        .head(neighbours)
        .cast(SIMILAR_SCHEMA)
    )


def rank_offers(
    history: pl.DataFrame,
    returned: pl.DataFrame,
    rules: pl.DataFrame,
    similar: pl.DataFrame,
    *,
    offer_count: int,
) -> pl.DataFrame:
    """Up to ``offer_count`` offers per customer in ``history``, best first, each with its reason in words.

    Parameters
    ----------
    history
        ``customer_id``, ``item``, ``item_name``: what each customer bought.
    returned
        ``customer_id``, ``item``: what each customer returned (never offered again).
    rules
        Basket rules (:func:`models_ml.basket.association_rules`): ``antecedent``, ``consequent``,
        ``confidence``, ``lift``.
    similar
        Similar items (:func:`similar_items`).
    offer_count
        Offers per customer (setting offer_count).

    Returns
    -------
    pl.DataFrame
        ``OFFER_SCHEMA``: a customer's offers ranked 1..n by score (ties: the more-bought item first); n is less
        than ``offer_count`` only when the customer has bought or returned nearly everything.
    """
    return _offers(history, returned, rules, similar, offer_count)


def popularity_offers(history: pl.DataFrame, returned: pl.DataFrame, *, offer_count: int) -> pl.DataFrame:
    """The baseline: each customer's ``offer_count`` most-bought items (by customers) they have not bought or
    returned; score = the share of customers who bought the item."""
    no_rules = pl.DataFrame(schema={"antecedent": pl.String, "consequent": pl.String, "confidence": pl.Float64,
                                    "lift": pl.Float64})  # fmt: skip
    return _offers(history, returned, no_rules, pl.DataFrame(schema=SIMILAR_SCHEMA), offer_count, scored=False)


def _offers(
    history: pl.DataFrame,
    returned: pl.DataFrame,
    rules: pl.DataFrame,
    similar: pl.DataFrame,
    offer_count: int,
    scored: bool = True,
) -> pl.DataFrame:
    """The offers of :func:`rank_offers`; with ``scored`` False (popularity), an offer's score is the share of
    customers who bought the item instead of 0."""
    validate_columns(history, ["customer_id", "item", "item_name"], "rank_offers", key=None)
    validate_columns(returned, ["customer_id", "item"], "rank_offers (returned)", key=None)
    validate_columns(rules, ["antecedent", "consequent", "confidence", "lift"], "rank_offers (rules)", key=None)
    validate_columns(similar, ["item", "neighbour", "cosine", "lift", "share"], "rank_offers (similar)", key=None)
    if offer_count < 1:
        raise ValueError(f"rank_offers: offer_count must be at least 1, got {offer_count}")
    text = {"customer_id": pl.String, "item": pl.String}
    connection = engine.connect()
    try:
        connection.register("history", history.select("customer_id", "item", "item_name").cast(text).to_arrow())
        connection.register("returned", returned.select("customer_id", "item").cast(text).to_arrow())
        rules = rules.select("antecedent", "consequent", "confidence", "lift")
        connection.register("rules", rules.cast({"antecedent": pl.String, "consequent": pl.String}).to_arrow())
        neighbours = similar.select("item", "neighbour", "cosine", "lift", "share")
        connection.register("item_neighbours", neighbours.cast({"item": pl.String, "neighbour": pl.String}).to_arrow())
        for step in STEPS:
            connection.execute(step)
        connection.execute(MODEL_OFFERS_SQL, {"offer_count": offer_count})
        offers = connection.sql(OFFERS_SQL, params={"offer_count": offer_count}).pl()
    finally:
        connection.close()
    if not scored:
        offers = offers.with_columns(score=pl.col("share"))
    return offers.with_columns(reason=_reason()).select(*OFFER_SCHEMA).cast(OFFER_SCHEMA)


def _reason() -> pl.Expr:
    """The offer's evidence in a marketer's words. A lift that rounds to 1.0 or less says nothing ("1.0 times more
    often"), so such evidence is given as a share instead."""
    times = pl.col("lift").round(1).cast(pl.String)
    percent = (pl.col("share") * 100).round(1).cast(pl.String) + "%"
    bought, offered = pl.col("because_name"), pl.col("item_name")
    strong = pl.col("lift").round(1) > 1
    return (
        pl.when((pl.col("source") == "rule") & strong)
        .then(pl.format("Bought {}; buyers of {} buy {} {} times more often than average.", bought, bought, offered,
                        times))
        .when(pl.col("source") == "rule")
        .then(pl.format("Bought {}; {} of the orders with {} also hold {}.", bought, percent, bought, offered))
        .when((pl.col("source") == "similarity") & strong)
        .then(pl.format("Bought {}; customers who bought {} also buy {} {} times more often than average.", bought,
                        bought, offered, times))
        .when(pl.col("source") == "similarity")
        .then(pl.format("Bought {}; {} of customers who bought {} also bought {}.", bought, percent, bought, offered))
        .otherwise(pl.format("One of the most bought items: {} of customers bought {}.", percent, offered))
    )  # fmt: skip


def offer_hits(offers: pl.DataFrame, bought: pl.DataFrame, customers: pl.Series, *, k: int) -> dict:
    """Hit rate and precision at ``k`` of ``offers`` against what was ``bought`` afterwards.

    Parameters
    ----------
    offers
        ``customer_id``, ``offer_rank``, ``item_id``.
    bought
        ``customer_id``, ``item``: items each customer bought in the holdout that they had not bought or returned
        before it (new to them).
    customers
        The customers who could be offered something (they bought before the holdout).
    k
        Offers counted per customer.

    Returns
    -------
    dict
        ``customers_evaluated``: customers of ``customers`` who bought something new in the holdout;
        ``hit_rate_at_k``: the share of them with at least one of their top ``k`` offers bought;
        ``precision_at_k``: offers bought / k, averaged over them (None for both when nobody is evaluated); ``k``.
    """
    evaluated = bought.filter(pl.col("customer_id").is_in(customers.implode())).select("customer_id", "item").unique()
    n = evaluated["customer_id"].n_unique()
    if n == 0:
        return {"customers_evaluated": 0, "hit_rate_at_k": None, "precision_at_k": None, "k": k}
    hits = (
        offers.filter(pl.col("offer_rank") <= k)
        .join(evaluated, left_on=["customer_id", "item_id"], right_on=["customer_id", "item"], how="inner")
        .group_by("customer_id")
        .len()
    )
    return {
        "customers_evaluated": n,
        "hit_rate_at_k": hits.height / n,
        "precision_at_k": float(hits["len"].sum()) / (k * n),
        "k": k,
    }


@dataclass(frozen=True)
class OfferChoice:
    """What :func:`choose_offers` decided: the offers to publish, whose they are and the figures that decided it."""

    offers: pl.DataFrame
    verdict: Verdict
    parameters: dict = field(default_factory=dict)


def choose_offers(
    purchases: pl.DataFrame,
    returns: pl.DataFrame,
    rules: pl.DataFrame,
    *,
    as_of: date,
    holdout_days: int,
    offer_count: int,
    min_support: float,
    min_confidence: float,
    min_lift: float,
    min_baskets: int = 1,
) -> OfferChoice:
    """Rank offers for every customer who bought before ``as_of``, by the model if it beats popularity on the
    holdout, else by popularity.

    Parameters
    ----------
    purchases
        One row per order line: ``customer_id``, ``basket_id`` (the order), ``item``, ``item_name``,
        ``purchased_on`` (date).
    returns
        ``customer_id``, ``item``, ``returned_on`` (date).
    rules
        The basket rules of the same items as of ``as_of`` (what ml.basket_rules holds); the holdout's rules are
        mined here from the purchases before its start, with the same thresholds.
    as_of, holdout_days
        Offers are ranked on purchases before ``as_of``; the check ranks them on purchases before
        ``as_of - holdout_days`` and looks at the purchases from then to ``as_of``.
    offer_count
        Offers per customer, and the k of hit rate and precision at k.
    min_support, min_confidence, min_lift, min_baskets
        Thresholds of the holdout's rules and (support) of similar items.

    Returns
    -------
    OfferChoice
        ``offers`` (``OFFER_SCHEMA``), the verdict (metrics ``hit_rate_at_k``, ``precision_at_k``,
        ``customers_evaluated``, beside popularity's) and the parameters.

    Raises
    ------
    InsufficientDataError
        When fewer than two items were ever bought: there is nothing to offer anyone.
    """
    validate_columns(purchases, ["customer_id", "basket_id", "item", "item_name", "purchased_on"], "choose_offers",
                     key=None)  # fmt: skip
    validate_columns(returns, ["customer_id", "item", "returned_on"], "choose_offers (returns)", key=None)
    purchases = purchases.filter(pl.col("purchased_on") < as_of)
    returns = returns.filter(pl.col("returned_on") < as_of)
    items = purchases["item"].drop_nulls().unique()
    if items.len() < 2:
        sold = "No item was bought" if items.is_empty() else f"Only one item was ever bought ({items[0]})"
        raise InsufficientDataError(f"{sold}: there is nothing else to offer anyone")
    cutoff = as_of - timedelta(days=holdout_days)
    parameters = {
        "item_level": "product",
        "offer_count": offer_count,
        "holdout_days": holdout_days,
        "holdout_cutoff": cutoff,
        "min_support": min_support,
        "min_confidence": min_confidence,
        "min_lift": min_lift,
        "min_baskets": min_baskets,
        "neighbours": NEIGHBOURS,
        "score": "sum over the items the customer bought of the confidence of each rule and the cosine of each "
        "similar item pointing to the offered item",
    }

    # The check: the same ranking, made on what was known at the cutoff, against what was bought after it.
    before = purchases.filter(pl.col("purchased_on") < cutoff)
    returned_before = returns.filter(pl.col("returned_on") < cutoff).select("customer_id", "item")
    known = pl.concat([before.select("customer_id", "item"), returned_before]).unique()
    bought_new = (
        purchases.filter(pl.col("purchased_on") >= cutoff)
        .select("customer_id", "item")
        .unique()
        .join(known, on=["customer_id", "item"], how="anti")
    )
    customers = before["customer_id"].unique()
    holdout_rules = association_rules(
        before.select("basket_id", "item", "item_name"),
        min_support=min_support,
        min_confidence=min_confidence,
        min_lift=min_lift,
        min_baskets=min_baskets,
    )
    model_then = rank_offers(
        before,
        returned_before,
        holdout_rules,
        similar_items(before, min_support=min_support),
        offer_count=offer_count,
    )
    popular_then = popularity_offers(before, returned_before, offer_count=offer_count)
    metrics = offer_hits(model_then, bought_new, customers, k=offer_count)
    baseline_metrics = offer_hits(popular_then, bought_new, customers, k=offer_count)
    comparison = compare(
        metrics,
        baseline_metrics,
        "hit_rate_at_k",
        lower_is_better=False,
        label=f"hit rate at {offer_count} over the last {holdout_days} days",
        model="the next-best-offer model",
    )
    notes = [comparison.sentence]
    if metrics["customers_evaluated"] == 0:
        notes.insert(0, f"No customer who bought before {cutoff.isoformat()} bought an item new to them since")

    returned = returns.select("customer_id", "item")
    if comparison.beats:
        offers = rank_offers(
            purchases, returned, rules, similar_items(purchases, min_support=min_support), offer_count=offer_count
        )
        notes.append("The model's offers are published.")
    else:
        offers = popularity_offers(purchases, returned, offer_count=offer_count)
        notes.append(BASELINE_PUBLISHED)
    verdict = Verdict(
        "model" if comparison.beats else "baseline", comparison.beats, metrics, baseline_metrics, tuple(notes)
    )
    return OfferChoice(offers, verdict, parameters)


def run_next_best_offers(
    purchases: pl.DataFrame,
    returns: pl.DataFrame,
    rules: pl.DataFrame,
    *,
    as_of: date,
    **options: float,
) -> ModelOutput:
    """The next-best-offer run (``ml.next_best_offers``): :func:`choose_offers`, each offer stamped with its level
    (``item_level`` product) and whose offers they are (``score_source``); no rows and the reason when there is
    nothing to offer (fewer than two items ever bought). Arguments, ``options`` (holdout_days, offer_count and the
    thresholds) included, as for :func:`choose_offers`."""
    facts = {
        "rows_used": purchases.height,
        "training_from": purchases["purchased_on"].min() if "purchased_on" in purchases.columns else None,
        "training_to": as_of,
    }

    def stamped(offers: pl.DataFrame, score_source: str) -> dict[str, pl.DataFrame]:
        return {
            "next_best_offers": offers.with_columns(item_level=pl.lit("product"), score_source=pl.lit(score_source))
        }

    def attempt() -> ModelOutput:
        choice = choose_offers(purchases, returns, rules, as_of=as_of, **options)
        tables = stamped(choice.offers, choice.verdict.score_source)
        return ModelOutput(tables, choice.verdict, parameters=choice.parameters, **facts)

    return refusing(attempt, ModelOutput(stamped(pl.DataFrame(schema=OFFER_SCHEMA), "none"), **facts))
