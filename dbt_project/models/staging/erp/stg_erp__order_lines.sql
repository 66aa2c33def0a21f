with source as (
    select * from {{ source('erp', 'order_lines') }}
),

renamed as (
    select
        concat({{ clean_key('order_no') }}, '-', line_no) as order_line_id,
        {{ clean_key('order_no') }} as order_id,
        line_no as line_number,
        sku as product_id,
        quantity,
        -- an export may carry the unit price or the line amount alone: each is derived from the other
        cast(coalesce(unit_price, round(line_amount / nullif(quantity, 0), 4)) as decimal(38, 4)) as unit_price,
        cast(coalesce(line_amount, round(quantity * unit_price, 2)) as decimal(38, 2)) as line_amount,
        _file as source_file,
        _row_number as source_row_number
    from source
)

select * from renamed
