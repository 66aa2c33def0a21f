{#- Every loaded order line with its fate as of the cutoff: kept (exclusion_reason_code is null) or excluded with
    a reason. A line is excluded when its key was loaded before, its order is not among the loaded orders (it was
    quarantined at the door, or never delivered), its order is excluded (dated on or after the cutoff or implausibly
    long before it, no exchange rate), or it has neither an amount nor a unit price. Kept lines carry their order's
    attributes and rate to the reporting currency. -#}
{#- built incrementally (dbt_project.yml, macros/rebuild_plan.sql): when tonight's plan says so, only the
    touched orders -#}
{%- set touched = ref('int_sales_touched_orders') %}
{%- set only_touched = is_incremental() %}
{#- the order's exclusions that its lines share, with the order's reason -#}
{%- set order_fates_shared = "('after_as_of', 'implausible_date', 'rate_missing')" %}

with order_lines as (
    select * from {{ ref('stg_erp__order_lines') }}
    {%- if only_touched %}
        {{ rebuild_plan_copies_of_touched_lines(touched) }}
    {%- endif %}
),

orders as (
    select * from {{ ref('int_orders_classified') }}
    where is_first_copy
),

numbered_lines as (
    select
        *,
        row_number() over (partition by order_line_id order by source_file, source_row_number) as copy_number
    from order_lines
),

final as (
    select
        numbered_lines.order_line_id,
        numbered_lines.order_id,
        numbered_lines.line_number,
        orders.erp_customer_id,
        numbered_lines.product_id,
        orders.order_date,
        orders.ordered_at,
        orders.sales_channel,
        orders.store_id,
        orders.currency_code,
        numbered_lines.quantity,
        numbered_lines.unit_price,
        numbered_lines.line_amount,
        orders.rate_to_reporting,
        orders.rate_month,
        numbered_lines.copy_number = 1 as is_first_copy,
        case
            when numbered_lines.copy_number > 1 then 'duplicate_key'
            when orders.order_id is null then 'order_missing'
            when orders.exclusion_reason_code in {{ order_fates_shared }} then orders.exclusion_reason_code
            when numbered_lines.line_amount is null then 'amount_missing'
        end as exclusion_reason_code,
        case
            when numbered_lines.copy_number > 1
                then concat(
                    'order line ', numbered_lines.order_line_id, ' was loaded more than once; the first row is kept'
                )
            when orders.order_id is null
                then concat(
                    'its order ', numbered_lines.order_id,
                    ' is not among the loaded orders (quarantined or filtered out at the door, or not exported)'
                )
            when orders.exclusion_reason_code in {{ order_fates_shared }} then orders.exclusion_reason
            when numbered_lines.line_amount is null then 'the line has neither an amount nor a unit price'
        end as exclusion_reason,
        numbered_lines.source_file,
        numbered_lines.source_row_number
    from numbered_lines
    left join orders on numbered_lines.order_id = orders.order_id
    {%- if only_touched %}
        -- the copies of their lines in other orders only counted
        where numbered_lines.order_id in (select order_id from {{ touched }})
    {%- endif %}
)

select * from final
