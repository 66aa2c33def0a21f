with source as (
    select * from {{ source('marketing', 'sends') }}
),

renamed as (
    select
        send_id,
        campaign_id,
        contact_id,
        lower(channel) as channel,
        address,
        sent_at
    from source
)

select * from renamed
