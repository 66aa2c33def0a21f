{#- One row per order with at least one kept line: its lines summed. The cost of goods and the margin of an order
    are unknown (null) when the cost of any of its lines is unknown, never a partial sum. -#}
with order_lines as (
    select * from {{ ref('int_order_lines_converted') }}
),

orders as (
    select * from {{ ref('int_orders_classified') }}
    where exclusion_reason_code is null
),

summed as (
    select
        order_id,
        erp_customer_id as customer_id,
        min(order_date) as order_date,
        min(ordered_at) as ordered_at,
        min(sales_channel) as sales_channel,
        min(store_id) as store_id,
        min(currency_code) as currency_code,
        count(*) as order_lines,
        sum(quantity - returned_quantity) as units_kept,
        sum(gross_amount) as gross_amount,
        sum(refund_amount) as refund_amount,
        sum(net_amount) as net_amount,
        sum(gross_revenue) as gross_revenue,
        sum(net_revenue) as net_revenue,
        {{ sum_if_all_known('cost_of_goods') }} as cost_of_goods,
        min(reporting_currency_code) as reporting_currency_code
    from order_lines
    group by order_id, erp_customer_id
),

final as (
    select
        summed.order_id,
        summed.customer_id,
        summed.order_date,
        summed.ordered_at,
        summed.sales_channel,
        summed.store_id,
        summed.currency_code,
        summed.order_lines,
        summed.units_kept,
        summed.gross_amount,
        summed.refund_amount,
        summed.net_amount,
        summed.gross_revenue,
        summed.net_revenue,
        summed.cost_of_goods,
        summed.reporting_currency_code,
        summed.net_revenue - summed.cost_of_goods as margin,
        row_number() over (partition by summed.customer_id order by summed.ordered_at, summed.order_id)
            as customer_order_number,
        summed.refund_amount > 0 as has_return,
        orders.source_file,
        orders.source_row_number
    from summed
    inner join orders on summed.order_id = orders.order_id
)

select * from final
