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
