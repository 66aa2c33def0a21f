with customers as (
    select * from {{ ref('dim_customers') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
),

cases as (
    select * from {{ ref('fct_support_cases') }}
),

channel_counts as (
    select
        customer_id,
        sales_channel,
        count(*) as orders,
        max(ordered_at) as last_ordered_at
    from orders
    group by customer_id, sales_channel
),

preferred_channels as (
    select
        customer_id,
        sales_channel as preferred_sales_channel
    from channel_counts
    qualify row_number() over (partition by customer_id order by orders desc, last_ordered_at desc) = 1
),

-- lifetime orders, revenue and first/last order come from dim_customers; only what it lacks is added here
order_summaries as (
    select
        customer_id,
        sum(margin) as lifetime_margin,
        max(ordered_at) as last_ordered_at
    from orders
    group by customer_id
),

case_summaries as (
    select
        customer_id,
        count(*) as support_cases,
        count(*) filter (where is_open) as open_support_cases,
        avg(satisfaction_score) as average_satisfaction,
        max(opened_at) as last_case_opened_at
    from cases
    where customer_id is not null
    group by customer_id
),

final as (
    select
        customers.customer_id,
        customers.country_code,
        customers.city,
        customers.email_masked,
        customers.phone_masked,
        customers.loyalty_tier,
        customers.trailing_12m_net_revenue,
        customers.lifetime_orders,
        customers.lifetime_net_revenue,
        coalesce(order_summaries.lifetime_margin, 0) as lifetime_margin,
        customers.lifetime_net_revenue / nullif(customers.lifetime_orders, 0) as average_order_value,
        customers.first_order_date,
        customers.last_order_date,
        preferred_channels.preferred_sales_channel,
        coalesce(case_summaries.support_cases, 0) as support_cases,
        coalesce(case_summaries.open_support_cases, 0) as open_support_cases,
        case_summaries.average_satisfaction,
        greatest(order_summaries.last_ordered_at, case_summaries.last_case_opened_at) as last_contact_at,
        customers.has_email_consent,
        customers.has_sms_consent,
        customers.has_phone_consent,
        customers.as_of_date,
        customers.reporting_currency_code
    from customers
    left join order_summaries on customers.customer_id = order_summaries.customer_id
    left join preferred_channels on customers.customer_id = preferred_channels.customer_id
    left join case_summaries on customers.customer_id = case_summaries.customer_id
)

select * from final
