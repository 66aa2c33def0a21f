{#- The figures of each model run the scorecard publishes, one row for the model's and one for its baseline's
    (the JSON the run recorded in ml.model_runs): what the calibration, curve and driver marts unnest. -#}
with scorecard as (
    select * from {{ ref('rpt_model_scorecard') }}
),

runs as (
    select * from {{ source('ml', 'model_runs') }}
),

published as (
    select runs.*
    from runs
    inner join scorecard on runs.model_run_id = scorecard.model_run_id
),

final as (
    select
        model,
        model_run_id,
        'model' as scorer,
        metrics as figures
    from published
    union all
    select
        model,
        model_run_id,
        'baseline' as scorer,
        baseline_metrics as figures
    from published
    where baseline_metrics is not null
)

select * from final
