{#- Rollups: date (all > year > quarter > month) x geography (all > region > country) x one of category,
    channel, tier or RFM segment (their full cube would multiply the work for drill-downs nobody needs), in
    portable SQL. Tier and segment are the customer's as of the cutoff, so the rollup is built after the scores.
    The margin of a group is unknown (null) when the cost of any of its lines is unknown: a partial sum would
    understate it.

    Distinct customers and orders never add up across dates, so a level is not a sum of the finer ones. Yet a
    customer has one country, tier and segment, and an order one customer, day and channel (its header's). So
    each line is set beside the line before it among its customer's lines of its category, by date then order:
    it starts an order of that category when the order differs, and counts its customer in its month (quarter,
    year, all time) when there is no line before it or that line's month (quarter, year) differs. Each order is
    likewise set beside its customer's previous order, and previous order on its channel. Those marks, summed by
    month and country, are the distinct orders and customers of every level: a level is then a sum over a few
    thousand month rows, for all the levels in one group-by. Counting them per level from customer rows (a
    group-by of millions of rows for each of the 60 levels, all at once) spilled GBs at a million customers. -#}
{%- set date_levels = ['all', 'year', 'quarter', 'month'] -%}
{%- set date_columns = ['year_number', 'calendar_quarter', 'calendar_month'] -%}
{%- set geography_levels = ['all', 'region', 'country'] -%}
{%- set geography_columns = ['region_name', 'country_code'] -%}
{%- set extra_columns = ['category_name', 'sales_channel', 'loyalty_tier', 'rfm_segment'] -%}
{#- the label columns, each beside the column it shows and the level that first shows it -#}
{%- set labels = [('year_label', 'year_number', 'rollup_levels.date_depth >= 1'),
                  ('quarter_label', 'calendar_quarter', 'rollup_levels.date_depth >= 2'),
                  ('month_label', 'calendar_month', 'rollup_levels.date_depth >= 3'),
                  ('region_name', 'region_name', 'rollup_levels.geography_depth >= 1'),
                  ('country_code', 'country_code', 'rollup_levels.geography_depth >= 2')] -%}
{%- for column in extra_columns -%}
    {%- do labels.append((column, column, "rollup_levels.extra_column = '" ~ column ~ "'")) -%}
{%- endfor -%}
{#- the month rows each extra is rolled up from: the categories', or the orders' (also those of no extra) -#}
{%- set sources = [('category_months', ['category_name']),
                   ('order_months', ['sales_channel', 'loyalty_tier', 'rfm_segment'])] %}

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

-- customers without a known geography are left out, and so are their lines
customer_labels as (
    select
        customers.customer_id,
        customers.geography_id,
        geography.region_name,
        geography.country_code,
        customers.loyalty_tier,
        coalesce(scores.rfm_segment, 'unscored') as rfm_segment
    from customers
    inner join geography on customers.geography_id = geography.geography_id
    left join scores on customers.customer_id = scores.customer_id
),

-- the lines rolled up, with no more columns than the marks need: the window below holds them all at once
lines as (
    select
        order_lines.order_id,
        order_lines.customer_id,
        order_lines.order_date,
        customer_labels.geography_id,
        products.category_name,
        order_lines.sales_channel,
        order_lines.quantity - order_lines.returned_quantity as units,
        order_lines.net_revenue,
        order_lines.margin
    from order_lines
    inner join calendar on order_lines.order_date = calendar.date_day
    inner join customer_labels on order_lines.customer_id = customer_labels.customer_id
    inner join products on order_lines.product_id = products.product_id
),

category_lines as (
    select
        *,
        lag(order_id) over previous_line as previous_order_id,
        lag(order_date) over previous_line as previous_order_date
    from lines
    window previous_line as (partition by customer_id, category_name order by order_date, order_id)
),

orders_placed as (
    select
        order_id,
        customer_id,
        order_date,
        sales_channel,
        sum(net_revenue) as net_revenue,
        sum(margin) as margin,
        count(*) - count(margin) as lines_without_margin,
        sum(units) as units
    from category_lines
    group by order_id, customer_id, order_date, sales_channel
),

marked_orders as (
    select
        *,
        lag(order_date) over previous_order as previous_order_date,
        lag(order_date) over previous_channel_order as previous_channel_order_date
    from orders_placed
    window
        previous_order as (partition by customer_id order by order_date, order_id),
        previous_channel_order as (partition by customer_id, sales_channel order by order_date, order_id)
),

-- The layout of Jinja-generated SQL is not the layout of hand-written SQL:
-- noqa: disable=LT02
category_months as (
    select
        calendar.year_number,
        calendar.calendar_quarter,
        calendar.calendar_month,
        geography.region_name,
        geography.country_code,
        category_lines.category_name,
        sum(category_lines.net_revenue) as net_revenue,
        sum(category_lines.margin) as margin,
        count(*) - count(category_lines.margin) as lines_without_margin,
        sum(category_lines.units) as units,
        -- a line starts one of its category's orders when the line before it is of another order,
        sum(case
            when
                category_lines.order_id is not null
                and (
                    category_lines.previous_order_id is null
                    or category_lines.previous_order_id <> category_lines.order_id
                )
                then 1
            else 0
        end) as orders,
        -- and counts its customer in its month (quarter, year, all time) when it is the first of the customer's
        -- lines of the category, or the line before it is of another month (quarter, year)
        {%- for date_level in date_levels %}
        {%- set period = date_columns[:loop.index0] %}
        {{ rows_starting_period('category_lines.previous_order_date', 'previous_calendar', period) }}
            as {{ date_level }}_customers{{ ',' if not loop.last }}
        {%- endfor %}
    from category_lines
    inner join geography on category_lines.geography_id = geography.geography_id
    inner join calendar on category_lines.order_date = calendar.date_day
    left join calendar as previous_calendar on category_lines.previous_order_date = previous_calendar.date_day
    group by
        calendar.year_number,
        calendar.calendar_quarter,
        calendar.calendar_month,
        geography.region_name,
        geography.country_code,
        category_lines.category_name
),

order_months as (
    select
        calendar.year_number,
        calendar.calendar_quarter,
        calendar.calendar_month,
        customer_labels.region_name,
        customer_labels.country_code,
        marked_orders.sales_channel,
        customer_labels.loyalty_tier,
        customer_labels.rfm_segment,
        sum(marked_orders.net_revenue) as net_revenue,
        sum(marked_orders.margin) as margin,
        sum(marked_orders.lines_without_margin) as lines_without_margin,
        sum(marked_orders.units) as units,
        count(marked_orders.order_id) as orders,
        -- as above, among the customer's orders, and among those on the order's channel
        {%- for previous, prefix in [('previous', ''), ('previous_channel', 'channel_')] %}
        {%- set marks_loop = loop %}
        {%- for date_level in date_levels %}
        {%- set period = date_columns[:loop.index0] %}
        {{ rows_starting_period('marked_orders.' ~ previous ~ '_order_date', previous ~ '_calendar', period) }}
            as {{ prefix }}{{ date_level }}_customers{{ ',' if not (loop.last and marks_loop.last) }}
        {%- endfor %}
        {%- endfor %}
    from marked_orders
    inner join customer_labels on marked_orders.customer_id = customer_labels.customer_id
    inner join calendar on marked_orders.order_date = calendar.date_day
    left join calendar as previous_calendar on marked_orders.previous_order_date = previous_calendar.date_day
    left join calendar as previous_channel_calendar
        on marked_orders.previous_channel_order_date = previous_channel_calendar.date_day
    group by
        calendar.year_number,
        calendar.calendar_quarter,
        calendar.calendar_month,
        customer_labels.region_name,
        customer_labels.country_code,
        marked_orders.sales_channel,
        customer_labels.loyalty_tier,
        customer_labels.rfm_segment
),

-- the levels: every date level by every geography level by every extra (none, or one of four columns), but the
-- grand total, each with how deep its date and geography go
{%- for name, values in [('date', date_levels), ('geography', geography_levels)] %}

{{ name }}_levels as (
    {%- for value in values %}
    select
        '{{ value }}' as {{ name }}_level,
        {{ loop.index0 }} as {{ name }}_depth
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),
{%- endfor %}

extra_levels as (
    {%- for column in [''] + extra_columns %}
    select
        '{{ column }}' as extra_column,
        '{{ 'category_months' if column == 'category_name' else 'order_months' }}' as month_rows
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

rollup_levels as (
    select
        date_levels.date_level,
        date_levels.date_depth,
        geography_levels.geography_level,
        geography_levels.geography_depth,
        extra_levels.extra_column,
        extra_levels.month_rows
    from date_levels
    cross join geography_levels
    cross join extra_levels
    where date_levels.date_depth > 0 or geography_levels.geography_depth > 0 or extra_levels.extra_column <> ''
),

-- each month row once for every level it is rolled up into, with that level's labels and distinct customers
level_rows as (
    {%- for source, extras in sources %}
    select
        rollup_levels.date_level,
        rollup_levels.geography_level,
        {%- for label, column, shown in labels %}
        {%- if column in date_columns + geography_columns + extras %}
        case
            when {{ shown }} then cast({{ source }}.{{ column }} as {{ dbt.type_string() }})
            else 'All'
        end as {{ label }},
        {%- else %}
        'All' as {{ label }},
        {%- endif %}
        {%- endfor %}
        {{ source }}.net_revenue,
        {{ source }}.margin,
        {{ source }}.lines_without_margin,
        {{ source }}.units,
        {{ source }}.orders,
        case
            {%- for date_level in date_levels %}
            {%- if 'sales_channel' in extras %}
            when rollup_levels.date_depth = {{ loop.index0 }} and rollup_levels.extra_column = 'sales_channel'
                then {{ source }}.channel_{{ date_level }}_customers
            {%- endif %}
            when rollup_levels.date_depth = {{ loop.index0 }} then {{ source }}.{{ date_level }}_customers
            {%- endfor %}
        end as customers
    from {{ source }}
    inner join rollup_levels on rollup_levels.month_rows = '{{ source }}'
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

rolled_up as (
    -- the grand total is an aggregate without groups, so that it has its row even when nothing was sold
    select
        'all' as date_level,
        'all' as geography_level,
        {%- for label, column, shown in labels %}
        'All' as {{ label }},
        {%- endfor %}
        sum(net_revenue) as net_revenue,
        case when sum(lines_without_margin) = 0 then sum(margin) end as margin,
        sum(units) as units,
        coalesce(sum(orders), 0) as orders,
        coalesce(cast(sum(all_customers) as {{ dbt.type_bigint() }}), 0) as customers
    from order_months
    union all
    select
        date_level,
        geography_level,
        {%- for label, column, shown in labels %}
        {{ label }},
        {%- endfor %}
        sum(net_revenue) as net_revenue,
        case when sum(lines_without_margin) = 0 then sum(margin) end as margin,
        sum(units) as units,
        sum(orders) as orders,
        cast(sum(customers) as {{ dbt.type_bigint() }}) as customers
    from level_rows
    group by
        date_level,
        geography_level,
        {%- for label, column, shown in labels %}
        {{ label }}{{ ',' if not loop.last }}
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
