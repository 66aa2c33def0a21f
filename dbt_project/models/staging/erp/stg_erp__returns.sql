with source as (
    select * from {{ source('erp', 'returns') }}
),

customer_keys as (
    select * from {{ ref('stg_erp__customer_keys') }}
),

renamed as (
    select
        source.return_no as return_id,
        -- the returned line, where the export names it; otherwise matched in int_returns_matched
        case
            when source.order_no is not null and source.line_no is not null
                then concat({{ clean_key('source.order_no') }}, '-', source.line_no)
        end as order_line_id,
        {{ clean_key('source.order_no') }} as order_id,
        source.line_no as line_number,
        coalesce(customer_keys.erp_customer_id, {{ clean_key('source.customer_no') }}) as erp_customer_id,
        source.sku as product_id,
        source.returned_on as returned_date,
        abs(source.quantity) as returned_quantity,
        abs(source.refund_amount) as refund_amount,
        source.reason as return_reason,
        source._file as source_file,
        source._row_number as source_row_number
    from source
    left join customer_keys on {{ clean_key('source.customer_no') }} = customer_keys.customer_key
)

select * from renamed
