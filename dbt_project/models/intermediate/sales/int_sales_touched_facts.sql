{#- The orders whose facts (fct_order_lines, fct_orders) can have moved since their last build, with each customer
    they belonged to then or belong to now (fct_orders numbers a customer's orders, so all of them are built
    again), when tonight's plan (int_sales_rebuild_plan) is incremental; none when it is full. Besides the orders
    whose fate can have moved (int_sales_touched_orders): the orders with a line whose kept returns differ from
    what its facts hold (a return matched, taken back or past the cutoff), and those with a kept line of a product
    whose unit cost changed. -#}
{%- set state = rebuild_plan_relation('int_sales_build_state') %}
{%- set lines_built = rebuild_plan_relation('fct_order_lines') %}
{%- set orders_built = rebuild_plan_relation('fct_orders') %}
{#- read only when the plan is incremental: named here so that dbt knows them while parsing -#}
{%- set read = {
    'touched': ref('int_sales_touched_orders'),
    'orders': ref('int_orders_classified'),
    'lines': ref('int_order_lines_classified'),
    'returns': ref('int_returns_matched'),
    'products': ref('stg_erp__products'),
    'plan': ref('int_sales_rebuild_plan'),
} %}
{%- set incremental = rebuild_plan_is_incremental() %}

{% if incremental %}
    with lines as (
        select * from {{ read.lines }}
        where exclusion_reason_code is null
    ),

    returns as (
        select
            order_line_id,
            count(*) as returns,  -- noqa: RF04
            sum(returned_quantity) as returned_quantity,
            sum(refund_amount) as refund_amount
        from {{ read.returns }}
        where exclusion_reason_code is null
        group by order_line_id
    ),

    built_returns as (
        select
            order_line_id,
            quantity,
            returns,  -- noqa: RF04
            returned_quantity,
            refund_amount
        from {{ lines_built }}
        where returns > 0
    ),

    -- lines whose kept returns differ from what their facts hold (int_order_lines_converted nets them)
    returned_lines as (
        select coalesce(returns.order_line_id, built_returns.order_line_id) as order_line_id
        from returns
        full outer join built_returns on returns.order_line_id = built_returns.order_line_id
        where
            returns.order_line_id is null
            or built_returns.order_line_id is null
            or returns.returns != built_returns.returns
            or least(coalesce(returns.returned_quantity, 0), built_returns.quantity)
            is distinct from built_returns.returned_quantity
            or coalesce(returns.refund_amount, 0) is distinct from built_returns.refund_amount
    ),

    costs as (
        {{ product_unit_costs(read.products) }}
    ),

    seen_costs as (
        select
            product_id,
            unit_cost
        from {{ state }}
        where kind = 'cost'
    ),

    cost_changes as (
        select distinct product_id
        from ({{ rebuild_plan_changed_rows('costs', 'seen_costs') }}) as changed
    ),

    touched_orders as (
        select order_id from {{ read.touched }}
        union
        select order_id from lines
        where order_line_id in (select order_line_id from returned_lines)
        union
        select order_id from {{ lines_built }}
        where order_line_id in (select order_line_id from returned_lines)
        union
        select order_id from lines
        where product_id in (select product_id from cost_changes)
    ),

    final as (
        select
            order_id,
            erp_customer_id as customer_id
        from {{ read.orders }}
        where
            is_first_copy
            and exclusion_reason_code is null
            and order_id in (select order_id from touched_orders)
        union
        select
            order_id,
            customer_id
        from {{ orders_built }}
        where order_id in (select order_id from touched_orders)
    )

    select * from final
{% else %}
    {#- a full build: nothing to list -#}
    {{ rebuild_plan_nothing_touched(read.plan, ['order_id', 'customer_id']) }}
{% endif %}
