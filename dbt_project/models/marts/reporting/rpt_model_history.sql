{#- Every model run the warehouse has recorded (ml.model_runs, every as-of and every re-run), with its headline
    figure beside its baseline's, so a page can show how each model has done run after run. The headline of a model
    is the figure its protocol judges it by: for lifetime value the holdout root mean squared error of spend (the
    figure that decides whether the model beats its baseline), for churn the out-of-time AUC, for next best offers the holdout hit rate at offer_count; the models without a
    baseline show a count that says what they found. DuckDB-only for now: the figures are read from the JSON
    metrics with DuckDB's ->> operator. -#}
with runs as (
    select * from {{ source('ml', 'model_runs') }}
),

-- what each model is called on the pages and which figure heads it
catalogue as (
    select
        'clv' as model,  -- noqa: RF04
        'Lifetime value' as model_label,
        'rmse_spend' as headline_metric,
        'holdout root mean squared error of spend' as headline_label,
        true as lower_is_better
    union all
    select
        'churn' as model,  -- noqa: RF04
        'Churn risk' as model_label,
        'auc' as headline_metric,
        'out-of-time AUC' as headline_label,
        false as lower_is_better
    union all
    select
        'rfm' as model,  -- noqa: RF04
        'RFM segments' as model_label,
        'segments' as headline_metric,
        'segments with customers' as headline_label,
        cast(null as boolean) as lower_is_better
    union all
    select
        'behaviour_segments' as model,  -- noqa: RF04
        'Behaviour segments' as model_label,
        'k' as headline_metric,
        'segments (k, chosen by silhouette)' as headline_label,
        cast(null as boolean) as lower_is_better
    union all
    select
        'tier_movement' as model,  -- noqa: RF04
        'Tier movement' as model_label,
        'upgrade candidate' as headline_metric,
        'upgrade candidates' as headline_label,
        cast(null as boolean) as lower_is_better
    union all
    select
        'next_best_offer' as model,  -- noqa: RF04
        'Next best offers' as model_label,
        'hit_rate_at_k' as headline_metric,
        'holdout hit rate at offer_count' as headline_label,
        false as lower_is_better
    union all
    select
        'basket_rules' as model,  -- noqa: RF04
        'Basket rules' as model_label,
        'rules_product' as headline_metric,
        'product rules' as headline_label,
        cast(null as boolean) as lower_is_better
),

final as (
    select
        runs.model,
        coalesce(catalogue.model_label, runs.model) as model_label,
        runs.as_of,
        runs.run_id,
        runs.model_run_id,
        runs.finished_at,
        runs.score_source,
        runs.beats_baseline,
        catalogue.headline_metric,
        catalogue.headline_label,
        catalogue.lower_is_better,
        cast(case runs.model
            when 'clv' then runs.metrics ->> '$.rmse_spend'
            when 'churn' then runs.metrics ->> '$.auc'
            when 'rfm' then runs.metrics ->> '$.segments'
            when 'behaviour_segments' then runs.metrics ->> '$.k'
            when 'tier_movement' then runs.metrics ->> '$."upgrade candidate"'
            when 'next_best_offer' then runs.metrics ->> '$.hit_rate_at_k'
            when 'basket_rules' then runs.metrics ->> '$.rules_product'
        end as double) as model_value,
        cast(case runs.model
            when 'clv' then runs.baseline_metrics ->> '$.rmse_spend'
            when 'churn' then runs.baseline_metrics ->> '$.auc'
            when 'next_best_offer' then runs.baseline_metrics ->> '$.hit_rate_at_k'
        end as double) as baseline_value,
        runs.rows_used,
        runs.duration_seconds,
        -- the night whose fit scored (an earlier one's with model_refit_days); older runs fitted their own
        coalesce(runs.fitted_as_of, runs.as_of) as fitted_as_of
    from runs
    left join catalogue on runs.model = catalogue.model
)

select * from final
