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
        sent_at,
        _file as source_file,
        _row_number as source_row_number
    from source
)

select * from renamed
