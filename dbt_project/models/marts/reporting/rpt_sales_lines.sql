{#- The sales pivot's base: every order line of fct_order_lines, none dropped, with the labels a user pivots by
    (year, quarter, month, region, country, category, channel, the customer's tier and RFM segment at the cutoff)
    and the figures that add up (net revenue, margin, units kept). A label the dimensions cannot give reads
    'Unknown' (a customer never scored: 'unscored', as in olap_sales_rollup), so that totals equal the facts'. -#}
with order_lines as (
    select * from {{ ref('fct_order_lines') }}
),

calendar as (
    select * from {{ ref('dim_date') }}
),

customers as (
    select * from {{ ref('dim_customers') }}
),

geography as (
    select * from {{ ref('dim_geography') }}
),

products as (
    select * from {{ ref('dim_products') }}
),

scores as (
    select * from {{ ref('customer_scores') }}
),

final as (
    select
        order_lines.order_date,
        coalesce(cast(calendar.year_number as {{ dbt.type_string() }}), 'Unknown') as year_label,
        coalesce(calendar.calendar_quarter, 'Unknown') as quarter_label,
        coalesce(calendar.calendar_month, 'Unknown') as month_label,
        coalesce(geography.region_name, 'Unknown') as region_name,
        coalesce(geography.country_code, customers.country_code, 'Unknown') as country_code,
        coalesce(products.category_name, 'Unknown') as category_name,
        coalesce(order_lines.sales_channel, 'Unknown') as sales_channel,
        coalesce(customers.loyalty_tier, 'Unknown') as loyalty_tier,
        coalesce(scores.rfm_segment, 'unscored') as rfm_segment,
        order_lines.order_id,
        order_lines.customer_id,
        order_lines.net_revenue,
        order_lines.margin,
        cast(order_lines.quantity - order_lines.returned_quantity as {{ dbt.type_bigint() }}) as units
    from order_lines
    left join calendar on order_lines.order_date = calendar.date_day
    left join customers on order_lines.customer_id = customers.customer_id
    left join geography on customers.geography_id = geography.geography_id
    left join products on order_lines.product_id = products.product_id
    left join scores on order_lines.customer_id = scores.customer_id
)

select * from final
