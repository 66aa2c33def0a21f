{#- Cohort retention: customers by the month of their first purchase, and the share of each cohort that bought
    again in each month after it (month 0 is the first purchase itself). -#}
with orders as (
    select * from {{ ref('fct_orders') }}
),

first_purchases as (
    select
        customer_id,
        {{ dbt.date_trunc('month', 'min(order_date)') }} as cohort_month
    from orders
    group by customer_id
),

activity as (
    select distinct
        orders.customer_id,
        first_purchases.cohort_month,
        {{ dbt.datediff('first_purchases.cohort_month', dbt.date_trunc('month', 'orders.order_date'), 'month') }}
            as months_since_first_purchase
    from orders
    inner join first_purchases on orders.customer_id = first_purchases.customer_id
),

cohort_sizes as (
    select
        cohort_month,
        count(*) as cohort_customers
    from first_purchases
    group by cohort_month
),

final as (
    select
        cast(activity.cohort_month as date) as cohort_month,
        activity.months_since_first_purchase,
        cohort_sizes.cohort_customers,
        count(*) as active_customers,
        count(*) / cohort_sizes.cohort_customers as retention_rate
    from activity
    inner join cohort_sizes on activity.cohort_month = cohort_sizes.cohort_month
    group by activity.cohort_month, activity.months_since_first_purchase, cohort_sizes.cohort_customers
)

select * from final
