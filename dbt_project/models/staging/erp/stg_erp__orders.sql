with source as (
    select * from {{ source('erp', 'orders') }}
),

customer_keys as (
    select * from {{ ref('stg_erp__customer_keys') }}
),

renamed as (
    select
        {{ clean_key('source.order_no') }} as order_id,
        -- the customer the key stands for (one person may have several keys)
        coalesce(customer_keys.erp_customer_id, {{ clean_key('source.customer_no') }}) as erp_customer_id,
        {{ to_utc('source.ordered_at') }} as ordered_at,
        cast(source.ordered_at as date) as order_date,
        coalesce(lower(nullif(trim(source.sales_channel), '')), 'unknown') as sales_channel,
        source.store_code as store_id,
        -- an order without a currency is in the reporting currency
        coalesce(upper(nullif(trim(source.currency_code), '')), {{ reporting_currency() }}) as currency_code,
        coalesce(lower(nullif(trim(source.order_status), '')), 'invoiced') as order_status,
        source._file as source_file,
        source._row_number as source_row_number
    from source
    left join customer_keys on {{ clean_key('source.customer_no') }} = customer_keys.customer_key
)

select * from renamed
