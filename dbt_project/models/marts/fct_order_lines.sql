with order_lines as (
    select * from {{ ref('int_order_lines_converted') }}
),

final as (
    select
        order_line_id,
        order_id,
        line_number,
        erp_customer_id as customer_id,
        product_id,
        order_date,
        ordered_at,
        sales_channel,
        store_id,
        quantity,
        returned_quantity,
        unit_price,
        gross_amount,
        refund_amount,
        net_amount,
        currency_code,
        gross_revenue,
        net_revenue,
        cost_of_goods,
        net_revenue - cost_of_goods as margin,
        reporting_currency_code
    from order_lines
)

select * from final
