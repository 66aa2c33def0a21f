"""Marketing model assets: basket rules and next best offers, read from the marts as of the run's cutoff.

Thin like the other ML assets: load with SQL, call the pure function in models_ml (basket.py, offers.py), record the
run in ml.model_runs and write the scores to schema ml. The offers are checked on a holdout against a popularity
baseline, and the run publishes popularity's offers whenever the model does not do better (``score_source``).
"""

import dagster as dg

from models_ml.basket import basket_fit_key, reuse_basket_rules, run_basket_rules
from models_ml.offers import offers_fit_key, run_next_best_offers
from pipelines.ml.assets import MARTS, asset_key, baseline_check_result, save_run, started_run
from pipelines.ml.model_fits import stored_fit
from pipelines.resources import Warehouse
from pipelines.settings import Settings

# A basket is an order. At category level a line whose product has no product record (category 'Unclassified')
# keeps its order among the baskets but adds no item: "Unclassified" is no category a marketer can offer.
BASKET_LINES_SQL = """
select
    lines.order_id as basket_id,
    case when $level = 'product' then lines.product_id
        when products.has_product_record then products.category_name end as item,
    case when $level = 'product' then coalesce(products.product_name, lines.product_id)
        when products.has_product_record then products.category_name end as item_name
from marts.fct_order_lines as lines
left join marts.dim_products as products on lines.product_id = products.product_id
where lines.order_date < $as_of
"""

FIRST_ORDER_SQL = "select min(order_date) from marts.fct_order_lines where order_date < $as_of"

PURCHASES_SQL = """
select
    lines.customer_id,
    lines.order_id as basket_id,
    lines.product_id as item,
    coalesce(products.product_name, lines.product_id) as item_name,
    lines.order_date as purchased_on
from marts.fct_order_lines as lines
left join marts.dim_products as products on lines.product_id = products.product_id
where lines.order_date < $as_of and lines.customer_id is not null
"""

RETURNS_SQL = """
select customer_id, product_id as item, returned_date as returned_on
from marts.fct_returns
where returned_date < $as_of and customer_id is not null
"""

PRODUCT_RULES_SQL = """
select antecedent, antecedent_name, consequent, consequent_name, confidence, lift
from ml.basket_rules
where as_of = $as_of and level = 'product'
"""

LEVELS = ("product", "category")


def build_marketing_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    thresholds = {
        "min_support": settings.basket_min_support,
        "min_confidence": settings.basket_min_confidence,
        "min_lift": settings.basket_min_lift,
        "min_baskets": settings.basket_min_baskets,
    }

    @dg.asset(
        key=asset_key("ml", "basket_rules"),
        deps=[asset_key(MARTS, "fct_order_lines"), asset_key(MARTS, "dim_products")],
        group_name="ml",
        kinds={"python", "duckdb"},
        description="Association rules {x} => {y} between two products, and between two categories, bought in "
        "the same order: support, confidence, lift, leverage and conviction of every pair that reaches the "
        "basket_min_support, basket_min_confidence, basket_min_lift and basket_min_baskets settings (ml.basket_rules). "
        "With model_refit_days above 1, the rules are counted on one night in that many and the nights between "
        "publish that night's rules again (meta.model_fits).",
    )
    def basket_rules(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        run = started_run(context, settings, "basket_rules")
        with warehouse.connect() as connection:
            key = basket_fit_key(LEVELS, **thresholds)
            stored = stored_fit(connection, run.model, key, run.as_of, settings.model_refit_days)
            if stored is None:
                params = {"as_of": run.as_of}
                levels = {
                    level: connection.sql(BASKET_LINES_SQL, params={**params, "level": level}).pl() for level in LEVELS
                }
                [(first_order,)] = connection.sql(FIRST_ORDER_SQL, params=params).fetchall()
        if stored is not None:
            output = reuse_basket_rules(stored)
        else:
            output = run_basket_rules(levels, training_from=first_order, training_to=run.as_of, **thresholds)
        model_run_id = save_run(warehouse, run, output)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": output.tables["basket_rules"].height,
                "model_run_id": model_run_id,
                **{f"rules_{level}": run.metrics.get(f"rules_{level}") for level in LEVELS},
            }
        )

    @dg.asset(
        key=asset_key("ml", "next_best_offers"),
        deps=[
            asset_key("ml", "basket_rules"),
            asset_key(MARTS, "fct_order_lines"),
            asset_key(MARTS, "fct_returns"),
            asset_key(MARTS, "dim_products"),
        ],
        group_name="ml",
        kinds={"python", "duckdb"},
        check_specs=[dg.AssetCheckSpec("beats_baseline", asset=asset_key("ml", "next_best_offers"), blocking=False)],
        description="Up to offer_count products per customer who has ordered, that they have not bought or "
        "returned, ranked by the basket rules and item-to-item co-purchase similarity of what they bought, each "
        "with its reason in words (ml.next_best_offers). Checked on the last offer_holdout_days against the "
        "most-bought products (hit rate and precision at offer_count in ml.model_runs); popularity's offers are "
        "published when the model does not do better. With model_refit_days above 1, the check runs on one night "
        "in that many and the nights between rank by the ranker it chose.",
    )
    def next_best_offers(context: dg.AssetExecutionContext, warehouse: Warehouse):
        run = started_run(context, settings, "next_best_offer")
        with warehouse.connect() as connection:
            params = {"as_of": run.as_of}
            purchases = connection.sql(PURCHASES_SQL, params=params).pl()
            returns = connection.sql(RETURNS_SQL, params=params).pl()
            rules = connection.sql(PRODUCT_RULES_SQL, params=params).pl()
            options = {"holdout_days": settings.offer_holdout_days, "offer_count": settings.offer_count, **thresholds}
            stored = stored_fit(connection, run.model, offers_fit_key(**options), run.as_of, settings.model_refit_days)
        output = run_next_best_offers(purchases, returns, rules, as_of=run.as_of, stored=stored, **options)
        model_run_id = save_run(warehouse, run, output)
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": output.tables["next_best_offers"].height,
                "model_run_id": model_run_id,
                "score_source": run.score_source,
                "hit_rate_at_k": run.metrics.get("hit_rate_at_k"),
                "baseline_hit_rate_at_k": (run.baseline_metrics or {}).get("hit_rate_at_k"),
            }
        )
        yield baseline_check_result(run, "hit_rate_at_k", lower_is_better=False)

    return [basket_rules, next_best_offers]
