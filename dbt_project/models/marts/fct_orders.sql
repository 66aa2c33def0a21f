with order_lines as (
    select * from {{ ref('int_order_lines_converted') }}
),

orders as (
    select
        order_id,
        erp_customer_id as customer_id,
        min(order_date) as order_date,
        min(ordered_at) as ordered_at,
        any_value(sales_channel) as sales_channel,
        any_value(store_id) as store_id,
        any_value(currency_code) as currency_code,
        count(*) as order_lines,
        sum(quantity - returned_quantity) as units_kept,
        sum(gross_amount) as gross_amount,
        sum(refund_amount) as refund_amount,
        sum(net_amount) as net_amount,
        sum(gross_revenue) as gross_revenue,
        sum(net_revenue) as net_revenue,
        sum(cost_of_goods) as cost_of_goods,
        any_value(reporting_currency_code) as reporting_currency_code
    from order_lines
    group by order_id, erp_customer_id
),

final as (
    select
        *,
        net_revenue - cost_of_goods as margin,
        row_number() over (partition by customer_id order by ordered_at, order_id) as customer_order_number,
        refund_amount > 0 as has_return
    from orders
)

select * from final
