with source as (
    select * from {{ source('erp', 'order_lines') }}
),

renamed as (
    select
        concat(order_no, '-', line_no) as order_line_id,
        order_no as order_id,
        line_no as line_number,
        sku as product_id,
        quantity,
        unit_price,
        line_amount
    from source
)

select * from renamed
