{#- Predicted against observed, bin by bin, for the published lifetime-value and churn runs of the cutoff, the
    model's and its baseline's: churn in ten bins of predicted probability (the observed churn rate in each), lifetime
    value in deciles of predicted holdout spend (the mean spend customers then had). A run that recorded no bins
    has no rows. DuckDB-only for now: the bins are unnested from the JSON metrics with DuckDB's json_each. -#}
with figures as (
    select * from {{ ref('rpt_model_figures') }}
    where model in ('clv', 'churn')
),

-- churn lists its bins in order of predicted probability; lifetime value numbers its deciles
bins as (
    select
        figures.model,
        figures.scorer,
        case
            when figures.model = 'churn' then cast(points.key as integer) + 1
            else cast(points.value ->> '$.decile' as integer)
        end as bin,
        cast(points.value ->> '$.predicted' as double) as predicted,
        cast(points.value ->> '$.observed' as double) as observed,
        cast(points.value ->> '$.customers' as bigint) as customers
    from figures
    cross join
        json_each(figures.figures, case when figures.model = 'churn' then '$.calibration' else '$.deciles' end)
            as points
),

final as (
    select
        model,
        scorer,
        bin,
        predicted,
        observed,
        customers
    from bins
)

select * from final
