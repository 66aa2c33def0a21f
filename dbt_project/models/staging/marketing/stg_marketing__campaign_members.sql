with source as (
    select * from {{ source('marketing', 'campaign_members') }}
),

renamed as (
    select
        concat(campaign_id, '-', contact_id) as campaign_member_id,
        campaign_id,
        contact_id,
        lower(trim(email)) as email,
        phone,
        lower(member_group) as member_group,
        lower(member_group) = 'control' as is_control,
        assigned_at,
        stratum,
        targeting_score,
        _file as source_file,
        _row_number as source_row_number
    from source
)

select * from renamed
