{#- One row per kept order line (int_order_lines_converted): the lines excluded on the way, with their reasons,
    are in fct_row_exclusions. Built incrementally (dbt_project.yml, macros/rebuild_plan.sql): when tonight's plan
    says so, only the lines of the touched orders (int_sales_touched_facts). -#}
{%- set touched = ref('int_sales_touched_facts') %}
{%- set only_touched = is_incremental() %}

with order_lines as (
    select * from {{ ref('int_order_lines_converted') }}
    {%- if only_touched %}
        where order_id in (select order_id from {{ touched }})
    {%- endif %}
),

final as (
    select
        order_line_id,
        order_id,
        line_number,
        erp_customer_id as customer_id,
        product_id,
        order_date,
        ordered_at,
        sales_channel,
        store_id,
        quantity,
        returns,
        returned_quantity,
        unit_price,
        gross_amount,
        refund_amount,
        net_amount,
        currency_code,
        rate_to_reporting,
        rate_month,
        gross_revenue,
        net_revenue,
        cost_of_goods,
        -- unknown (null) where the product's cost is unknown
        net_revenue - cost_of_goods as margin,
        reporting_currency_code,
        source_file,
        source_row_number
    from order_lines
)

select * from final
