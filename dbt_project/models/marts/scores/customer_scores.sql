{#- Each customer's scores as of the run's cutoff, one row per customer who has been scored: RFM, lifetime value,
    churn risk, tier movement and behavioural segment, each with the model run that made it and whether the
    model's or its baseline's scores were published. What customer_360, the rollups and the history read. -#}
with rfm as (
    select * from {{ source('ml', 'rfm_scores') }}
    where as_of = {{ as_of_date() }}
),

clv as (
    select * from {{ source('ml', 'clv_scores') }}
    where as_of = {{ as_of_date() }}
),

churn as (
    select * from {{ source('ml', 'churn_scores') }}
    where as_of = {{ as_of_date() }}
),

risk as (
    select * from {{ ref('customer_revenue_at_risk') }}
    where as_of = {{ as_of_date() }}
),

tiers as (
    select * from {{ source('ml', 'tier_movement') }}
    where as_of = {{ as_of_date() }}
),

behaviour as (
    select * from {{ source('ml', 'behaviour_segments') }}
    where as_of = {{ as_of_date() }}
),

final as (
    select
        rfm.customer_id,
        rfm.recency_score,
        rfm.frequency_score,
        rfm.monetary_score,
        rfm.rfm_cell,
        rfm.segment as rfm_segment,
        rfm.model_run_id as rfm_model_run_id,
        clv.p_alive,
        clv.expected_purchases as expected_purchases_horizon,
        clv.expected_spend as expected_spend_horizon,
        clv.expected_spend_6m,
        clv.expected_spend_12m,
        clv.clv,
        clv.score_source as clv_score_source,
        clv.model_run_id as clv_model_run_id,
        churn.churn_probability,
        churn.risk_band as churn_risk_band,
        risk.revenue_at_risk,
        churn.churn_reasons,
        churn.score_source as churn_score_source,
        churn.model_run_id as churn_model_run_id,
        tiers.movement as tier_movement,
        tiers.predicted_tier,
        tiers.next_tier,
        tiers.spend_to_next_tier,
        tiers.reason as tier_movement_reason,
        behaviour.cluster as behaviour_segment_number,
        behaviour.cluster_name as behaviour_segment,
        rfm.as_of as as_of_date
    from rfm
    left join clv on rfm.customer_id = clv.customer_id
    left join churn on rfm.customer_id = churn.customer_id
    left join risk on rfm.customer_id = risk.customer_id
    left join tiers on rfm.customer_id = tiers.customer_id
    left join behaviour on rfm.customer_id = behaviour.customer_id
)

select * from final
