with source as (
    select * from {{ source('erp', 'orders') }}
),

renamed as (
    select
        order_no as order_id,
        customer_no as erp_customer_id,
        {{ to_utc('ordered_at') }} as ordered_at,
        cast(ordered_at as date) as order_date,
        lower(sales_channel) as sales_channel,
        store_code as store_id,
        upper(currency_code) as currency_code,
        lower(order_status) as order_status
    from source
)

select * from renamed
