{#- What drives the published churn run's predictions, the model's and its baseline's: each feature with how much
    the out-of-time AUC drops when it is shuffled (permutation importance), ranked from the largest drop.
    DuckDB-only for now: the drivers are unnested from the JSON metrics with DuckDB's json_each. -#}
with figures as (
    select * from {{ ref('rpt_model_figures') }}
    where model = 'churn'
),

drivers as (
    select
        figures.scorer,
        drivers.value ->> '$.feature' as feature,
        drivers.value ->> '$.label' as label,  -- noqa: RF04
        cast(drivers.value ->> '$.auc_drop' as double) as auc_drop
    from figures
    cross join json_each(figures.figures, '$.drivers') as drivers
),

final as (
    select
        scorer,
        row_number() over (partition by scorer order by auc_drop desc nulls last, feature asc) as rank,
        feature,
        label,
        auc_drop
    from drivers
)

select * from final
