{#- One row per model as of the cutoff: its latest run of this as-of (whose scores the marts hold, since each run
    replaces the scores of its as-of), its headline figure beside its baseline's, whose scores are published, and
    the verdict in a sentence a user can read. -#}
with history as (
    select * from {{ ref('rpt_model_history') }}
),

runs as (
    select * from {{ source('ml', 'model_runs') }}
),

latest as (
    select * from history
    where as_of = {{ as_of_date() }}
    qualify row_number() over (
        partition by model order by finished_at desc nulls last, model_run_id desc
    ) = 1
),

final as (
    select
        latest.model,
        latest.model_label,
        latest.headline_metric,
        latest.headline_label,
        latest.lower_is_better,
        latest.model_value,
        latest.baseline_value,
        latest.beats_baseline,
        latest.score_source,
        case
            when latest.score_source = 'none' then 'No scores are published this run: the notes say why.'
            when runs.baseline_metrics is null and latest.score_source = 'model'
                then 'No baseline: the model''s scores are published.'
            when runs.baseline_metrics is null
                then 'The model could not be fitted: the baseline''s scores are published.'
            when latest.model_value is null or latest.baseline_value is null
                then concat(
                    'The ', coalesce(latest.headline_label, 'headline figure'),
                    ' could not be computed for both the model and the baseline: ',
                    case when latest.score_source = 'model' then 'the model''s' else 'the baseline''s' end,
                    ' scores are published.'
                )
            else concat(
                'The model''s ', latest.headline_label, ', ', printf('%.3f', latest.model_value), ', ',
                case when latest.beats_baseline then 'beats' else 'does not beat' end,
                ' the baseline''s ', printf('%.3f', latest.baseline_value), ': ',
                case
                    when latest.score_source = 'model' then 'its scores are published.'
                    else 'the baseline''s scores are published.'
                end
            )
        end as verdict,
        runs.notes,
        latest.model_run_id,
        latest.finished_at,
        latest.fitted_as_of
    from latest
    inner join runs on latest.model_run_id = runs.model_run_id
)

select * from final
