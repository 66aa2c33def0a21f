with source as (
    select * from {{ source('marketing', 'consents') }}
),

renamed as (
    select
        contact_id,
        lower(channel) as channel,
        lower(status) = 'opt_in' as has_consent,
        updated_at
    from source
)

select * from renamed
