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

from dataclasses import dataclass, field, replace
from datetime import date, timedelta

import polars as pl

from models_ml import engine, offer_scoring
from models_ml.basket import association_rules
from models_ml.protocol import (
    BASELINE_PUBLISHED,
    ModelOutput,
    StoredFit,
    Verdict,
    compare,
    fingerprint,
    refusing,
    scored_with,
)
from models_ml.validation import InsufficientDataError, validate_columns

__all__ = [
    "NEIGHBOURS",
    "OFFER_SCHEMA",
    "OfferChoice",
    "choose_offers",
    "offer_hits",
    "offers_fit_key",
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
# popularity and the evidence edges (bought item -> offered item: a rule or a similar item). Customers and items are
# then numbered (items in the order that breaks ties between equal scores), and the scores, each customer's best
# offer_count and the reason of each are counted as sparse matrix products (models_ml.offer_scoring). Customers with
# fewer candidates than offers get the most bought items as filler.
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

EDGES_SQL = """
create table edges as
with edges as (
    select
        antecedent as item,
        consequent as offered,
        'rule' as source,
        confidence as strength,
        lift,
        confidence as share
    from rules
    union all
    select
        item,
        neighbour as offered,
        'similarity' as source,
        cosine as strength,
        lift,
        share
    from item_neighbours
)

select
    *,
    row_number() over (order by source, item, offered) - 1 as edge_number
from edges
where item is not null and offered is not null
"""

# Items numbered in tie order (the more bought first, then by key); key_order is the rank of the key itself.
ITEM_NUMBERS_SQL = """
create table item_numbers as
with items as (
    select item from excluded
    union
    select item from edges
    union
    select offered from edges
)

select
    items.item,
    row_number() over (order by popularity.popularity_rank nulls last, items.item) - 1 as item_number,
    row_number() over (order by items.item) as key_order
from items
left join popularity on items.item = popularity.item
"""

# The customers offers are made for (scored): every customer who bought, or those of them the caller asks about
# (the holdout check only counts the customers who bought something new in the holdout). What the others bought
# still counts: popularity, the evidence and the items' numbers are everyone's.
SCORED_CUSTOMERS_SQL = {
    False: "create table scored_customers as select distinct customer_id from owned",
    True: """create table scored_customers as
select distinct customer_id from owned where customer_id in (select customer_id from asked)""",
}

CUSTOMER_NUMBERS_SQL = """
create table customer_numbers as
select
    customer_id,
    row_number() over (order by customer_id) - 1 as customer_number
from scored_customers
"""
STEPS = (OWNED_SQL, EXCLUDED_SQL, POPULARITY_SQL, EDGES_SQL, ITEM_NUMBERS_SQL)

# What each customer bought (owned), and what they may not be offered (excluded: bought or returned), by number.
NUMBERED_PAIRS_SQL = {
    pairs: f"""
select customer_numbers.customer_number, item_numbers.item_number
from {pairs} as pairs
inner join customer_numbers on pairs.customer_id = customer_numbers.customer_id
inner join item_numbers on pairs.item = item_numbers.item
"""
    for pairs in ("owned", "excluded")
}

KEY_ORDER_SQL = "select key_order from item_numbers order by item_number"

NUMBERED_EDGES_SQL = """
select
    items.item_number as item,
    offered.item_number as offered,
    case when edges.source = 'rule' then 0 else 1 end as source,
    coalesce(edges.strength, 0) as strength
from edges
inner join item_numbers as items on edges.item = items.item
inner join item_numbers as offered on edges.offered = offered.item
order by edges.edge_number
"""

MODEL_OFFERS_SQL = """
create table model_offers as
select
    customer_numbers.customer_id,
    item_numbers.item,
    scored.score,
    edges.source,
    edges.item as because,
    edges.lift,
    edges.share
from scored
inner join customer_numbers on scored.customer = customer_numbers.customer_number
inner join item_numbers on scored.item = item_numbers.item_number
inner join edges on scored.edge = edges.edge_number
"""

OFFERS_SQL = """
with customers as (
    select
        excluded.customer_id,
        count(*) + $offer_count as filler_limit
    from excluded
    where excluded.customer_id in (select scored_customers.customer_id from scored_customers)
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

SCORED_SCHEMA = {"customer": pl.Int64, "item": pl.Int64, "score": pl.Float64, "edge": pl.Int64}

# No rules and no similar items: the popularity baseline's evidence.
_NO_EVIDENCE = (
    pl.DataFrame(
        schema={"antecedent": pl.String, "consequent": pl.String, "confidence": pl.Float64, "lift": pl.Float64}
    ),
    pl.DataFrame(schema=SIMILAR_SCHEMA),
)


def _numbered_pairs(connection, pairs: str) -> tuple:
    numbered = connection.execute(NUMBERED_PAIRS_SQL[pairs]).fetchnumpy()
    return numbered["customer_number"], numbered["item_number"]


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
    return _offers(history, returned, *_NO_EVIDENCE, offer_count, scored=False)


def _offers(
    history: pl.DataFrame,
    returned: pl.DataFrame,
    rules: pl.DataFrame,
    similar: pl.DataFrame,
    offer_count: int,
    scored: bool = True,
    in_words: bool = True,
    for_customers: pl.Series | None = None,
) -> pl.DataFrame:
    """The offers of :func:`rank_offers`; with ``scored`` False (popularity), an offer's score is the share of
    customers who bought the item instead of 0. With ``in_words`` False, only ``customer_id``, ``offer_rank`` and
    ``item_id``: what the holdout check counts (at a million customers the reasons in words are a gigabyte). With
    ``for_customers``, the offers of those customers only (the same offers as in the whole ranking: a customer's offers
    depend on everyone's purchases only through the evidence and popularity, which stay everyone's)."""
    validate_columns(history, ["customer_id", "item", "item_name"], "rank_offers", key=None)
    validate_columns(returned, ["customer_id", "item"], "rank_offers (returned)", key=None)
    validate_columns(rules, ["antecedent", "consequent", "confidence", "lift"], "rank_offers (rules)", key=None)
    validate_columns(similar, ["item", "neighbour", "cosine", "lift", "share"], "rank_offers (similar)", key=None)
    if offer_count < 1:
        raise ValueError(f"rank_offers: offer_count must be at least 1, got {offer_count}")
    text = {"customer_id": pl.String, "item": pl.String}
    connection = engine.connect()
    try:
        connection.register("history", engine.arrow(history.select("customer_id", "item", "item_name").cast(text)))
        connection.register("returned", engine.arrow(returned.select("customer_id", "item").cast(text)))
        rules = rules.select("antecedent", "consequent", "confidence", "lift")
        connection.register("rules", engine.arrow(rules.cast({"antecedent": pl.String, "consequent": pl.String})))
        neighbours = similar.select("item", "neighbour", "cosine", "lift", "share")
        connection.register(
            "item_neighbours", engine.arrow(neighbours.cast({"item": pl.String, "neighbour": pl.String}))
        )
        if for_customers is not None:
            asked = pl.DataFrame({"customer_id": for_customers.cast(pl.String)})
            connection.register("asked", engine.arrow(asked))
        for step in (*STEPS, SCORED_CUSTOMERS_SQL[for_customers is not None], CUSTOMER_NUMBERS_SQL):
            connection.execute(step)
        owned = _numbered_pairs(connection, "owned")
        excluded = _numbered_pairs(connection, "excluded")
        edges = offer_scoring.Edges(**connection.execute(NUMBERED_EDGES_SQL).fetchnumpy())
        customers = connection.execute("select count(*) from customer_numbers").fetchone()[0]
        # the items' key ranks, by item number: as many as there are items
        key_order = connection.execute(KEY_ORDER_SQL).fetchnumpy()["key_order"]
        numbered_offers = offer_scoring.top_offers(
            owned, excluded, edges, customers=customers, items=len(key_order), offer_count=offer_count,
            key_order=key_order,
        )  # fmt: skip
        connection.register("scored", engine.arrow(pl.DataFrame(numbered_offers, schema=SCORED_SCHEMA)))
        connection.execute(MODEL_OFFERS_SQL)
        # what only the numbering needed is let go before the offers are fetched (the step's memory peak)
        del owned, excluded, edges, numbered_offers
        connection.unregister("scored")
        for table in ("owned", "customer_numbers"):
            connection.execute(f"drop table {table}")
        offers = connection.sql(OFFERS_SQL, params={"offer_count": offer_count})
        if not in_words:
            return offers.select("customer_id", "offer_rank", "item_id").pl()
        offers = offers.pl()
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
    stored: StoredFit | None = None,
) -> OfferChoice:
    """Rank offers for every customer who bought before ``as_of``, by the model if it beats popularity on the
    holdout, else by popularity; given an earlier night's check (``stored``, from ``model_refit_days``), by the
    ranker it chose, without checking again.

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
    stored
        An earlier night's check (its :class:`OfferChoice` without offers), under the key of
        :func:`offers_fit_key` (the caller checks the key and that no refit is due).

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
    if stored is None:
        checked = _holdout_check(purchases, returns, cutoff, parameters)
        verdict, parameters = checked.verdict, checked.parameters
    else:
        ranker = (
            "Tonight's rules and similar items ranked the offers." if stored.fit.verdict.score_source == "model" else ""
        )
        verdict = scored_with(stored, stored.fit.verdict, made="holdout check", tonight=ranker)
        parameters = stored.fit.parameters
    returned = returns.select("customer_id", "item")
    if verdict.score_source == "model":
        offers = rank_offers(
            purchases, returned, rules, similar_items(purchases, min_support=min_support), offer_count=offer_count
        )
    else:
        offers = popularity_offers(purchases, returned, offer_count=offer_count)
    return OfferChoice(offers, verdict, parameters)


def _holdout_check(purchases: pl.DataFrame, returns: pl.DataFrame, cutoff: date, parameters: dict) -> OfferChoice:
    """The check of :func:`choose_offers`: the model's and popularity's offers ranked on what was known at
    ``cutoff``, against what was bought after it; an :class:`OfferChoice` without offers, whose verdict says which
    ranker publishes."""
    offer_count, min_support = parameters["offer_count"], parameters["min_support"]
    # The check: the same ranking, made on what was known at the cutoff, against what was bought after it.
    before = purchases.filter(pl.col("purchased_on") < cutoff)
    returned_before = returns.filter(pl.col("returned_on") < cutoff).select("customer_id", "item")
    # new to the customer: neither bought nor returned before the cutoff (two anti-joins rather than the union of
    # both made unique: at a million customers that union's hash table was the step's largest allocation)
    bought_new = (
        purchases.filter(pl.col("purchased_on") >= cutoff)
        .select("customer_id", "item")
        .unique()
        .join(before.select("customer_id", "item"), on=["customer_id", "item"], how="anti")
        .join(returned_before, on=["customer_id", "item"], how="anti")
    )
    customers = before["customer_id"].unique()
    holdout_rules = association_rules(
        before.select("basket_id", "item", "item_name"),
        min_support=min_support,
        min_confidence=parameters["min_confidence"],
        min_lift=parameters["min_lift"],
        min_baskets=parameters["min_baskets"],
    )
    similar_then = similar_items(before, min_support=min_support)
    # only the offers of the customers the check counts (who bought something new) are made
    counted = bought_new["customer_id"].unique()
    model_then = _offers(before, returned_before, holdout_rules, similar_then, offer_count, in_words=False,
                         for_customers=counted)  # fmt: skip
    metrics = offer_hits(model_then, bought_new, customers, k=offer_count)
    popular_then = _offers(before, returned_before, *_NO_EVIDENCE, offer_count, scored=False, in_words=False,
                           for_customers=counted)  # fmt: skip
    baseline_metrics = offer_hits(popular_then, bought_new, customers, k=offer_count)
    del before, model_then, popular_then
    comparison = compare(
        metrics,
        baseline_metrics,
        "hit_rate_at_k",
        lower_is_better=False,
        label=f"hit rate at {offer_count} over the last {parameters['holdout_days']} days",
        model="the next-best-offer model",
    )
    notes = [comparison.sentence]
    if metrics["customers_evaluated"] == 0:
        notes.insert(0, f"No customer who bought before {cutoff.isoformat()} bought an item new to them since")
    notes.append("The model's offers are published." if comparison.beats else BASELINE_PUBLISHED)
    verdict = Verdict(
        "model" if comparison.beats else "baseline", comparison.beats, metrics, baseline_metrics, tuple(notes)
    )
    return OfferChoice(pl.DataFrame(schema=OFFER_SCHEMA), verdict, parameters)


# Bumped when what a stored check holds, or what it means, changes: a check stored by other code is never reused.
OFFERS_FIT_FORMAT = 1


def offers_fit_key(**options: float) -> str:
    """The fingerprint of what a check depends on besides the data: the settings (``options``: holdout_days,
    offer_count and the thresholds, as for :func:`choose_offers`), the neighbours and the format of the stored
    check. A night reuses a stored check only under the same key."""
    return fingerprint(format=OFFERS_FIT_FORMAT, neighbours=NEIGHBOURS, options=options)


def run_next_best_offers(
    purchases: pl.DataFrame,
    returns: pl.DataFrame,
    rules: pl.DataFrame,
    *,
    as_of: date,
    stored: StoredFit | None = None,
    **options: float,
) -> ModelOutput:
    """The next-best-offer run (``ml.next_best_offers``): :func:`choose_offers`, each offer stamped with its level
    (``item_level`` product) and whose offers they are (``score_source``); no rows and the reason when there is
    nothing to offer (fewer than two items ever bought). Arguments, ``options`` (holdout_days, offer_count and the
    thresholds) included, as for :func:`choose_offers`. A run that checks returns its check (``ModelOutput.fit``,
    under :func:`offers_fit_key`) for the nights that reuse it; given one (``stored``), the run ranks by the ranker
    it chose without checking again."""
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
        choice = choose_offers(purchases, returns, rules, as_of=as_of, stored=stored, **options)
        tables = stamped(choice.offers, choice.verdict.score_source)
        if stored is not None:
            return ModelOutput(tables, choice.verdict, choice.parameters, **facts, fitted_as_of=stored.fitted_as_of)
        check = replace(choice, offers=choice.offers.clear())
        return ModelOutput(tables, choice.verdict, choice.parameters, **facts, fit=check,
                           fit_key=offers_fit_key(**options))  # fmt: skip

    return refusing(attempt, ModelOutput(stamped(pl.DataFrame(schema=OFFER_SCHEMA), "none"), **facts))
