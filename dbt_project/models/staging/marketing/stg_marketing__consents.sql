with source as (
    select * from {{ source('marketing', 'consents') }}
),

renamed as (
    select
        contact_id,
        lower(channel) as channel,
        lower(status) = 'opt_in' as has_consent,
        updated_at,
        _file as source_file,
        _row_number as source_row_number
    from source
)

select * from renamed
