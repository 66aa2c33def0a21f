with source as (
    select * from {{ source('erp', 'products') }}
),

renamed as (
    select
        sku as product_id,
        product_name,
        department as department_name,
        category as category_name,
        subcategory as subcategory_name,
        list_price,
        unit_cost,
        upper(currency_code) as currency_code,
        launched_on as launched_date
    from source
)

select * from renamed
