{#- One row per product known at the cutoff: the kept rows of the products export, and every product code sold
    that the export lacks (or that there is no export for), 'Unclassified' at every level of the hierarchy and
    named by its code, with unknown price and cost. -#}
with products as (
    select * from {{ ref('int_products_classified') }}
    where exclusion_reason_code is null
),

order_lines as (
    select * from {{ ref('int_order_lines_converted') }}
),

exported as (
    select
        product_id,
        product_name,
        department_name,
        category_name,
        subcategory_name,
        list_price,
        unit_cost,
        currency_code,
        launched_date,
        true as has_product_record,
        source_file,
        source_row_number
    from products
),

sold_only as (
    select distinct
        order_lines.product_id,
        order_lines.product_id as product_name,
        'Unclassified' as department_name,
        'Unclassified' as category_name,
        'Unclassified' as subcategory_name,
        cast(null as decimal(18, 2)) as list_price,
        cast(null as decimal(18, 4)) as unit_cost,
        cast(null as varchar) as currency_code,
        cast(null as date) as launched_date,
        false as has_product_record,
        cast(null as varchar) as source_file,
        cast(null as bigint) as source_row_number
    from order_lines
    where order_lines.product_id not in (select products.product_id from products)
),

final as (
    select * from exported
    union all
    select * from sold_only
)

select * from final
