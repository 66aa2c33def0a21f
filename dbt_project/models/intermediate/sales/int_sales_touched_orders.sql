{#- The orders whose fate can have moved since the order chain's last build (int_sales_build_state), one row each,
    when tonight's plan (int_sales_rebuild_plan) is incremental; none when it is full. An order's fate is a
    function of its own rows, its lines and their copies, its date against the cutoff and the earliest plausible
    date, its month's exchange rates and its customer key's customer, so an order is touched when:
    - a row of it, or of one of its lines, came in a file (or a version of a file) the last build did not see, or
      went with a file it saw (taken back by `crm unload`, replaced by a corrected delivery);
    - a line of it shares its key with such a line (the copies of a line decide which one is kept);
    - it is dated on or after the earlier of the two cutoffs, or before the later of the two earliest plausible
      dates (its exclusion, or the dates its reason names, can change);
    - an exchange rate of its currency, or of the reporting currency, changed, appeared or went for its month or
      an earlier one;
    - its customer key now stands for another customer (the ERP customers export named another person). -#}
{%- set state = rebuild_plan_relation('int_sales_build_state') %}
{%- set orders_built = rebuild_plan_relation('int_orders_classified') %}
{%- set lines_built = rebuild_plan_relation('int_order_lines_classified') %}
{%- set plan = ref('int_sales_rebuild_plan') %}
{#- read only when the plan is incremental: named here so that dbt knows them while parsing -#}
{%- set staged = {
    'orders': ref('stg_erp__orders'),
    'order_lines': ref('stg_erp__order_lines'),
    'rates': ref('stg_erp__exchange_rates'),
    'raw': [source('erp', 'orders'), source('erp', 'order_lines')],
} %}
{%- set incremental = rebuild_plan_is_incremental() %}

{% if incremental %}
    with orders as (
        select * from {{ staged.orders }}
    ),

    order_lines as (
        select * from {{ staged.order_lines }}
    ),

    state as (
        select * from {{ state }}
    ),

    last_build as (
        select as_of from state
        where kind = 'build'
    ),

    {{ rebuild_plan_file_changes(state, ['orders', 'order_lines']) }}

    new_files as (
        select
            source_name,
            source_file
        from file_changes
        where change = 'new'
    ),

    gone_files as (
        select
            source_name,
            source_file
        from file_changes
        where change = 'gone'
    ),

    new_orders as (
        select order_id from orders
        where source_file in (select source_file from new_files where source_name = 'orders')
    ),

    gone_orders as (
        select order_id from {{ orders_built }}
        where source_file in (select source_file from gone_files where source_name = 'orders')
    ),

    new_lines as (
        select
            order_line_id,
            order_id
        from order_lines
        where source_file in (select source_file from new_files where source_name = 'order_lines')
    ),

    gone_lines as (
        select
            order_line_id,
            order_id
        from {{ lines_built }}
        where source_file in (select source_file from gone_files where source_name = 'order_lines')
    ),

    changed_line_keys as (
        select order_line_id from new_lines
        union
        select order_line_id from gone_lines
    ),

    -- every copy of a changed line: in tonight's new rows, or among the rows the last build saw
    line_orders as (
        select order_id from new_lines
        union
        select order_id from {{ lines_built }}
        where order_line_id in (select order_line_id from changed_line_keys)
    ),

    dated as (
        select orders.order_id
        from orders
        cross join last_build
        where
            orders.order_date >= least(last_build.as_of, {{ as_of_date() }})
            or orders.order_date < greatest(
                {{ plausible_first_date('last_build.as_of') }}, {{ plausible_first_date() }}
            )
    ),

    rates as (
        select
            currency_code,
            rate_month,
            eur_per_unit
        from {{ staged.rates }}
    ),

    seen_rates as (
        select
            currency_code,
            rate_month,
            eur_per_unit
        from state
        where kind = 'rate'
    ),

    -- the earliest month from which each currency's rates differ (a rate serves its month and the later ones)
    rate_changes as (
        select
            currency_code,
            min(rate_month) as from_month
        from ({{ rebuild_plan_changed_rows('rates', 'seen_rates') }}) as changed
        group by currency_code
    ),

    rated as (
        select orders.order_id
        from orders
        inner join rate_changes
            on
                (
                    orders.currency_code = rate_changes.currency_code
                    or rate_changes.currency_code = {{ reporting_currency() }}
                )
                and orders.order_date >= rate_changes.from_month
    ),

    -- a row the last build saw whose customer key now stands for another customer
    moved as (
        select orders.order_id
        from orders
        inner join {{ orders_built }} as built
            on
                orders.source_file = built.source_file
                and orders.source_row_number = built.source_row_number
        where orders.erp_customer_id is distinct from built.erp_customer_id
    ),

    touched as (
        select order_id from new_orders
        union
        select order_id from gone_orders
        union
        select order_id from line_orders
        union
        select order_id from dated
        union
        select order_id from rated
        union
        select order_id from moved
    ),

    final as (
        select order_id from touched
        where order_id is not null
    )

    select * from final
{% else %}
    {#- a full build: nothing to list -#}
    {{ rebuild_plan_nothing_touched(plan, ['order_id']) }}
{% endif %}
