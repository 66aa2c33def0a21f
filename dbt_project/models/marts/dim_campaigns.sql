{#- The campaigns known at the cutoff, with the sizes of their target and control groups as of the cutoff. -#}
with campaigns as (
    select * from {{ ref('int_campaigns_classified') }}
    where exclusion_reason_code is null
),

members as (
    select * from {{ ref('int_campaign_members_classified') }}
    where exclusion_reason_code is null
),

group_sizes as (
    select
        campaign_id,
        sum(case when is_control then 0 else 1 end) as target_members,
        sum(case when is_control then 1 else 0 end) as control_members
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
        coalesce(group_sizes.control_members, 0) as control_members,
        campaigns.source_file,
        campaigns.source_row_number
    from campaigns
    left join group_sizes on campaigns.campaign_id = group_sizes.campaign_id
)

select * from final
