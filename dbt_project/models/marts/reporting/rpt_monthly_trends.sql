{#- Activity per calendar month, from the month of the first order to the month of the last day before the cutoff,
    every month listed (a month without orders reads zero, so a chart shows the gap rather than skipping it). The
    last month is partial when the cutoff falls inside it: its figures are not a whole month's. -#}
with orders as (
    select * from {{ ref('fct_orders') }}
),

calendar as (
    select * from {{ ref('dim_date') }}
),

first_orders as (
    select
        customer_id,
        {{ dbt.date_trunc('month', 'min(order_date)') }} as first_order_month
    from orders
    group by customer_id
),

bounds as (
    select
        {{ dbt.date_trunc('month', 'min(order_date)') }} as first_month,
        {{ dbt.date_trunc('month', dbt.dateadd('day', -1, as_of_date())) }} as last_month
    from orders
),

months as (
    select
        calendar.date_day as month_start,
        calendar.calendar_month as month_label
    from calendar
    cross join bounds
    where
        calendar.day_of_month = 1
        and calendar.date_day >= bounds.first_month
        and calendar.date_day <= bounds.last_month
),

monthly_orders as (
    select
        cast({{ dbt.date_trunc('month', 'order_date') }} as date) as month_start,
        count(distinct customer_id) as active_customers,
        count(*) as orders,
        sum(net_revenue) as net_revenue
    from orders
    group by {{ dbt.date_trunc('month', 'order_date') }}
),

monthly_new as (
    select
        cast(first_order_month as date) as month_start,
        count(*) as new_customers
    from first_orders
    group by first_order_month
),

final as (
    select
        months.month_start,
        months.month_label,
        cast({{ dbt.dateadd('month', 1, 'months.month_start') }} as date) > {{ as_of_date() }} as is_partial_month,
        coalesce(monthly_orders.active_customers, 0) as active_customers,
        coalesce(monthly_new.new_customers, 0) as new_customers,
        coalesce(monthly_orders.active_customers, 0) - coalesce(monthly_new.new_customers, 0) as returning_customers,
        coalesce(monthly_orders.orders, 0) as orders,
        coalesce(monthly_orders.net_revenue, 0) as net_revenue,
        monthly_orders.net_revenue / nullif(monthly_orders.orders, 0) as average_order_value
    from months
    left join monthly_orders on months.month_start = monthly_orders.month_start
    left join monthly_new on months.month_start = monthly_new.month_start
)

select * from final
