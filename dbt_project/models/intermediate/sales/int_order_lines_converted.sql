{#- The kept order lines (int_order_lines_classified), net of their kept returns, with amounts in the reporting
    currency at the order's rate and the cost of the goods kept. Several returns of one line are summed first, so
    a line is never repeated; the units returned are capped at the units sold (a line never keeps fewer than
    zero), while refunds count in full: money paid back is revenue lost, whatever the quantity says. A product
    without a unit cost leaves cost_of_goods unknown (null), not zero. -#}
with order_lines as (
    select * from {{ ref('int_order_lines_classified') }}
    where exclusion_reason_code is null
),

returns as (
    select * from {{ ref('int_returns_matched') }}
    where exclusion_reason_code is null
),

products as (
    {{ product_unit_costs(ref('stg_erp__products')) }}
),

line_returns as (
    select
        order_line_id,
        count(*) as returns,  -- noqa: RF04
        sum(returned_quantity) as returned_quantity,
        sum(refund_amount) as refund_amount
    from returns
    group by order_line_id
),

netted as (
    select
        order_lines.order_line_id,
        order_lines.order_id,
        order_lines.line_number,
        order_lines.erp_customer_id,
        order_lines.product_id,
        order_lines.order_date,
        order_lines.ordered_at,
        order_lines.sales_channel,
        order_lines.store_id,
        order_lines.currency_code,
        order_lines.quantity,
        order_lines.unit_price,
        order_lines.line_amount as gross_amount,
        coalesce(line_returns.returns, 0) as returns,  -- noqa: RF04
        least(coalesce(line_returns.returned_quantity, 0), order_lines.quantity) as returned_quantity,
        coalesce(line_returns.refund_amount, 0) as refund_amount,
        order_lines.rate_to_reporting,
        order_lines.rate_month,
        products.unit_cost,
        order_lines.source_file,
        order_lines.source_row_number
    from order_lines
    left join line_returns on order_lines.order_line_id = line_returns.order_line_id
    left join products on order_lines.product_id = products.product_id
),

final as (
    select
        order_line_id,
        order_id,
        line_number,
        erp_customer_id,
        product_id,
        order_date,
        ordered_at,
        sales_channel,
        store_id,
        currency_code,
        quantity,
        unit_price,
        gross_amount,
        returns,
        returned_quantity,
        refund_amount,
        gross_amount - refund_amount as net_amount,
        rate_to_reporting,
        rate_month,
        cast(round(gross_amount * rate_to_reporting, 2) as decimal(38, 2)) as gross_revenue,
        cast(round((gross_amount - refund_amount) * rate_to_reporting, 2) as decimal(38, 2)) as net_revenue,
        cast(round(unit_cost * (quantity - returned_quantity), 2) as decimal(38, 2)) as cost_of_goods,
        {{ reporting_currency() }} as reporting_currency_code,
        source_file,
        source_row_number
    from netted
)

select * from final
