{#- Every loaded campaign member with the customer their contact resolves to and their fate as of the cutoff:
    kept, or excluded when the member joined on or after the cutoff, the campaign is not among the kept
    campaigns, the contact resolves to nobody known at the cutoff, or the member was loaded before. -#}
with members as (
    select * from {{ ref('stg_marketing__campaign_members') }}
),

campaigns as (
    select * from {{ ref('int_campaigns_classified') }}
    where exclusion_reason_code is null
),

identities as (
    select * from {{ ref('int_identity_records_resolved') }}
),

numbered_members as (
    select
        *,
        row_number() over (partition by campaign_member_id order by source_file, source_row_number) as copy_number
    from members
),

joined as (
    select
        numbered_members.campaign_member_id,
        numbered_members.campaign_id,
        numbered_members.contact_id,
        identities.customer_id,
        numbered_members.member_group,
        numbered_members.is_control,
        numbered_members.assigned_at,
        numbered_members.stratum,
        cast(numbered_members.targeting_score as double) as targeting_score,
        campaigns.end_date as campaign_end_date,
        numbered_members.copy_number,
        campaigns.campaign_id is not null as has_campaign,
        {{ local_date('numbered_members.assigned_at') }} as assigned_date,
        numbered_members.source_file,
        numbered_members.source_row_number
    from numbered_members
    left join campaigns on numbered_members.campaign_id = campaigns.campaign_id
    left join identities
        on identities.source_system = 'crm' and numbered_members.contact_id = identities.source_record_id
),

final as (
    select
        campaign_member_id,
        campaign_id,
        contact_id,
        customer_id,
        member_group,
        is_control,
        assigned_at,
        assigned_date,
        stratum,
        targeting_score,
        campaign_end_date,
        copy_number = 1 as is_first_copy,
        case
            when copy_number > 1 then 'duplicate_key'
            when assigned_date >= {{ as_of_date() }} then 'after_as_of'
            when not has_campaign then 'campaign_missing'
            when customer_id is null then 'contact_unknown'
        end as exclusion_reason_code,
        case
            when copy_number > 1
                then concat(
                    'campaign member ', campaign_member_id, ' was loaded more than once; the first row is kept'
                )
            when assigned_date >= {{ as_of_date() }}
                then concat(
                    'joined the campaign on ', cast(assigned_date as {{ dbt.type_string() }}),
                    ', on or after the as-of date ', cast({{ as_of_date() }} as {{ dbt.type_string() }})
                )
            when not has_campaign
                then concat(
                    'its campaign ', campaign_id, ' is not among the campaigns known at the as-of date'
                )
            when customer_id is null then concat(
                'its contact ', contact_id, ' is not among the CRM contacts known at the as-of date'
            )
        end as exclusion_reason,
        source_file,
        source_row_number
    from joined
)

select * from final
