{#- How concentrated revenue is: customers ranked by lifetime net revenue, in percentiles (1 = the top 1%), with
    the cumulative share of customers and of revenue: the Pareto curve ("the top 20% bring 63%"). -#}
with customers as (
    select * from {{ ref('dim_customers') }}
),

ranked as (
    select
        customer_id,
        lifetime_net_revenue,
        row_number() over (order by lifetime_net_revenue desc, customer_id asc) as revenue_rank,
        count(*) over () as customers
    from customers
    where lifetime_orders > 0
),

percentiles as (
    select
        cast(ceil(100.0 * revenue_rank / customers) as integer) as customer_percentile,
        count(*) as customers,
        sum(lifetime_net_revenue) as net_revenue
    from ranked
    group by customer_percentile
),

final as (
    select
        customer_percentile,
        customers,
        net_revenue,
        sum(customers) over (order by customer_percentile) / sum(customers) over () as cumulative_customer_share,
        sum(net_revenue) over (order by customer_percentile) / sum(net_revenue) over () as cumulative_revenue_share
    from percentiles
)

select * from final
