{#- Order lines placed before the cutoff, net of the returns recorded before the cutoff, with amounts converted
    to the reporting currency at the rate of the order's month. -#}
with order_lines as (
    select * from {{ ref('stg_erp__order_lines') }}
),

orders as (
    select * from {{ ref('stg_erp__orders') }}
),

returns as (
    select * from {{ ref('stg_erp__returns') }}
),

products as (
    select * from {{ ref('stg_erp__products') }}
),

exchange_rates as (
    select * from {{ ref('stg_erp__exchange_rates') }}
),

orders_before_cutoff as (
    select *
    from orders
    where order_date < cast('{{ var("as_of") }}' as date)
),

returns_before_cutoff as (
    select *
    from returns
    where returned_date < cast('{{ var("as_of") }}' as date)
),

reporting_rates as (
    select
        rate_month,
        eur_per_unit
    from exchange_rates
    where currency_code = '{{ var("reporting_currency") }}'
),

lines_with_returns as (
    select
        order_lines.order_line_id,
        order_lines.order_id,
        order_lines.line_number,
        orders_before_cutoff.erp_customer_id,
        order_lines.product_id,
        orders_before_cutoff.order_date,
        orders_before_cutoff.ordered_at,
        orders_before_cutoff.sales_channel,
        orders_before_cutoff.store_id,
        orders_before_cutoff.currency_code,
        order_lines.quantity,
        order_lines.unit_price,
        order_lines.line_amount as gross_amount,
        coalesce(returns_before_cutoff.returned_quantity, 0) as returned_quantity,
        coalesce(returns_before_cutoff.refund_amount, 0) as refund_amount,
        products.unit_cost,
        {{ dbt.date_trunc('month', 'orders_before_cutoff.order_date') }} as order_month
    from order_lines
    inner join orders_before_cutoff
        on order_lines.order_id = orders_before_cutoff.order_id
    left join returns_before_cutoff
        on order_lines.order_line_id = returns_before_cutoff.order_line_id
    left join products
        on order_lines.product_id = products.product_id
),

converted as (
    select
        lines_with_returns.*,
        lines_with_returns.gross_amount - lines_with_returns.refund_amount as net_amount,
        -- money stays decimal: a float rate would let sums drift off the cent
        cast(case
            when lines_with_returns.currency_code = '{{ var("reporting_currency") }}' then 1
            else order_rates.eur_per_unit / coalesce(reporting_rates.eur_per_unit, 1)
        end as decimal(18, 6)) as rate_to_reporting
    from lines_with_returns
    left join exchange_rates as order_rates
        on
            lines_with_returns.currency_code = order_rates.currency_code
            and cast(lines_with_returns.order_month as date) = order_rates.rate_month
    left join reporting_rates
        on cast(lines_with_returns.order_month as date) = reporting_rates.rate_month
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
        returned_quantity,
        refund_amount,
        net_amount,
        rate_to_reporting,
        cast(round(gross_amount * rate_to_reporting, 2) as decimal(18, 2)) as gross_revenue,
        cast(round(net_amount * rate_to_reporting, 2) as decimal(18, 2)) as net_revenue,
        cast(round(unit_cost * (quantity - returned_quantity), 2) as decimal(18, 2)) as cost_of_goods,
        '{{ var("reporting_currency") }}' as reporting_currency_code
    from converted
)

select * from final
