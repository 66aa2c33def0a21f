{#- Revenue at risk of every customer the churn model scored, per run (as-of date): the churn probability times the
    lifetime value the same run published, 0 for a customer without one (no purchase occasion to value) and null
    when the run published no churn probability. Every run is kept, so the loyalty KPIs compare with the run
    before. -#}
with churn as (
    select * from {{ source('ml', 'churn_scores') }}
),

clv as (
    select * from {{ source('ml', 'clv_scores') }}
),

final as (
    select
        churn.customer_id,
        churn.as_of,
        churn.churn_probability,
        clv.clv,
        churn.churn_probability * coalesce(clv.clv, 0) as revenue_at_risk,
        churn.model_run_id as churn_model_run_id,
        clv.model_run_id as clv_model_run_id
    from churn
    left join clv on churn.customer_id = clv.customer_id and churn.as_of = clv.as_of
)

select * from final
