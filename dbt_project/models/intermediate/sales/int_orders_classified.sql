{#- Every loaded order with its fate as of the cutoff: kept (exclusion_reason_code is null) or excluded with a
    reason, and the rate that converts its amounts to the reporting currency. An order is excluded when its order
    number was loaded before, it is dated on or after the cutoff or implausibly long before it
    (outlier_date_span_years), it has no lines, no exchange rate reaches the reporting currency, or none of its
    lines has an amount. The rate is the order month's euros per unit of its
    currency over the reporting currency's (the euro is 1 by definition, the reporting currency needs no rate
    for itself); a month without a rate takes the latest earlier month's, never a later one. -#}
{#- built incrementally (dbt_project.yml, macros/rebuild_plan.sql): when tonight's plan says so, only the
    touched orders -#}
{%- set touched = ref('int_sales_touched_orders') %}
{%- set only_touched = is_incremental() %}

with orders as (
    select * from {{ ref('stg_erp__orders') }}
    {%- if only_touched %}
        where order_id in (select order_id from {{ touched }})
    {%- endif %}
),

order_lines as (
    select * from {{ ref('stg_erp__order_lines') }}
    {%- if only_touched %}
        {{ rebuild_plan_copies_of_touched_lines(touched) }}
    {%- endif %}
),

exchange_rates as (
    select * from {{ ref('stg_erp__exchange_rates') }}
),

numbered_orders as (
    select
        *,
        cast({{ dbt.date_trunc('month', 'order_date') }} as date) as order_month,
        row_number() over (partition by order_id order by source_file, source_row_number) as copy_number
    from orders
),

numbered_lines as (
    select
        order_id,
        line_amount,
        row_number() over (partition by order_line_id order by source_file, source_row_number) as copy_number
    from order_lines
),

line_counts as (
    select
        order_id,
        count(*) as order_lines,
        count(line_amount) as priced_order_lines
    from numbered_lines
    where copy_number = 1
    group by order_id
),

-- each currency and month a rate is needed for: the orders' currencies, and the reporting currency
rates_needed as (
    select distinct
        currency_code,
        order_month
    from numbered_orders
    union
    select distinct
        {{ reporting_currency() }} as currency_code,
        order_month
    from numbered_orders
),

earlier_rates as (
    select
        rates_needed.currency_code,
        rates_needed.order_month,
        exchange_rates.rate_month,
        exchange_rates.eur_per_unit,
        row_number() over (
            partition by rates_needed.currency_code, rates_needed.order_month
            order by exchange_rates.rate_month desc
        ) as recency
    from rates_needed
    inner join exchange_rates
        on
            rates_needed.currency_code = exchange_rates.currency_code
            and rates_needed.order_month >= exchange_rates.rate_month
),

eur_rates as (
    select
        rates_needed.currency_code,
        rates_needed.order_month,
        case when rates_needed.currency_code = 'EUR' then rates_needed.order_month else earlier_rates.rate_month end
            as rate_month,
        case when rates_needed.currency_code = 'EUR' then 1 else earlier_rates.eur_per_unit end as eur_per_unit
    from rates_needed
    left join earlier_rates
        on
            rates_needed.currency_code = earlier_rates.currency_code
            and rates_needed.order_month = earlier_rates.order_month
            and earlier_rates.recency = 1
),

converted as (
    select
        numbered_orders.*,
        coalesce(line_counts.order_lines, 0) as order_lines,
        coalesce(line_counts.priced_order_lines, 0) as priced_order_lines,
        case
            when numbered_orders.currency_code = {{ reporting_currency() }} then 1
            -- money stays decimal: a float rate would let sums drift off the cent
            else cast(order_rates.eur_per_unit / nullif(reporting_rates.eur_per_unit, 0) as decimal(18, 10))
        end as rate_to_reporting,
        case
            when
                numbered_orders.currency_code != {{ reporting_currency() }}
                and order_rates.rate_month is not null
                and reporting_rates.rate_month is not null
                then least(order_rates.rate_month, reporting_rates.rate_month)
        end as rate_month
    from numbered_orders
    left join line_counts on numbered_orders.order_id = line_counts.order_id
    left join eur_rates as order_rates
        on
            numbered_orders.currency_code = order_rates.currency_code
            and numbered_orders.order_month = order_rates.order_month
    left join eur_rates as reporting_rates
        on
            reporting_rates.currency_code = {{ reporting_currency() }}
            and numbered_orders.order_month = reporting_rates.order_month
),

classified as (
    select
        *,
        case
            when copy_number > 1 then 'duplicate_key'
            when order_date >= {{ as_of_date() }} then 'after_as_of'
            when order_date < {{ plausible_first_date() }} then 'implausible_date'
            when order_lines = 0 then 'no_lines'
            when rate_to_reporting is null then 'rate_missing'
            when priced_order_lines = 0 then 'no_priced_lines'
        end as exclusion_reason_code
    from converted
),

final as (
    select
        order_id,
        erp_customer_id,
        ordered_at,
        order_date,
        order_month,
        sales_channel,
        store_id,
        currency_code,
        order_status,
        order_lines,
        priced_order_lines,
        rate_to_reporting,
        rate_month,
        copy_number = 1 as is_first_copy,
        exclusion_reason_code,
        case exclusion_reason_code
            when 'duplicate_key'
                then concat(
                    'order number ', order_id, ' was loaded more than once; the first row is kept'
                )
            when 'after_as_of'
                then concat(
                    'ordered on ', cast(order_date as {{ dbt.type_string() }}),
                    ', on or after the as-of date ', cast({{ as_of_date() }} as {{ dbt.type_string() }})
                )
            when 'implausible_date'
                then concat(
                    'ordered on ', cast(order_date as {{ dbt.type_string() }}), ', before the earliest plausible date ',
                    cast({{ plausible_first_date() }} as {{ dbt.type_string() }}),
                    ' (outlier_date_span_years before the as-of date); correct the order date in the export'
                )
            when 'no_lines' then 'the order has no lines in the order lines export'
            when 'rate_missing'
                then concat(
                    'no exchange rate from ', currency_code, ' to ', {{ reporting_currency() }},
                    ' for ', cast(order_month as {{ dbt.type_string() }}), ' or an earlier month'
                )
            when 'no_priced_lines' then 'none of its lines has an amount or a unit price'
        end as exclusion_reason,
        source_file,
        source_row_number
    from classified
)

select * from final
