{#- Every loaded product with its fate as of the cutoff: kept, or excluded because its product code was loaded
    before, or because it is launched on or after the cutoff and was not sold before it. A product sold before
    its launch date keeps its row, without the launch date the cutoff could not have known. -#}
with products as (
    select * from {{ ref('stg_erp__products') }}
),

order_lines as (
    select * from {{ ref('int_order_lines_converted') }}
),

sold_products as (
    select distinct product_id
    from order_lines
),

numbered_products as (
    select
        *,
        row_number() over (partition by product_id order by source_file, source_row_number) as copy_number
    from products
),

final as (
    select
        numbered_products.product_id,
        numbered_products.product_name,
        numbered_products.department_name,
        numbered_products.category_name,
        numbered_products.subcategory_name,
        numbered_products.list_price,
        numbered_products.unit_cost,
        numbered_products.currency_code,
        case when numbered_products.launched_date < {{ as_of_date() }} then numbered_products.launched_date end
            as launched_date,
        numbered_products.copy_number = 1 as is_first_copy,
        case
            when numbered_products.copy_number > 1 then 'duplicate_key'
            when numbered_products.launched_date >= {{ as_of_date() }} and sold_products.product_id is null
                then 'after_as_of'
        end as exclusion_reason_code,
        case
            when numbered_products.copy_number > 1
                then concat(
                    'product ', numbered_products.product_id, ' was loaded more than once; the first row is kept'
                )
            when numbered_products.launched_date >= {{ as_of_date() }} and sold_products.product_id is null
                then concat(
                    'launched on ', cast(numbered_products.launched_date as {{ dbt.type_string() }}),
                    ', on or after the as-of date ', cast({{ as_of_date() }} as {{ dbt.type_string() }})
                )
        end as exclusion_reason,
        numbered_products.source_file,
        numbered_products.source_row_number
    from numbered_products
    left join sold_products on numbered_products.product_id = sold_products.product_id
)

select * from final
