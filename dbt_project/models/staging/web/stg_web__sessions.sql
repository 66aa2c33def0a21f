with source as (
    select * from {{ source('web', 'sessions') }}
),

customer_keys as (
    select * from {{ ref('stg_erp__customer_keys') }}
),

renamed as (
    select
        source.session_id,
        source.visitor_id,
        coalesce(customer_keys.erp_customer_id, {{ clean_key('source.customer_no') }}) as erp_customer_id,
        -- the login's customer number as typed, cleaned: null exactly when erp_customer_id is, and a filter on it
        -- reaches the raw rows before the join (one on erp_customer_id cannot)
        {{ clean_key('source.customer_no') }} as login_key,
        source.started_at,
        source.ended_at,
        lower(source.device) as device,
        source.utm_source,
        source.landing_page,
        source._file as source_file,
        source._row_number as source_row_number
    from source
    left join customer_keys on {{ clean_key('source.customer_no') }} = customer_keys.customer_key
)

select * from renamed
