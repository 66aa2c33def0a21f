with source as (
    select * from {{ source('marketing', 'campaigns') }}
),

renamed as (
    select
        campaign_id,
        campaign_name,
        lower(channel) as channel,
        objective,
        offer_category as offer_category_name,
        starts_on as start_date,
        ends_on as end_date,
        control_share,
        audience,
        control_draw,
        _file as source_file,
        _row_number as source_row_number
    from source
)

select * from renamed
