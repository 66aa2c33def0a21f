{#- The loyalty tiers at the cutoff, one row per tier that has customers: how many, their trailing 12-month net
    revenue, each as a share of all customers with a tier, and how many the tier-movement model calls upgrade
    candidates, downgrade risks or stable (customers it did not score are in none of the three). -#}
with customers as (
    select * from {{ ref('dim_customers') }}
),

scores as (
    select * from {{ ref('customer_scores') }}
),

tiered as (
    select
        customers.loyalty_tier,
        customers.trailing_12m_net_revenue,
        scores.tier_movement
    from customers
    left join scores on customers.customer_id = scores.customer_id
    where customers.loyalty_tier is not null
),

tiers as (
    select
        loyalty_tier,
        count(*) as customers,
        sum(trailing_12m_net_revenue) as net_revenue_12m,
        cast(sum(case when tier_movement = 'upgrade candidate' then 1 else 0 end) as bigint) as upgrade_candidates,
        cast(sum(case when tier_movement = 'downgrade risk' then 1 else 0 end) as bigint) as downgrade_risks,
        cast(sum(case when tier_movement = 'stable' then 1 else 0 end) as bigint) as stable  -- noqa: RF04
    from tiered
    group by loyalty_tier
),

totals as (
    select
        sum(customers) as customers,
        sum(net_revenue_12m) as net_revenue_12m
    from tiers
),

final as (
    select
        tiers.loyalty_tier,
        case tiers.loyalty_tier
            when 'platinum' then 1
            when 'gold' then 2
            when 'silver' then 3
            when 'bronze' then 4
            else 5
        end as tier_rank,
        tiers.customers,
        tiers.customers / totals.customers as customer_share,
        tiers.net_revenue_12m,
        cast(tiers.net_revenue_12m as double) / nullif(cast(totals.net_revenue_12m as double), 0) as revenue_share,
        tiers.upgrade_candidates,
        tiers.downgrade_risks,
        tiers.stable
    from tiers
    cross join totals
)

select * from final
