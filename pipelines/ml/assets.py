"""ML assets: read marts as of the run's cutoff, call a pure model from models_ml, write scores to schema ml.

Every model asset records its fit in ml.model_runs beside its baseline's figures. The lifetime-value and churn
models carry a non-blocking ``beats_baseline`` check: when the model does worse than its baseline on data it did
not see (or cannot be fitted), the check warns, the run publishes the baseline's scores instead, and the scores'
``score_source`` column says so. A model never fails the night.
"""

import json
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl

from models_ml import (
    ClvFit,
    ClvFitError,
    baseline_clv,
    baseline_purchases,
    evaluate_churn,
    evaluate_holdout,
    fit_clv,
    frequency_recency_matrix,
    predict_clv,
    predict_purchases,
    score_churn,
    score_rfm,
    segment_customers,
    summarise_segments,
    tier_movement,
    train_churn_model,
    train_recency_baseline,
)
from models_ml.clv import DAYS_PER_MONTH
from pipelines.ml.features import behaviour, clv_summary, feature_label, window_actuals
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
            else f"The baseline's scores are published this run: {' '.join(run.notes) or 'the model did worse.'}"
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
        description="Lifetime value of every customer who has ordered: BG/NBD expected purchases and P(alive), "
        "Gamma-Gamma spend, discounted CLV over the horizon (ml.clv_scores); frequency/recency matrices for "
        "plots (ml.clv_matrices). Validated on the last clv_holdout_months against the historical-rate baseline.",
    )
    def clv_scores(context: dg.AssetExecutionContext, warehouse: Warehouse):
        run = _started(context, settings, "clv")
        holdout_days = round(settings.clv_holdout_months * DAYS_PER_MONTH)
        calibration_cutoff = run.as_of - timedelta(days=holdout_days)
        with warehouse.connect() as connection:
            calibration = clv_summary(connection, calibration_cutoff)
            actual = window_actuals(connection, calibration_cutoff, holdout_days)
            current = clv_summary(connection, run.as_of)
            _validate_clv(run, calibration, actual, settings.clv_holdout_months)
            fit = None
            try:
                fit = fit_clv(current)
                run.notes.extend(fit.notes)
                run.parameters = {**fit.as_dict(), "holdout_months": settings.clv_holdout_months}
            except ClvFitError as error:
                run.notes.append(f"The model could not be fitted on the full history ({error}).")
            if fit is None or run.beats_baseline is False:
                run.score_source = "baseline"
            scores = _clv_scores(fit if run.score_source == "model" else None, current, settings)
            run.rows_used, run.training_to = current.height, run.as_of
            run.training_from = connection.sql("select min(order_date) from marts.fct_orders").fetchall()[0][0]
            model_run_id = record_model_run(connection, run)
            write_scores(connection, "clv_scores", scores, run)
            if fit is not None:
                matrix = frequency_recency_matrix(
                    fit, T=float(current["T"].quantile(0.9)), days=settings.clv_horizon_months * DAYS_PER_MONTH
                )
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
        yield _baseline_check(run, "mae_spend", lower_is_better=True)

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
            customers = connection.sql(
                """select customers.customer_id, customers.loyalty_tier, customers.trailing_12m_net_revenue::double
                    as trailing_12m_net_revenue, coalesce(clv.expected_spend_12m, 0) as expected_spend_12m,
                    coalesce(clv.score_source, 'none') as clv_score_source
                from marts.dim_customers as customers
                left join ml.clv_scores as clv on customers.customer_id = clv.customer_id and clv.as_of = $as_of
                where customers.customer_type = 'customer'""",
                params={"as_of": run.as_of},
            ).pl()
            thresholds = {
                "silver": settings.tier_silver_min_spend,
                "gold": settings.tier_gold_min_spend,
                "platinum": settings.tier_platinum_min_spend,
            }
            moved = tier_movement(customers, thresholds, closeness=settings.tier_upgrade_closeness)
            counts = dict(moved.group_by("movement").len().iter_rows())
            run.parameters = {**thresholds, "closeness": settings.tier_upgrade_closeness}
            run.metrics, run.rows_used = counts, moved.height
            run.training_from, run.training_to = run.as_of - timedelta(days=365), run.as_of
            model_run_id = record_model_run(connection, run)
            write_scores(connection, "tier_movement", moved, run)
        return dg.MaterializeResult(
            metadata={"dagster/row_count": moved.height, "model_run_id": model_run_id, **counts}
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
            customers = behaviour(connection, run.as_of)
            features = [column for column in customers.columns if column in SEGMENT_FEATURES or
                        column.startswith(("category_share__", "channel_share__"))]  # fmt: skip
            customers = customers.select("customer_id", *features).fill_null(0).fill_nan(0)
            segmentation = segment_customers(
                customers,
                features,
                labels={feature: feature_label(feature) for feature in features},
                log_features=[feature for feature in features if feature in HEAVY_TAILED],
            )
            run.parameters, run.rows_used = segmentation.as_dict(), customers.height
            run.metrics = {"k": segmentation.k, "criterion": segmentation.criterion}
            model_run_id = record_model_run(connection, run)
            write_scores(connection, "behaviour_segments", segmentation.assignments, run)
            profiles = segmentation.profiles.select("cluster", "cluster_name", "customers", "customer_share",
                                                    "description")  # fmt: skip
            write_scores(connection, "behaviour_segment_profiles", profiles, run)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": customers.height,
                "model_run_id": model_run_id,
                "k": segmentation.k,
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


def _validate_clv(run: ModelRun, calibration: pl.DataFrame, actual: pl.DataFrame, holdout_months: int) -> None:
    """Fit up to the calibration cutoff, predict the holdout, compare model and baseline with what happened."""
    actual = actual.select("customer_id", "purchases", "spend")
    baseline = baseline_clv(calibration, holdout_months, 0.0)
    run.baseline_metrics = evaluate_holdout(baseline, actual)
    try:
        fit = fit_clv(calibration)
    except ClvFitError as error:
        run.beats_baseline = False
        run.notes.append(f"The model could not be fitted on the calibration period ({error}).")
        return
    predicted = predict_clv(fit, calibration, holdout_months, 0.0)
    run.metrics = {**evaluate_holdout(predicted, actual), "calibration_parameters": fit.as_dict()}
    run.beats_baseline = run.metrics["mae_spend"] < run.baseline_metrics["mae_spend"]
    if not run.beats_baseline:
        run.notes.append(
            f"Holdout mean absolute error of spend {run.metrics['mae_spend']:.2f} is not below the baseline's "
            f"{run.baseline_metrics['mae_spend']:.2f}."
        )


def _clv_scores(fit, current: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """The published lifetime-value scores (the model's, or the baseline's when ``fit`` is None), with the
    baseline's 6-month spend and CLV beside them so every page can show the two together. Spend over 6 and 12
    months is expected purchases over that span times the expected spend per purchase, which does not depend on
    the span."""
    horizon, rate = settings.clv_horizon_months, settings.clv_discount_rate
    baseline = baseline_clv(current, horizon, rate)
    scores = predict_clv(fit, current, horizon, rate) if fit is not None else baseline

    def purchases_over(months: int, model) -> pl.Series:
        days = months * DAYS_PER_MONTH
        purchases = predict_purchases(model, current, days) if model is not None else baseline_purchases(current, days)
        return purchases["expected_purchases"]

    spend_per_purchase = scores["expected_spend_per_purchase"]
    six_months = purchases_over(6, fit)
    return current.select("customer_id", "frequency", "recency", "T", "monetary_value").with_columns(
        *scores.drop("customer_id"),
        expected_purchases_6m=six_months,
        expected_spend_6m=six_months * spend_per_purchase,
        expected_spend_12m=purchases_over(12, fit) * spend_per_purchase,
        baseline_expected_spend_6m=purchases_over(6, None) * baseline["expected_spend_per_purchase"],
        baseline_clv=baseline["clv"],
        score_source=pl.lit("model" if fit is not None else "baseline"),
    )


def _churn_scores(connection, run: ModelRun, window: int) -> pl.DataFrame:
    """Train at one cutoff, test out of time at the next, refit on the latest and score every customer.

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
    train = _churn_dataset(connection, train_cutoff, window, labelled=True)
    test = _churn_dataset(connection, test_cutoff, window, labelled=True)
    current = _churn_dataset(
        connection, run.as_of, window, labelled=False, fit=_published_clv_fit(connection, run.as_of)
    )
    features = [
        column for column in train.columns if column in test.columns and column not in ("customer_id", "churned")
    ]
    current = current.with_columns(
        pl.lit(None, dtype=pl.Float64).alias(feature) for feature in features if feature not in current.columns
    )
    run.parameters = {
        "churn_window_days": window,
        "train_cutoff": train_cutoff,
        "test_cutoff": test_cutoff,
        "features": features,
        "estimator": "HistGradientBoostingClassifier",
        "baseline": "logistic regression on log(1 + days since the last order)",
    }
    run.rows_used = train.height + test.height
    for name, labelled in (("training", train), ("test", test)):
        if labelled.height == 0 or labelled["churned"].n_unique() < 2:
            run.score_source, run.beats_baseline = "none", False
            run.notes.append(
                f"No churn scores this run: the {name} cutoff has {labelled.height} customers and one outcome only "
                "(are the exports up to date?)."
            )
            return current.select("customer_id").with_columns(
                churn_probability=pl.lit(None, dtype=pl.Float64),
                risk_band=pl.lit(None, dtype=pl.String),
                churn_reasons=pl.lit(None, dtype=pl.List(pl.String)),
                baseline_churn_probability=pl.lit(None, dtype=pl.Float64),
                revenue_at_risk=pl.lit(None, dtype=pl.Float64),
                score_source=pl.lit("none"),
            )
    words = {feature: feature_label(feature) for feature in features}
    model, baseline = train_churn_model(train, features), train_recency_baseline(train)
    figures = evaluate_churn(model, baseline, test, labels_in_words=words)
    run.metrics, run.baseline_metrics = figures["model"], figures["baseline"]
    run.beats_baseline = figures["model"]["auc"] > figures["baseline"]["auc"]
    # the published scores come from a refit on the latest labelled cutoff (the test cutoff)
    latest_baseline = train_recency_baseline(test)
    if run.beats_baseline:
        scorer = train_churn_model(test, features)
    else:
        run.score_source = "baseline"
        run.notes.append(
            f"Out-of-time AUC {figures['model']['auc']:.3f} is not above the recency baseline's "
            f"{figures['baseline']['auc']:.3f}."
        )
        scorer = latest_baseline
    # a customer's reasons are sought among the model's drivers: each feature tried costs a prediction of everyone
    drivers = [driver["feature"] for driver in figures["model"]["drivers"]]
    scores = score_churn(scorer, current, labels_in_words=words, candidates=drivers).with_columns(
        baseline_churn_probability=pl.Series(latest_baseline.predict(current))
    )
    clv = connection.sql(
        "select customer_id, clv from ml.clv_scores where as_of = $as_of", params={"as_of": run.as_of}
    ).pl()
    return (
        scores.join(clv, on="customer_id", how="left")
        .with_columns(
            revenue_at_risk=pl.col("churn_probability") * pl.col("clv").fill_null(0),
            score_source=pl.lit(run.score_source),
        )
        .drop("clv")
    )


def _published_clv_fit(connection, as_of: date) -> ClvFit | None:
    """The fit the lifetime-value asset made at ``as_of`` (read back from its model run), if it made one."""
    rows = connection.sql(
        """select parameters from ml.model_runs
        where model_run_id = (select any_value(model_run_id) from ml.clv_scores where as_of = $as_of)""",
        params={"as_of": as_of},
    ).fetchall()
    parameters = json.loads(rows[0][0]) if rows and rows[0][0] else {}
    return ClvFit.from_dict(parameters) if "bgnbd" in parameters else None


def _churn_dataset(connection, cutoff: date, window: int, *, labelled: bool, fit: ClvFit | None = None) -> pl.DataFrame:
    """Behaviour as of ``cutoff`` plus BG/NBD's P(alive) and expected purchases, and the label when known. The
    purchase model is ``fit`` when the lifetime-value asset already made it at this cutoff, else fitted here
    (without the spend model, which these features do not use)."""
    features = behaviour(connection, cutoff)
    summary = clv_summary(connection, cutoff)
    try:
        fit = fit or fit_clv(summary, spend=False)
        bgnbd = predict_purchases(fit, summary, window).select(
            "customer_id", "p_alive", expected_purchases_in_window="expected_purchases"
        )
        features = features.join(bgnbd, on="customer_id", how="left")
    except ClvFitError:
        features = features.with_columns(
            p_alive=pl.lit(None, dtype=pl.Float64), expected_purchases_in_window=pl.lit(None, dtype=pl.Float64)
        )
    if not labelled:
        return features
    bought = window_actuals(connection, cutoff, window).filter(pl.col("purchases") > 0)["customer_id"]
    return features.with_columns(churned=~pl.col("customer_id").is_in(bought.implode()))
