{#- Rollups: date (all > year > quarter > month) x geography (all > region > country) x one of category,
    channel, tier or RFM segment (their full cube would multiply the work for drill-downs nobody needs), as a
    union of plain group-bys: portable SQL. Tier and segment are the customer's as of the cutoff, so the rollup
    is built after the scores. The margin of a group is unknown (null) when the cost of any of its lines is
    unknown: a partial sum would understate it.

    Distinct customers and orders never add up across dates, so each level is not a sum of the finer ones. Yet a
    customer has one country, tier and segment, and an order one customer, day and channel (its header's), so
    within one customer's month (quarter, year, all time) the distinct orders add up across months and channels,
    and a group of customer rows counts each customer once. The lines are therefore read twice only: into each
    customer's months by category and by channel, with the orders counted there; coarser dates are sums of
    those rows, and every level is a group-by over the customer rows of its date grain (count(*) is its distinct
    customers). Scanning the lines for each of the 60 levels with two distinct counts spilled tens of GB at a
    million customers. -#}
{%- set dates = [[], ['year_number'], ['year_number', 'calendar_quarter'],
                 ['year_number', 'calendar_quarter', 'calendar_month']] -%}
{%- set geographies = [[], ['region_name'], ['region_name', 'country_code']] -%}
{%- set extras = [[], ['category_name'], ['sales_channel'], ['loyalty_tier'], ['rfm_segment']] -%}
{%- set date_levels = ['all', 'year', 'quarter', 'month'] -%}
{%- set geography_levels = ['all', 'region', 'country'] -%}
{%- set labels = [('year_number', 'year_label'), ('calendar_quarter', 'quarter_label'),
                  ('calendar_month', 'month_label'), ('region_name', 'region_name'),
                  ('country_code', 'country_code'), ('category_name', 'category_name'),
                  ('sales_channel', 'sales_channel'), ('loyalty_tier', 'loyalty_tier'),
                  ('rfm_segment', 'rfm_segment')] -%}
{#- what identifies a customer's row: the customer and what is theirs alone -#}
{%- set customer_columns = ['customer_id', 'region_name', 'country_code', 'loyalty_tier', 'rfm_segment'] -%}
{#- the customer rows each extra is rolled up from: by category, by channel, or the customer's (both summed) -#}
{%- set sources = {'category_name': 'by_category', 'sales_channel': 'by_channel'} -%}
{%- set measures -%}
        sum(net_revenue) as net_revenue,
        sum(margin) as margin,
        sum(lines_without_margin) as lines_without_margin,
        sum(units) as units,
        sum(orders) as orders
{%- endset -%}
{%- set levels = [] -%}
{%- for date_columns in dates -%}
    {%- for geography_columns in geographies -%}
        {%- for extra_columns in extras -%}
            {%- do levels.append((date_columns, geography_columns, extra_columns)) -%}
        {%- endfor -%}
    {%- endfor -%}
{%- endfor %}

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

scores as (
    select * from {{ ref('customer_scores') }}
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
        coalesce(scores.rfm_segment, 'unscored') as rfm_segment,
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
    left join scores on order_lines.customer_id = scores.customer_id
),

-- The layout of a Jinja-generated union is not the layout of hand-written SQL:
-- noqa: disable=LT02
{%- for extra, source in sources.items() %}
{%- set grouped = dates[-1] + customer_columns + [extra] %}

{{ source }}_month as (
    select
        {{ grouped | join(',\n        ') }},
        sum(net_revenue) as net_revenue,
        sum(margin) as margin,
        count(*) - count(margin) as lines_without_margin,
        sum(units) as units,
        count(distinct order_id) as orders
    from lines
    group by {{ grouped | join(', ') }}
),
{%- for finer, coarser in [('month', 'quarter'), ('quarter', 'year'), ('year', 'all')] %}
{%- set grouped = dates[3 - loop.index] + customer_columns + [extra] %}

{{ source }}_{{ coarser }} as (
    select
        {{ grouped | join(',\n        ') }},
        {{ measures }}
    from {{ source }}_{{ finer }}
    group by {{ grouped | join(', ') }}
),
{%- endfor %}
{%- endfor %}
{%- for date_columns in dates %}
{%- set grouped = date_columns + customer_columns %}

by_customer_{{ date_levels[loop.index0] }} as (
    select
        {{ grouped | join(',\n        ') }},
        {{ measures }}
    from by_channel_{{ date_levels[loop.index0] }}
    group by {{ grouped | join(', ') }}
),
{%- endfor %}

rolled_up as (
    {%- for date_columns, geography_columns, extra_columns in levels %}
        {%- set grouped = date_columns + geography_columns + extra_columns %}
        {%- set source = sources.get(extra_columns[0], 'by_customer') if extra_columns else 'by_customer' %}
    select
        '{{ date_levels[date_columns | length] }}' as date_level,
        '{{ geography_levels[geography_columns | length] }}' as geography_level,
        {%- for column, label in labels %}
        {{ "cast(" ~ column ~ " as varchar)" if column in grouped else "'All'" }} as {{ label }},
        {%- endfor %}
        sum(net_revenue) as net_revenue,
        case when sum(lines_without_margin) = 0 then sum(margin) end as margin,
        sum(units) as units,
        coalesce(sum(orders), 0) as orders,
        count(*) as customers
    from {{ source }}_{{ date_levels[date_columns | length] }}
        {%- if grouped %}
    group by {{ grouped | join(', ') }}
        {%- endif %}
        {%- if not loop.last %}
    union all
        {%- endif %}
    {%- endfor %}
),
-- noqa: enable=LT02

final as (
    select
        *,
        {{ reporting_currency() }} as reporting_currency_code
    from rolled_up
)

select * from final
