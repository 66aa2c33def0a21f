"""Basket rules and next best offers inside the real nightly run (the session's small world), checked against
independent SQL over the published marts and against the generator's designed category pairs."""

import json
from datetime import timedelta

import dagster as dg
import duckdb
import polars as pl
import pytest

from pipelines.publish.snapshot import current_snapshot
from pipelines.settings import load_settings
from tests.conftest import AS_OF

pytestmark = pytest.mark.integration

# Baskets holding product a, product b and both, among the orders before the as-of date: the same definitions as
# models_ml/basket.py, counted another way (a flag per order).
PAIR_SQL = """
with per_order as (
    select order_id, bool_or(product_id = $a) as has_a, bool_or(product_id = $b) as has_b
    from marts.fct_order_lines
    where order_date < $as_of
    group by order_id
)
select
    count(*),
    count(*) filter (where has_a),
    count(*) filter (where has_b),
    count(*) filter (where has_a and has_b)
from per_order
"""

# Customers who bought before the holdout and then a product new to them (not bought or returned before it).
KNOWN_BEFORE = """
known as (
    select customer_id, product_id from marts.fct_order_lines where order_date < $cutoff
    union
    select customer_id, product_id from marts.fct_returns where returned_date < $cutoff
),
new_purchases as (
    select distinct lines.customer_id, lines.product_id
    from marts.fct_order_lines as lines
    where lines.order_date >= $cutoff and lines.order_date < $as_of
        and lines.customer_id in (select customer_id from marts.fct_order_lines where order_date < $cutoff)
        and not exists (
            select 1 from known where known.customer_id = lines.customer_id and known.product_id = lines.product_id
        )
)
"""

# The popularity baseline computed independently: products by buyers before the cutoff, each customer's first
# k not known to them, and whether one of them was bought new in the holdout.
POPULARITY_HITS_SQL = f"""
with {KNOWN_BEFORE},
ranked as (
    select product_id, row_number() over (order by count(distinct customer_id) desc, product_id) as popularity
    from marts.fct_order_lines where order_date < $cutoff group by product_id
),
offers as (
    select customers.customer_id, ranked.product_id,
        row_number() over (partition by customers.customer_id order by ranked.popularity) as offer_rank
    from (select distinct customer_id from new_purchases) as customers
    cross join ranked
    where not exists (
        select 1 from known
        where known.customer_id = customers.customer_id and known.product_id = ranked.product_id
    )
),
hits as (
    select offers.customer_id, count(new_purchases.product_id) as hits
    from offers
    left join new_purchases
        on offers.customer_id = new_purchases.customer_id and offers.product_id = new_purchases.product_id
    where offers.offer_rank <= $k
    group by offers.customer_id
)
select count(*), avg(case when hits > 0 then 1.0 else 0.0 end), avg(hits * 1.0 / $k) from hits
"""


@pytest.fixture(scope="module")
def published(pipeline_run):
    world, result = pipeline_run
    assert result.success
    with duckdb.connect(current_snapshot(world.root / "published")["path"], read_only=True) as connection:
        yield world, result, connection


def model_run(connection, model: str) -> dict:
    [row] = connection.execute(
        "select metrics, baseline_metrics, beats_baseline, score_source, notes, model_run_id, parameters "
        "from ml.model_runs where model = ?",
        [model],
    ).fetchall()
    metrics, baseline, beats, source, notes, run_id, parameters = row
    return {
        "metrics": json.loads(metrics),
        "baseline": json.loads(baseline) if baseline else None,
        "beats": beats,
        "score_source": source,
        "notes": notes,
        "model_run_id": run_id,
        "parameters": json.loads(parameters),
    }


def test_both_assets_ran_and_their_tables_are_published(published):
    _, result, connection = published
    materialised = {
        event.event_specific_data.materialization.asset_key.to_user_string()
        for event in result.all_events
        if event.event_type_value == "ASSET_MATERIALIZATION"
    }
    assert {"ml/basket_rules", "ml/next_best_offers"} <= materialised
    for table, model in (("basket_rules", "basket_rules"), ("next_best_offers", "next_best_offer")):
        run_ids = connection.execute(f"select distinct model_run_id, as_of from ml.{table}").fetchall()
        assert run_ids == [(model_run(connection, model)["model_run_id"], AS_OF)], table
    checks = [
        event.event_specific_data
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
        and event.event_specific_data.asset_key.to_user_string() == "ml/next_best_offers"
    ]
    assert [check.severity for check in checks] == [dg.AssetCheckSeverity.WARN]


def test_product_rules_equal_an_independent_count_over_the_order_lines(published):
    _, _, connection = published
    rules = connection.execute(
        "select antecedent, consequent, baskets, antecedent_baskets, consequent_baskets, both_baskets, support, "
        "confidence, lift from ml.basket_rules where level = 'product' order by lift desc, antecedent, consequent"
    ).fetchall()
    assert rules, "the small world has product rules"
    for a, b, *figures in [*rules[:3], *rules[-3:]]:
        params = {"a": a, "b": b, "as_of": AS_OF}
        baskets, with_a, with_b, both = connection.execute(PAIR_SQL, params).fetchall()[0]
        assert figures[:4] == [baskets, with_a, with_b, both], (a, b)
        assert figures[4:] == pytest.approx([both / baskets, both / with_a, both * baskets / (with_a * with_b)])
    settings = load_settings()
    assert min(rule[6] for rule in rules) >= settings.basket_min_support
    assert min(rule[7] for rule in rules) >= settings.basket_min_confidence


def test_category_rules_recover_the_designed_pairs_with_their_true_lift(published):
    world, _, connection = published
    settings = load_settings()
    truth = pl.read_parquet(world.truth / "category_affinity.parquet")
    designed = pl.concat(
        [
            truth.select(a="category_a", b="category_b", n_a="orders_with_a", n_b="orders_with_b",
                         both="orders_with_both", orders="orders", lift="lift"),
            truth.select(a="category_b", b="category_a", n_a="orders_with_b", n_b="orders_with_a",
                         both="orders_with_both", orders="orders", lift="lift"),
        ]
    ).filter(
        (pl.col("both") / pl.col("orders") >= settings.basket_min_support)
        & (pl.col("both") / pl.col("n_a") >= settings.basket_min_confidence)
    )  # fmt: skip
    rules = connection.sql(
        "select antecedent as a, consequent as b, lift as found from ml.basket_rules where level = 'category'"
    ).pl()
    joined = designed.join(rules, on=["a", "b"], how="left")
    assert designed.height > 0 and joined["found"].null_count() == 0, joined.filter(pl.col("found").is_null())
    assert joined["found"].to_list() == pytest.approx(joined["lift"].to_list(), rel=1e-9)


def test_offers_never_name_a_product_the_customer_bought_or_returned(published):
    _, _, connection = published
    offered_again = connection.execute(
        """select count(*) from ml.next_best_offers as offers
        where exists (select 1 from marts.fct_order_lines as lines
                      where lines.customer_id = offers.customer_id and lines.product_id = offers.item_id)
           or exists (select 1 from marts.fct_returns as returns
                      where returns.customer_id = offers.customer_id and returns.product_id = offers.item_id)"""
    ).fetchall()[0][0]
    assert offered_again == 0
    offer_count = load_settings().offer_count
    customers, offers, ranks_ok, levels, sources = connection.execute(
        """select count(distinct customer_id), count(*),
            bool_and(offer_rank between 1 and ?), list(distinct item_level), list(distinct score_source)
        from ml.next_best_offers""",
        [offer_count],
    ).fetchall()[0]
    buyers = connection.execute(
        "select count(distinct customer_id) from marts.fct_order_lines where customer_id is not null"
    ).fetchall()[0][0]
    assert customers == buyers and offers <= offer_count * buyers and ranks_ok
    assert levels == ["product"] and sources == [model_run(connection, "next_best_offer")["score_source"]]


def test_the_offers_run_records_both_hit_rates_and_popularity_is_recounted_independently(published):
    _, _, connection = published
    run = model_run(connection, "next_best_offer")
    settings = load_settings()
    k, cutoff = settings.offer_count, AS_OF - timedelta(days=settings.offer_holdout_days)
    evaluated, hit_rate, precision = connection.execute(
        POPULARITY_HITS_SQL, {"cutoff": cutoff, "as_of": AS_OF, "k": k}
    ).fetchall()[0]
    assert evaluated > 0
    assert run["metrics"]["customers_evaluated"] == run["baseline"]["customers_evaluated"] == evaluated
    assert run["baseline"]["hit_rate_at_k"] == pytest.approx(float(hit_rate))
    assert run["baseline"]["precision_at_k"] == pytest.approx(float(precision))
    assert 0 <= run["metrics"]["precision_at_k"] <= run["metrics"]["hit_rate_at_k"] <= 1
    assert run["beats"] == (run["metrics"]["hit_rate_at_k"] > run["baseline"]["hit_rate_at_k"])
    assert run["score_source"] == ("model" if run["beats"] else "baseline")
    assert run["parameters"]["holdout_cutoff"] == cutoff.isoformat()
