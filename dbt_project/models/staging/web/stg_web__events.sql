with source as (
    select * from {{ source('web', 'events') }}
),

renamed as (
    select
        event_id,
        session_id,
        event_at,
        lower(event_type) as event_type,
        sku as product_id
    from source
)

select * from renamed
