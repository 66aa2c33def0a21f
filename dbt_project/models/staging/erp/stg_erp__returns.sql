with source as (
    select * from {{ source('erp', 'returns') }}
),

renamed as (
    select
        return_no as return_id,
        concat(order_no, '-', line_no) as order_line_id,
        order_no as order_id,
        line_no as line_number,
        sku as product_id,
        returned_on as returned_date,
        quantity as returned_quantity,
        refund_amount,
        reason as return_reason
    from source
)

select * from renamed
