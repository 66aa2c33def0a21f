"""ML assets: load what a model reads as of the run's cutoff (pipelines/ml/features.py), call its run function
(models_ml), write the tables it returns to schema ml.

Every model asset records its fit in ml.model_runs beside its baseline's figures, with the canonical inputs that
fed it. The lifetime-value and churn models carry a non-blocking ``beats_baseline`` check: when the model does
worse than its baseline on data it did not see (or cannot be fitted), the check warns, the run publishes the
baseline's scores instead, and the scores' ``score_source`` column says so. When the data cannot support a model
at all, its run publishes the baseline, or no scores, with the reason in its notes. A model never fails the night.
Tables that are functions of the scores (segment summaries, moves between runs, revenue at risk) are dbt models.
"""

from datetime import UTC, datetime

import dagster as dg

from models_ml import (
    HOLDOUT_FIGURE,
    ModelOutput,
    baseline_check,
    churn_fit_key,
    clv_fit_key,
    run_churn,
    run_clv,
    run_rfm,
    run_segments,
    run_tier_movement,
    segments_fit_key,
)
from pipelines.ml.features import (
    available_inputs,
    behaviour,
    churn_inputs,
    clv_inputs,
    describe_inputs,
    feature_label,
    rfm_inputs,
    tier_inputs,
    with_labelled_cutoffs,
)
from pipelines.ml.model_fits import store_fit, stored_fit
from pipelines.ml.model_runs import ModelRun, record_model_run, write_scores
from pipelines.resources import Warehouse, as_of_date
from pipelines.settings import Settings

MARTS = "marts"


def asset_key(*parts: str) -> dg.AssetKey:
    return dg.AssetKey(list(parts))


def started_run(context: dg.AssetExecutionContext, settings: Settings, model: str) -> ModelRun:
    return ModelRun(
        model=model,
        as_of=as_of_date(context, settings.today()),
        run_id=context.run.run_id,
        started_at=datetime.now(UTC).replace(tzinfo=None),
    )


def save_run(warehouse: Warehouse, run: ModelRun, output: ModelOutput) -> str:
    """Record the run, with the canonical inputs that fed it (and a sentence when some it reads had no data), and
    write its tables; return the model run's id.

    The model assets read their inputs, close the warehouse, fit, and only then open it again here: an open
    connection keeps the pages it read cached up to the engine's memory limit, which would count twice beside the
    fit's own memory (4 GiB of cache beside the offers' 6 GiB at a million customers).
    """
    with warehouse.connect() as connection:
        run.inputs, note = describe_inputs(run.model, available_inputs(connection, run.as_of))
        if note:
            run.notes.append(note)
        run.took(output)
        model_run_id = record_model_run(connection, run)
        for table, frame in output.tables.items():
            write_scores(connection, table, frame, run)
        if output.fit is not None and output.fit_key is not None:
            store_fit(connection, run.model, output.fit_key, run.as_of, model_run_id, output.fit)
    return model_run_id


def _materialized(run: ModelRun, output: ModelOutput, table: str, model_run_id: str, **figures) -> dg.MaterializeResult:
    metadata = {"dagster/row_count": output.tables[table].height, "model_run_id": model_run_id}
    return dg.MaterializeResult(metadata={**metadata, "score_source": run.score_source, **figures})


def baseline_check_result(run: ModelRun, figure: str, lower_is_better: bool) -> dg.AssetCheckResult:
    check = baseline_check(run.verdict, figure, lower_is_better=lower_is_better)
    return dg.AssetCheckResult(
        check_name="beats_baseline",
        passed=check.passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=check.description,
        metadata=check.metadata,
    )


def build_ml_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    @dg.asset(
        key=asset_key("ml", "rfm_scores"),
        deps=[asset_key(MARTS, "dim_customers")],
        group_name="ml",
        kinds={"python", "duckdb"},
        description="RFM quintile scores and named segment of every customer who has ordered (ml.rfm_scores, "
        "kept for every as-of date: segment sizes and moves between runs are dbt models over it).",
    )
    def rfm_scores(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        run = started_run(context, settings, "rfm")
        with warehouse.connect() as connection:
            inputs = rfm_inputs(connection)
        output = run_rfm(inputs, as_of=run.as_of, window_days=settings.rfm_window_days)
        model_run_id = save_run(warehouse, run, output)
        segments = output.tables["rfm_scores"].group_by("segment").len().sort("len", descending=True)
        by_segment = dg.MetadataValue.json(dict(segments.iter_rows()))
        return _materialized(
            run, output, "rfm_scores", model_run_id, as_of=run.as_of.isoformat(), customers_by_segment=by_segment
        )

    @dg.asset(
        key=asset_key("ml", "clv_scores"),
        deps=[asset_key(MARTS, "fct_orders")],
        group_name="ml",
        kinds={"python", "duckdb"},
        check_specs=[dg.AssetCheckSpec("beats_baseline", asset=asset_key("ml", "clv_scores"), blocking=False)],
        description="Lifetime value of every customer who has ordered: expected purchases and P(alive) from the "
        "purchase model (BG/NBD, MBG/NBD or Pareto/NBD) with the lowest holdout error among those that beat the "
        "historical-rate baseline on the last clv_holdout_months, Gamma-Gamma spend, discounted CLV over the "
        "horizon (ml.clv_scores); frequency/recency matrices for plots (ml.clv_matrices). The baseline's scores are "
        "published when no model beats it. With model_refit_days above 1, the holdout check runs on one night in "
        "that many and the nights between refit the candidate it chose on their own history (meta.model_fits).",
    )
    def clv_scores(context: dg.AssetExecutionContext, warehouse: Warehouse):
        run = started_run(context, settings, "clv")
        holdout_months = settings.clv_holdout_months
        with warehouse.connect() as connection:
            key = clv_fit_key(holdout_months)
            stored = stored_fit(connection, run.model, key, run.as_of, settings.model_refit_days)
            inputs = clv_inputs(connection, run.as_of, holdout_months, checked=stored is None)
        output = run_clv(
            inputs,
            holdout_months=holdout_months,
            horizon_months=settings.clv_horizon_months,
            annual_discount_rate=settings.clv_discount_rate,
            stored=stored,
        )
        model_run_id = save_run(warehouse, run, output)
        baseline = run.baseline_metrics or {}
        yield _materialized(
            run, output, "clv_scores", model_run_id,
            holdout_mae_spend=run.metrics.get("mae_spend"), baseline_holdout_mae_spend=baseline.get("mae_spend"),
        )  # fmt: skip
        yield baseline_check_result(run, HOLDOUT_FIGURE, lower_is_better=True)

    @dg.asset(
        key=asset_key("ml", "churn_scores"),
        deps=[
            asset_key("ml", "clv_scores"),
            asset_key(MARTS, "fct_interactions"),
            asset_key(MARTS, "fct_support_cases"),
        ],
        group_name="ml",
        kinds={"python", "duckdb"},
        check_specs=[dg.AssetCheckSpec("beats_baseline", asset=asset_key("ml", "churn_scores"), blocking=False)],
        description="Churn probability (no purchase in the next churn_window_days), risk band and the top reasons "
        "of every customer who has ordered (ml.churn_scores), from purchase history, service contacts and "
        "engagement (web sessions, email opens and clicks); trained on an earlier cutoff, tested out of time on a "
        "later one against a recency-only baseline (figures in ml.model_runs). With model_refit_days above 1, the "
        "model is fitted on one night in that many and the nights between score with that fit (meta.model_fits).",
    )
    def churn_scores(context: dg.AssetExecutionContext, warehouse: Warehouse):
        run = started_run(context, settings, "churn")
        window = settings.churn_window_days
        with warehouse.connect() as connection:
            # the customers to score first: they say which stored fit, if any, tonight may score with
            inputs = churn_inputs(connection, run.as_of, window, labelled=False)
            key = churn_fit_key(inputs.current, window, sample=settings.churn_training_customers)
            stored = stored_fit(connection, run.model, key, run.as_of, settings.model_refit_days)
            if stored is None:
                inputs = with_labelled_cutoffs(connection, inputs, window)
        output = run_churn(
            inputs, window_days=window, feature_label=feature_label, sample=settings.churn_training_customers,
            stored=stored,
        )  # fmt: skip
        model_run_id = save_run(warehouse, run, output)
        baseline = run.baseline_metrics or {}
        yield _materialized(
            run, output, "churn_scores", model_run_id, out_of_time_auc=run.metrics.get("auc"),
            baseline_auc=baseline.get("auc"), top_decile_lift=run.metrics.get("top_decile_lift"),
        )  # fmt: skip
        yield baseline_check_result(run, "auc", lower_is_better=False)

    @dg.asset(
        key=asset_key("ml", "tier_movement"),
        deps=[asset_key("ml", "clv_scores"), asset_key(MARTS, "dim_customers")],
        group_name="ml",
        kinds={"python", "duckdb"},
        description="Loyalty tier upgrade candidates and downgrade risks from trailing spend and the spend the "
        "lifetime-value model predicts for the next 12 months (ml.tier_movement).",
    )
    def tier_movement_scores(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        run = started_run(context, settings, "tier_movement")
        thresholds = {
            "silver": settings.tier_silver_min_spend,
            "gold": settings.tier_gold_min_spend,
            "platinum": settings.tier_platinum_min_spend,
        }
        with warehouse.connect() as connection:
            inputs = tier_inputs(connection, run.as_of)
        output = run_tier_movement(inputs, thresholds, closeness=settings.tier_upgrade_closeness, as_of=run.as_of)
        model_run_id = save_run(warehouse, run, output)
        return _materialized(run, output, "tier_movement", model_run_id, **run.metrics)

    @dg.asset(
        key=asset_key("ml", "behaviour_segments"),
        deps=[
            asset_key(MARTS, "fct_interactions"),
            asset_key(MARTS, "fct_order_lines"),
            asset_key(MARTS, "fct_support_cases"),
        ],
        group_name="ml",
        kinds={"python", "duckdb"},
        description="Behavioural segments: k-means on standardised behaviour (recency, frequency, spend, "
        "category and channel mix, service contacts, campaign responsiveness, web activity), k chosen by "
        "silhouette, each segment described in words (ml.behaviour_segments, ml.behaviour_segment_profiles). With "
        "model_refit_days above 1, k is chosen and fitted on one night in that many and the nights between assign "
        "their customers to that fit's segments (meta.model_fits).",
    )
    def behaviour_segments(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        run = started_run(context, settings, "behaviour_segments")
        with warehouse.connect() as connection:
            inputs = behaviour(connection, run.as_of)
            key = segments_fit_key(inputs)
            stored = stored_fit(connection, run.model, key, run.as_of, settings.model_refit_days)
        output = run_segments(inputs, feature_label=feature_label, stored=stored)
        model_run_id = save_run(warehouse, run, output)
        profiles = output.tables["behaviour_segment_profiles"].select("cluster_name", "customers")
        segments = dg.MetadataValue.json(dict(profiles.iter_rows()))
        return _materialized(run, output, "behaviour_segments", model_run_id, k=run.metrics.get("k"), segments=segments)

    return [rfm_scores, clv_scores, churn_scores, tier_movement_scores, behaviour_segments]
