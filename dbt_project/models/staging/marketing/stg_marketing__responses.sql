with source as (
    select * from {{ source('marketing', 'responses') }}
),

renamed as (
    select
        response_id,
        send_id,
        lower(response_type) as response_type,
        responded_at
    from source
)

select * from renamed
