{#- Where the tier-movement model sees customers going: one row per current tier, predicted tier and movement
    (upgrade candidate, downgrade risk, stable), with the customers and their trailing and predicted 12-month spend,
    as of the cutoff. -#}
with movements as (
    select * from {{ source('ml', 'tier_movement') }}
    where as_of = {{ as_of_date() }}
),

final as (
    select
        loyalty_tier,
        case loyalty_tier
            when 'platinum' then 1
            when 'gold' then 2
            when 'silver' then 3
            when 'bronze' then 4
            else 5
        end as tier_rank,
        predicted_tier,
        movement,
        count(*) as customers,
        sum(trailing_12m_net_revenue) as net_revenue_12m,
        sum(expected_spend_12m) as expected_spend_12m
    from movements
    group by loyalty_tier, predicted_tier, movement
)

select * from final
