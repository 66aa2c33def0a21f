with source as (
    select * from {{ source('erp', 'products') }}
),

renamed as (
    select
        sku as product_id,
        coalesce(nullif(trim(product_name), ''), sku) as product_name,
        coalesce(nullif(trim(department), ''), 'Unclassified') as department_name,
        coalesce(nullif(trim(category), ''), 'Unclassified') as category_name,
        coalesce(nullif(trim(subcategory), ''), 'Unclassified') as subcategory_name,
        list_price,
        unit_cost,
        upper(nullif(trim(currency_code), '')) as currency_code,
        launched_on as launched_date,
        _file as source_file,
        _row_number as source_row_number
    from source
)

select * from renamed
