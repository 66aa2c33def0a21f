{#- Every loaded campaign with its fate as of the cutoff: kept when it started before the cutoff or had members
    or sends before it (a campaign prepared in advance); excluded when it starts on or after the cutoff with
    nothing before it, or its id was loaded before. -#}
with campaigns as (
    select * from {{ ref('stg_marketing__campaigns') }}
),

members as (
    select * from {{ ref('stg_marketing__campaign_members') }}
),

sends as (
    select * from {{ ref('stg_marketing__sends') }}
),

-- only the sends within a day of the cutoff need the timezone conversion (local_date_before_cutoff), which every
-- model reading this view did again for each of the 10 million sends of a million customers
active_before_cutoff as (
    select campaign_id from members
    where {{ local_date('assigned_at') }} < {{ as_of_date() }}
    union
    select campaign_id from sends
    where {{ local_date_before_cutoff('sent_at') }}
),

numbered_campaigns as (
    select
        *,
        row_number() over (partition by campaign_id order by source_file, source_row_number) as copy_number
    from campaigns
),

classified as (
    select
        numbered_campaigns.*,
        case
            when numbered_campaigns.copy_number > 1 then 'duplicate_key'
            when numbered_campaigns.start_date >= {{ as_of_date() }} and active_before_cutoff.campaign_id is null
                then 'after_as_of'
        end as exclusion_reason_code
    from numbered_campaigns
    left join active_before_cutoff on numbered_campaigns.campaign_id = active_before_cutoff.campaign_id
),

final as (
    select
        campaign_id,
        campaign_name,
        channel,
        objective,
        offer_category_name,
        start_date,
        end_date,
        control_share,
        copy_number = 1 as is_first_copy,
        exclusion_reason_code,
        case exclusion_reason_code
            when 'duplicate_key'
                then concat(
                    'campaign ', campaign_id, ' was loaded more than once; the first row is kept'
                )
            when 'after_as_of' then concat(
                'starts on ', cast(start_date as {{ dbt.type_string() }}),
                ', on or after the as-of date ', cast({{ as_of_date() }} as {{ dbt.type_string() }})
            )
        end as exclusion_reason,
        source_file,
        source_row_number
    from classified
)

select * from final
