with order_lines as (
    select * from {{ ref('fct_order_lines') }}
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

calendar as (
    select * from {{ ref('dim_date') }}
),

lines as (
    select
        calendar.year_number,
        calendar.calendar_quarter,
        calendar.calendar_month,
        geography.region_name,
        geography.country_code,
        products.category_name,
        order_lines.sales_channel,
        customers.loyalty_tier,
        order_lines.order_id,
        order_lines.customer_id,
        order_lines.quantity - order_lines.returned_quantity as units,
        order_lines.net_revenue,
        order_lines.margin
    from order_lines
    inner join calendar on order_lines.order_date = calendar.date_day
    inner join customers on order_lines.customer_id = customers.customer_id
    inner join geography on customers.geography_id = geography.geography_id
    inner join products on order_lines.product_id = products.product_id
),

rolled_up as (
    select
        case
            when grouping(year_number) = 1 then 'all'
            when grouping(calendar_quarter) = 1 then 'year'
            when grouping(calendar_month) = 1 then 'quarter'
            else 'month'
        end as date_level,
        case
            when grouping(region_name) = 1 then 'all'
            when grouping(country_code) = 1 then 'region'
            else 'country'
        end as geography_level,
        coalesce(year_number::varchar, 'All') as year_label,
        coalesce(calendar_quarter, 'All') as quarter_label,
        coalesce(calendar_month, 'All') as month_label,
        coalesce(region_name, 'All') as region_name,
        coalesce(country_code, 'All') as country_code,
        coalesce(category_name, 'All') as category_name,
        coalesce(sales_channel, 'All') as sales_channel,
        coalesce(loyalty_tier, 'All') as loyalty_tier,
        sum(net_revenue) as net_revenue,
        sum(margin) as margin,
        sum(units) as units,
        count(distinct order_id) as orders,
        count(distinct customer_id) as customers
    from lines
    group by
        rollup(year_number, calendar_quarter, calendar_month),
        rollup(region_name, country_code),
        -- one of category, channel or tier at a time (their full cube multiplies the work by two for little use)
        grouping sets ((), (category_name), (sales_channel), (loyalty_tier))
),

final as (
    select
        *,
        '{{ var("reporting_currency") }}' as reporting_currency_code
    from rolled_up
)

select * from final
