with campaigns as (
    select * from {{ ref('stg_marketing__campaigns') }}
),

members as (
    select * from {{ ref('stg_marketing__campaign_members') }}
),

group_sizes as (
    select
        campaign_id,
        count(*) filter (where not is_control) as target_members,
        count(*) filter (where is_control) as control_members
    from members
    group by campaign_id
),

final as (
    select
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.channel as channel_id,
        campaigns.objective,
        campaigns.offer_category_name,
        campaigns.start_date,
        campaigns.end_date,
        campaigns.control_share as planned_control_share,
        coalesce(group_sizes.target_members, 0) as target_members,
        coalesce(group_sizes.control_members, 0) as control_members
    from campaigns
    left join group_sizes on campaigns.campaign_id = group_sizes.campaign_id
)

select * from final
