{#- An order's amounts are the sums of its lines': fails on every order where they differ. -#}
with orders as (
    select * from {{ ref('fct_orders') }}
),

order_lines as (
    select * from {{ ref('fct_order_lines') }}
),

line_totals as (
    select
        order_id,
        count(*) as order_lines,
        sum(gross_amount) as gross_amount,
        sum(net_revenue) as net_revenue,
        sum(quantity - returned_quantity) as units_kept
    from order_lines
    group by order_id
)

select orders.order_id
from orders
left join line_totals on orders.order_id = line_totals.order_id
where
    line_totals.order_id is null
    or orders.order_lines != line_totals.order_lines
    or orders.gross_amount != line_totals.gross_amount
    or orders.net_revenue != line_totals.net_revenue
    or orders.units_kept != line_totals.units_kept
