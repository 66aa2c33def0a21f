"""ML assets: read marts as of the run's cutoff, call a pure model from models_ml, write scores to schema ml.

Every model asset records its fit in ml.model_runs beside its baseline's figures, with the canonical inputs that
fed it. The lifetime-value and churn models carry a non-blocking ``beats_baseline`` check: when the model does
worse than its baseline on data it did not see (or cannot be fitted), the check warns, the run publishes the
baseline's scores instead, and the scores' ``score_source`` column says so. When the data cannot support a model
at all, the model raises ``InsufficientDataError`` and its run publishes the baseline, or no scores, with the
reason in its notes. A model never fails the night.
"""

import json
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl

from models_ml import (
    ClvFit,
    ClvFitError,
    InsufficientDataError,
    choose_churn,
    choose_clv,
    fit_clv,
    no_churn_scores,
    no_segments,
    predict_purchases,
    refuse,
    score_clv,
    score_rfm,
    segment_customers,
    summarise_segments,
    tier_movement,
)
from models_ml.clv import DAYS_PER_MONTH, MATRIX_SCHEMA
from models_ml.clv_holdout import HOLDOUT_FIGURE
from pipelines.ml.features import (
    available_inputs,
    behaviour,
    clv_summary,
    describe_inputs,
    feature_label,
    window_actuals,
)
from pipelines.ml.model_runs import ModelRun, record_model_run, write_scores
from pipelines.resources import Warehouse, as_of_date
from pipelines.settings import Settings

RFM_INPUTS_SQL = """
select
    customer_id,
    days_since_last_order,
    rfm_window_orders as frequency,
    rfm_window_net_revenue as monetary
from marts.dim_customers
where has_purchased
"""

MIGRATION_SQL = """
with current as (select customer_id, segment from ml.rfm_scores where as_of = $as_of),
previous as (
    select customer_id, segment from ml.rfm_scores
    where as_of = (select max(as_of) from ml.rfm_scores where as_of < $as_of)
)
select
    coalesce(previous.segment, '(not scored)') as from_segment,
    coalesce(current.segment, '(not scored)') as to_segment,
    count(*) as customers
from current
full join previous using (customer_id)
group by all
order by all
"""

# A customer without a lifetime-value score has no purchase occasion: a predicted spend of 0. When the run has no
# lifetime-value scores at all, nobody's spend is predicted (null), and tier movement says so instead of calling
# every customer a downgrade risk.
TIER_INPUTS_SQL = """
with clv as (select * from ml.clv_scores where as_of = $as_of),
scored as (select count(*) > 0 as has_scores from clv)
select
    customers.customer_id,
    customers.loyalty_tier,
    customers.trailing_12m_net_revenue::double as trailing_12m_net_revenue,
    case when clv.customer_id is not null then clv.expected_spend_12m when scored.has_scores then 0 end
        as expected_spend_12m,
    coalesce(clv.score_source, 'none') as clv_score_source
from marts.dim_customers as customers
cross join scored
left join clv on customers.customer_id = clv.customer_id
where customers.customer_type = 'customer'
"""

MARTS = "marts"


def _key(*parts: str) -> dg.AssetKey:
    return dg.AssetKey(list(parts))


def _started(context: dg.AssetExecutionContext, settings: Settings, model: str) -> ModelRun:
    return ModelRun(
        model=model,
        as_of=as_of_date(context, settings.today()),
        run_id=context.run.run_id,
        started_at=datetime.now(UTC).replace(tzinfo=None),
    )


def _record_inputs(connection, run: ModelRun) -> None:
    """Which canonical inputs fed the run, and a sentence when some the model reads had no data."""
    run.inputs, note = describe_inputs(run.model, available_inputs(connection, run.as_of))
    if note:
        run.notes.append(note)


def _baseline_check(run: ModelRun, figure: str, lower_is_better: bool) -> dg.AssetCheckResult:
    model, baseline = run.metrics.get(figure), (run.baseline_metrics or {}).get(figure)
    passed = bool(run.beats_baseline) and run.score_source == "model"
    comparison = "lower" if lower_is_better else "higher"
    return dg.AssetCheckResult(
        check_name="beats_baseline",
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"The model's {figure} on held-out data is {comparison} than the baseline's; its scores are published."
            if passed
            else " ".join(run.notes) or "The model did worse than its baseline; the baseline's scores are published."
        ),
        metadata={f"model_{figure}": model, f"baseline_{figure}": baseline, "score_source": run.score_source},
    )


def build_ml_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    @dg.asset(
        key=_key("ml", "rfm_scores"),
        deps=[_key(MARTS, "dim_customers")],
        group_name="ml",
        kinds={"python", "duckdb"},
        description="RFM quintile scores and named segment of every customer who has ordered (ml.rfm_scores), "
        "segment sizes and value (ml.rfm_segments), and movement between segments since the previous run "
        "(ml.rfm_migration).",
    )
    def rfm_scores(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        run = _started(context, settings, "rfm")
        with warehouse.connect() as connection:
            _record_inputs(connection, run)
            customers = connection.sql(RFM_INPUTS_SQL).pl()
            scored = score_rfm(customers)
            segments = summarise_segments(scored)
            run.parameters = {
                "rfm_window_days": settings.rfm_window_days,
                "method": "quintiles of rank, ties at the lowest",
            }
            run.metrics, run.rows_used, run.score_source = {"segments": segments.height}, customers.height, "model"
            run.training_from, run.training_to = run.as_of - timedelta(days=settings.rfm_window_days), run.as_of
            model_run_id = record_model_run(connection, run)
            write_scores(connection, "rfm_scores", scored, run)
            write_scores(connection, "rfm_segments", segments, run)
            migration = connection.sql(MIGRATION_SQL, params={"as_of": run.as_of}).pl()
            write_scores(connection, "rfm_migration", migration, run)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": scored.height,
                "model_run_id": model_run_id,
                "as_of": run.as_of.isoformat(),
                "customers_by_segment": dg.MetadataValue.json(
                    dict(segments.select("segment", "customers").iter_rows())
                ),
            }
        )

    @dg.asset(
        key=_key("ml", "clv_scores"),
        deps=[_key(MARTS, "fct_orders")],
        group_name="ml",
        kinds={"python", "duckdb"},
        check_specs=[dg.AssetCheckSpec("beats_baseline", asset=_key("ml", "clv_scores"), blocking=False)],
        description="Lifetime value of every customer who has ordered: expected purchases and P(alive) from the "
        "purchase model (BG/NBD, MBG/NBD or Pareto/NBD) with the lowest holdout error among those that beat the "
        "historical-rate baseline on the last clv_holdout_months, Gamma-Gamma spend, discounted CLV over the "
        "horizon (ml.clv_scores); frequency/recency matrices for plots (ml.clv_matrices). The baseline's scores are "
        "published when no model beats it.",
    )
    def clv_scores(context: dg.AssetExecutionContext, warehouse: Warehouse):
        run = _started(context, settings, "clv")
        holdout_days = round(settings.clv_holdout_months * DAYS_PER_MONTH)
        calibration_cutoff = run.as_of - timedelta(days=holdout_days)
        horizon, rate = settings.clv_horizon_months, settings.clv_discount_rate
        with warehouse.connect() as connection:
            _record_inputs(connection, run)
            calibration = clv_summary(connection, calibration_cutoff)
            holdout = window_actuals(connection, calibration_cutoff, holdout_days)
            current = clv_summary(connection, run.as_of)
            try:
                choice = choose_clv(
                    calibration,
                    holdout,
                    current,
                    holdout_months=settings.clv_holdout_months,
                    horizon_months=horizon,
                    annual_discount_rate=rate,
                )
                run.judged(choice.verdict)
                run.parameters, scores, matrix = choice.parameters, choice.scores, choice.matrix
            except InsufficientDataError as error:
                run.judged(refuse(error.reason, baseline=False))
                scores = score_clv(None, current, horizon, rate)  # nobody to score: no rows
                matrix = pl.DataFrame(schema=MATRIX_SCHEMA)
            run.rows_used, run.training_to = current.height, run.as_of
            run.training_from = connection.sql("select min(order_date) from marts.fct_orders").fetchall()[0][0]
            model_run_id = record_model_run(connection, run)
            write_scores(connection, "clv_scores", scores, run)
            write_scores(connection, "clv_matrices", matrix, run)
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": scores.height,
                "model_run_id": model_run_id,
                "score_source": run.score_source,
                "holdout_mae_spend": run.metrics.get("mae_spend"),
                "baseline_holdout_mae_spend": (run.baseline_metrics or {}).get("mae_spend"),
            }
        )
        yield _baseline_check(run, HOLDOUT_FIGURE, lower_is_better=True)

    @dg.asset(
        key=_key("ml", "churn_scores"),
        deps=[_key("ml", "clv_scores"), _key(MARTS, "fct_interactions"), _key(MARTS, "fct_support_cases")],
        group_name="ml",
        kinds={"python", "duckdb"},
        check_specs=[dg.AssetCheckSpec("beats_baseline", asset=_key("ml", "churn_scores"), blocking=False)],
        description="Churn probability (no purchase in the next churn_window_days), risk band, revenue at risk "
        "and the top reasons of every customer who has ordered (ml.churn_scores); trained on an earlier cutoff, "
        "tested out of time on a later one against a recency-only baseline (figures in ml.model_runs).",
    )
    def churn_scores(context: dg.AssetExecutionContext, warehouse: Warehouse):
        run = _started(context, settings, "churn")
        with warehouse.connect() as connection:
            _record_inputs(connection, run)
            scores = _churn_scores(connection, run, settings.churn_window_days)
            model_run_id = record_model_run(connection, run)
            write_scores(connection, "churn_scores", scores, run)
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": scores.height,
                "model_run_id": model_run_id,
                "score_source": run.score_source,
                "out_of_time_auc": run.metrics.get("auc"),
                "baseline_auc": (run.baseline_metrics or {}).get("auc"),
                "top_decile_lift": run.metrics.get("top_decile_lift"),
            }
        )
        yield _baseline_check(run, "auc", lower_is_better=False)

    @dg.asset(
        key=_key("ml", "tier_movement"),
        deps=[_key("ml", "clv_scores"), _key(MARTS, "dim_customers")],
        group_name="ml",
        kinds={"python", "duckdb"},
        description="Loyalty tier upgrade candidates and downgrade risks from trailing spend and the spend the "
        "lifetime-value model predicts for the next 12 months (ml.tier_movement).",
    )
    def tier_movement_scores(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        run = _started(context, settings, "tier_movement")
        with warehouse.connect() as connection:
            _record_inputs(connection, run)
            customers = connection.sql(TIER_INPUTS_SQL, params={"as_of": run.as_of}).pl()
            thresholds = {
                "silver": settings.tier_silver_min_spend,
                "gold": settings.tier_gold_min_spend,
                "platinum": settings.tier_platinum_min_spend,
            }
            run.parameters = {**thresholds, "closeness": settings.tier_upgrade_closeness}
            run.rows_used = customers.height
            run.training_from, run.training_to = run.as_of - timedelta(days=365), run.as_of
            try:
                moved = tier_movement(customers, thresholds, closeness=settings.tier_upgrade_closeness)
                run.metrics = counts = dict(moved.group_by("movement").len().iter_rows())
            except InsufficientDataError as error:
                run.judged(refuse(error.reason, baseline=False))
                moved, counts = tier_movement(customers.head(0), thresholds), {}  # no rows
            model_run_id = record_model_run(connection, run)
            write_scores(connection, "tier_movement", moved, run)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": moved.height,
                "model_run_id": model_run_id,
                "score_source": run.score_source,
                **counts,
            }
        )

    @dg.asset(
        key=_key("ml", "behaviour_segments"),
        deps=[_key(MARTS, "fct_interactions"), _key(MARTS, "fct_order_lines"), _key(MARTS, "fct_support_cases")],
        group_name="ml",
        kinds={"python", "duckdb"},
        description="Behavioural segments: k-means on standardised behaviour (recency, frequency, spend, "
        "category and channel mix, service contacts, campaign responsiveness, web activity), k chosen by "
        "silhouette, each segment described in words (ml.behaviour_segments, ml.behaviour_segment_profiles).",
    )
    def behaviour_segments(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        run = _started(context, settings, "behaviour_segments")
        with warehouse.connect() as connection:
            _record_inputs(connection, run)
            customers = behaviour(connection, run.as_of)
            features = [column for column in customers.columns if column in SEGMENT_FEATURES or
                        column.startswith(("category_share__", "channel_share__"))]  # fmt: skip
            customers = customers.select("customer_id", *features).fill_null(0).fill_nan(0)
            run.rows_used = customers.height
            try:
                segmentation = segment_customers(
                    customers,
                    features,
                    labels={feature: feature_label(feature) for feature in features},
                    log_features=[feature for feature in features if feature in HEAVY_TAILED],
                )
                run.parameters = segmentation.as_dict()
                run.metrics = {"k": segmentation.k, "criterion": segmentation.criterion}
                assignments, profiles = segmentation.assignments, segmentation.profiles
            except InsufficientDataError as error:
                run.judged(refuse(error.reason, baseline=False))
                assignments, profiles = no_segments(customers)
            model_run_id = record_model_run(connection, run)
            write_scores(connection, "behaviour_segments", assignments, run)
            profiles = profiles.select("cluster", "cluster_name", "customers", "customer_share", "description")
            write_scores(connection, "behaviour_segment_profiles", profiles, run)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": assignments.height,
                "model_run_id": model_run_id,
                "score_source": run.score_source,
                "k": run.metrics.get("k"),
                "segments": dg.MetadataValue.json(dict(profiles.select("cluster_name", "customers").iter_rows())),
            }
        )

    return [rfm_scores, clv_scores, churn_scores, tier_movement_scores, behaviour_segments]


SEGMENT_FEATURES = (
    "recency_days", "orders_365d", "net_revenue_365d", "average_order_value", "tenure_days", "return_rate",
    "support_cases_365d", "bad_experiences_365d", "campaign_response_rate", "web_sessions_90d",
)  # fmt: skip
HEAVY_TAILED = (
    "recency_days", "orders_365d", "net_revenue_365d", "average_order_value", "tenure_days", "support_cases_365d",
    "bad_experiences_365d", "web_sessions_90d",
)  # fmt: skip


def _churn_scores(connection, run: ModelRun, window: int) -> pl.DataFrame:
    """Load the training, test and current cutoffs' features and call the churn protocol (``choose_churn``).

    Labels need the window after a cutoff to have happened, so the cutoffs step back from the last day with
    orders, not from the as-of date: exports that stop early shift the training window instead of labelling
    everyone a churner.
    """
    last_order = connection.sql(
        "select max(order_date) from marts.fct_orders where order_date < $as_of", params={"as_of": run.as_of}
    ).fetchall()[0][0]
    anchor = min(run.as_of, last_order + timedelta(days=1)) if last_order else run.as_of
    train_cutoff, test_cutoff = anchor - timedelta(days=2 * window), anchor - timedelta(days=window)
    run.training_from, run.training_to = train_cutoff, anchor
    published = _published_clv_fit(connection, run.as_of)
    purchase_model = published.purchase_model if published else "BG/NBD"
    train = _churn_dataset(connection, train_cutoff, window, labelled=True, purchase_model=purchase_model)
    test = _churn_dataset(connection, test_cutoff, window, labelled=True, purchase_model=purchase_model)
    current = _churn_dataset(connection, run.as_of, window, labelled=False, fit=published)
    features = [column for column in dict.fromkeys([*train.columns, *test.columns]) if column not in
                ("customer_id", "churned")]  # fmt: skip
    run.parameters = {
        "churn_window_days": window,
        "train_cutoff": train_cutoff,
        "test_cutoff": test_cutoff,
        "features": features,
        "estimator": "HistGradientBoostingClassifier",
        "baseline": "logistic regression on log(1 + days since the last order)",
    }
    run.rows_used = train.height + test.height
    clv = connection.sql(
        "select customer_id, clv from ml.clv_scores where as_of = $as_of", params={"as_of": run.as_of}
    ).pl()
    try:
        churn = choose_churn(
            train, test, current, features, labels_in_words={f: feature_label(f) for f in features}, clv=clv
        )
    except InsufficientDataError as error:
        run.judged(refuse(error.reason, baseline=False))
        return no_churn_scores(current)
    run.judged(churn.verdict)
    run.parameters |= {"features": list(churn.features), "dropped_features": dict(churn.dropped_features)}
    return churn.scores


def _published_clv_fit(connection, as_of: date) -> ClvFit | None:
    """The fit the lifetime-value asset made at ``as_of`` (read back from its model run), if it made one."""
    rows = connection.sql(
        """select parameters from ml.model_runs
        where model_run_id = (select any_value(model_run_id) from ml.clv_scores where as_of = $as_of)""",
        params={"as_of": as_of},
    ).fetchall()
    parameters = json.loads(rows[0][0]) if rows and rows[0][0] else {}
    return ClvFit.from_dict(parameters) if "bgnbd" in parameters else None


def _churn_dataset(
    connection,
    cutoff: date,
    window: int,
    *,
    labelled: bool,
    fit: ClvFit | None = None,
    purchase_model: str = "BG/NBD",
) -> pl.DataFrame:
    """Behaviour as of ``cutoff`` plus the purchase model's P(alive) and expected purchases, and the label when
    known. The purchase model is ``fit`` when the lifetime-value asset already made it at this cutoff, else
    ``purchase_model`` fitted here (without the spend model, which these features do not use)."""
    features = behaviour(connection, cutoff)
    summary = clv_summary(connection, cutoff)
    try:
        fit = fit or fit_clv(summary, spend=False, purchase_model=purchase_model)
        purchases = predict_purchases(fit, summary, window).select(
            "customer_id", "p_alive", expected_purchases_in_window="expected_purchases"
        )
        features = features.join(purchases, on="customer_id", how="left")
    except ClvFitError:
        features = features.with_columns(
            p_alive=pl.lit(None, dtype=pl.Float64), expected_purchases_in_window=pl.lit(None, dtype=pl.Float64)
        )
    if not labelled:
        return features
    bought = window_actuals(connection, cutoff, window).filter(pl.col("purchases") > 0)["customer_id"]
    return features.with_columns(churned=~pl.col("customer_id").is_in(bought.implode()))
