with source as (
    select * from {{ source('web', 'sessions') }}
),

renamed as (
    select
        session_id,
        visitor_id,
        customer_no as erp_customer_id,
        started_at,
        ended_at,
        lower(device) as device,
        utm_source,
        landing_page
    from source
)

select * from renamed
