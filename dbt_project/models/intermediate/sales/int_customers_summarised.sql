{#- Each ERP customer's purchase history as of the cutoff: the inputs of tiers and RFM. Orders are counted
    by distinct day (same-day orders are one purchase occasion, as BG/NBD counts them). -#}
{%- set cutoff_date = as_of_date() %}
{%- set rfm_window_days = crm_number(var('rfm_window_days'), 'rfm_window_days') %}
{%- set silver_min_spend = crm_number(var('tier_silver_min_spend'), 'tier_silver_min_spend') %}
{%- set gold_min_spend = crm_number(var('tier_gold_min_spend'), 'tier_gold_min_spend') %}
{%- set platinum_min_spend = crm_number(var('tier_platinum_min_spend'), 'tier_platinum_min_spend') %}

with order_lines as (
    select * from {{ ref('int_order_lines_converted') }}
),

orders as (
    select
        erp_customer_id,
        order_id,
        min(order_date) as order_date,
        sum(net_revenue) as net_revenue
    from order_lines
    group by erp_customer_id, order_id
),

summarised as (
    select
        erp_customer_id,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date,
        count(*) as lifetime_orders,
        count(distinct order_date) as lifetime_purchase_days,
        sum(net_revenue) as lifetime_net_revenue,
        coalesce(sum(net_revenue) filter (
            where order_date >= {{ cutoff_date }} - interval 365 day
        ), 0) as trailing_12m_net_revenue,
        count(*) filter (
            where order_date >= {{ cutoff_date }} - interval ({{ rfm_window_days }}) day
        ) as rfm_window_orders,
        coalesce(sum(net_revenue) filter (
            where order_date >= {{ cutoff_date }} - interval ({{ rfm_window_days }}) day
        ), 0) as rfm_window_net_revenue
    from orders
    group by erp_customer_id
),

with_cutoff as (
    select
        *,
        {{ cutoff_date }} as as_of_date
    from summarised
),

final as (
    select
        erp_customer_id,
        first_order_date,
        last_order_date,
        lifetime_orders,
        lifetime_purchase_days,
        lifetime_net_revenue,
        trailing_12m_net_revenue,
        rfm_window_orders,
        rfm_window_net_revenue,
        {{ dbt.datediff('last_order_date', 'as_of_date', 'day') }} as days_since_last_order,  -- noqa: LT05
        {{ dbt.datediff('first_order_date', 'as_of_date', 'day') }} as tenure_days,  -- noqa: LT05
        case
            when trailing_12m_net_revenue >= {{ platinum_min_spend }} then 'platinum'
            when trailing_12m_net_revenue >= {{ gold_min_spend }} then 'gold'
            when trailing_12m_net_revenue >= {{ silver_min_spend }} then 'silver'
            else 'bronze'
        end as loyalty_tier
    from with_cutoff
)

select * from final
