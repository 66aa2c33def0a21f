with source as (
    select * from {{ source('marketing', 'responses') }}
),

renamed as (
    select
        response_id,
        send_id,
        lower(response_type) as response_type,
        responded_at,
        _file as source_file,
        _row_number as source_row_number
    from source
)

select * from renamed
