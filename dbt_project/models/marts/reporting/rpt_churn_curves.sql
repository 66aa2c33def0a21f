{#- The published churn run's curves, the model's and its baseline's, point by point: the ROC curve (x the false
    positive rate, y the true positive rate, as the threshold falls) and the cumulative gains (x the share of
    customers contacted, riskiest first, y the share of all churners they hold). A run that recorded no curve has
    no rows, and a point without a value (no churners to find) is left out. DuckDB-only for now: the points are
    unnested from the JSON metrics with DuckDB's json_each. -#}
with figures as (
    select * from {{ ref('rpt_model_figures') }}
    where model = 'churn'
),

points as (
    select
        figures.scorer,
        'roc' as curve,
        cast(roc.key as integer) + 1 as point,  -- noqa: RF04
        cast(roc.value ->> '$.fpr' as double) as x,
        cast(roc.value ->> '$.tpr' as double) as y
    from figures
    cross join json_each(figures.figures, '$.roc') as roc
    union all
    select
        figures.scorer,
        'gains' as curve,
        cast(gains.key as integer) + 1 as point,  -- noqa: RF04
        cast(gains.value ->> '$.share_contacted' as double) as x,
        cast(gains.value ->> '$.share_of_churners' as double) as y
    from figures
    cross join json_each(figures.figures, '$.gains') as gains
),

final as (
    select
        scorer,
        curve,
        point,
        x,
        y
    from points
    where x is not null and y is not null
)

select * from final
