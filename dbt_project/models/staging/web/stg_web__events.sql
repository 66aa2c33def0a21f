with source as (
    select * from {{ source('web', 'events') }}
),

renamed as (
    select
        event_id,
        session_id,
        event_at,
        lower(event_type) as event_type,
        sku as product_id,
        _file as source_file,
        _row_number as source_row_number
    from source
)

select * from renamed
