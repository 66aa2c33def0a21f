{#- One row per order with at least one kept line: its lines (fct_order_lines) summed. The cost of goods and the
    margin of an order are unknown (null) when the cost of any of its lines is unknown, never a partial sum.
    Built incrementally (dbt_project.yml, macros/rebuild_plan.sql): when tonight's plan says so, only the orders
    of the customers of the touched orders (int_sales_touched_facts), each customer's numbered again whole. -#}
{%- set touched = ref('int_sales_touched_facts') %}
{%- set only_touched = is_incremental() %}

with order_lines as (
    select * from {{ ref('fct_order_lines') }}
    {%- if only_touched %}
        where customer_id in (select customer_id from {{ touched }})
    {%- endif %}
),

orders as (
    select * from {{ ref('int_orders_classified') }}
    where exclusion_reason_code is null
    {%- if only_touched %}
        and erp_customer_id in (select customer_id from {{ touched }})
    {%- endif %}
),

-- Summed by order alone: its date, channel, store, currency and customer are the order's own
-- (int_orders_classified), which every line carries, so grouping by them as well only hashed text per line.
summed as (
    select
        order_id,
        count(*) as order_lines,
        sum(quantity - returned_quantity) as units_kept,
        sum(gross_amount) as gross_amount,
        sum(refund_amount) as refund_amount,
        sum(net_amount) as net_amount,
        sum(gross_revenue) as gross_revenue,
        sum(net_revenue) as net_revenue,
        {{ sum_if_all_known('cost_of_goods') }} as cost_of_goods
    from order_lines
    group by order_id
),

final as (
    select
        summed.order_id,
        orders.erp_customer_id as customer_id,
        orders.order_date,
        orders.ordered_at,
        orders.sales_channel,
        orders.store_id,
        orders.currency_code,
        summed.order_lines,
        summed.units_kept,
        summed.gross_amount,
        summed.refund_amount,
        summed.net_amount,
        summed.gross_revenue,
        summed.net_revenue,
        summed.cost_of_goods,
        {{ reporting_currency() }} as reporting_currency_code,
        summed.net_revenue - summed.cost_of_goods as margin,
        row_number() over (partition by orders.erp_customer_id order by orders.ordered_at, summed.order_id)
            as customer_order_number,
        summed.refund_amount > 0 as has_return,
        orders.source_file,
        orders.source_row_number
    from summed
    inner join orders on summed.order_id = orders.order_id
)

select * from final
