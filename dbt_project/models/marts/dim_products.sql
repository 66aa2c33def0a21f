with products as (
    select * from {{ ref('stg_erp__products') }}
),

final as (
    select
        product_id,
        product_name,
        department_name,
        category_name,
        subcategory_name,
        list_price,
        unit_cost,
        currency_code,
        launched_date
    from products
)

select * from final
