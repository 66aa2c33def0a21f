{#- Campaign results, target group against control group: for every campaign (all members, then by segment) and
    every channel (its campaigns pooled), each group's response, conversion and revenue in the attribution window
    (fct_campaign_contacts), the lift in conversion rate and the incremental revenue, each with a 95% interval.

    Lift interval: Newcombe's hybrid score interval for a difference of independent proportions (Newcombe 1998,
    method 10), from each group's Wilson interval. Control groups are small and conversion rates low; there the
    Wald interval covers too rarely and can leave [-1, 1], while Newcombe's keeps near 95% and stays in range.
    Incremental revenue: (revenue per target - per control member) x targets, with the normal (Welch) interval of
    a difference of means; revenue per member is skewed, so it wants about 30 members a group.

    Segment: the planner's stratum (the control group was drawn within it), else the member's purchase recency on
    the day they joined. Both are fixed before the campaign, which cannot then move members between segments (a
    segment measured after it, such as today's RFM segment, would compare targets it moved with controls). -#}
{%- set attribution_days = crm_number(var('campaign_attribution_days'), 'campaign_attribution_days') %}
{%- set z = 1.959963984540054 %}
{%- set z_squared = z * z %}
{%- set small_group = 30 %}
{#- the totals of a group a channel's row sums over its campaigns -#}
{%- set totals = [
    'target_members', 'control_members', 'targets_contacted', 'target_responders', 'target_conversions',
    'control_conversions', 'target_revenue', 'control_revenue'
] %}


with contacts as (
    select
        *,
        {{ dbt.datediff('last_order_date_before_joining', 'window_start_date', 'day') }} as days_since_last_order  -- noqa: LT05
    from {{ ref('fct_campaign_contacts') }}
),

campaigns as (
    select * from {{ ref('dim_campaigns') }}
),

members as (
    -- campaigns with a member list: a broadcast without one (a newsletter) has no control group to measure against
    select
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.channel_id as channel,
        cast({{ dbt.dateadd('day', attribution_days, 'campaigns.end_date') }} as date) as attribution_end_date,
        contacts.campaign_member_id,
        contacts.is_control,
        contacts.sends > 0 as is_contacted,
        contacts.has_responded,
        contacts.has_converted,
        cast(contacts.net_revenue_in_window as double) as revenue,
        coalesce(
            contacts.stratum,
            case
                when contacts.last_order_date_before_joining is null then 'no order before joining'
                when contacts.days_since_last_order <= 90 then 'last order 1-90 days before joining'
                when contacts.days_since_last_order <= 180 then 'last order 91-180 days before joining'
                when contacts.days_since_last_order <= 365 then 'last order 181-365 days before joining'
                else 'last order over 365 days before joining'
            end
        ) as segment
    from campaigns
    inner join contacts on campaigns.campaign_id = contacts.campaign_id
),

stacked as (
    select
        *,
        'campaign' as breakdown,
        'all members' as breakdown_value
    from members
    union all
    select
        *,
        'segment' as breakdown,
        segment as breakdown_value
    from members
),

cells as (
    select
        campaign_id,
        campaign_name,
        channel,
        attribution_end_date,
        breakdown,
        breakdown_value,
        count(case when not is_control then 1 end) as target_members,
        count(case when is_control then 1 end) as control_members,
        count(case when not is_control and is_contacted then 1 end) as targets_contacted,
        count(case when not is_control and has_responded then 1 end) as target_responders,
        count(case when not is_control and has_converted then 1 end) as target_conversions,
        count(case when is_control and has_converted then 1 end) as control_conversions,
        coalesce(sum(case when not is_control then revenue end), 0) as target_revenue,
        coalesce(sum(case when is_control then revenue end), 0) as control_revenue,
        var_samp(case when not is_control then revenue end) as target_revenue_variance,
        var_samp(case when is_control then revenue end) as control_revenue_variance
    from stacked
    group by campaign_id, campaign_name, channel, attribution_end_date, breakdown, breakdown_value
),

rates as (
    select
        *,
        -- Wilson score interval of each group's conversion rate
        {%- for group in ['target', 'control'] %}
            {%- for bound, sign in [('low', '-'), ('high', '+')] %}
                (
                    {{ group }}_conversions + {{ z_squared / 2 }}
                    {{ sign }} {{ z }} * sqrt(
                        cast({{ group }}_conversions * ({{ group }}_members - {{ group }}_conversions) as double)
                        / nullif({{ group }}_members, 0)
                        + {{ z_squared / 4 }}
                    )
                ) / ({{ group }}_members + {{ z_squared }}) as {{ group }}_rate_{{ bound }},
            {%- endfor %}
        {%- endfor %}
        cast(target_conversions as double) / nullif(target_members, 0) as target_conversion_rate,
        cast(control_conversions as double) / nullif(control_members, 0) as control_conversion_rate,
        target_revenue / nullif(target_members, 0) as target_revenue_per_member,
        control_revenue / nullif(control_members, 0) as control_revenue_per_member,
        attribution_end_date < {{ as_of_date() }} as is_window_closed
    from cells
),

campaign_results as (
    select
        campaign_id,
        campaign_name,
        channel,
        attribution_end_date,
        breakdown,
        breakdown_value,
        1 as campaigns,
        target_members,
        control_members,
        targets_contacted,
        target_responders,
        target_conversions,
        control_conversions,
        target_revenue,
        control_revenue,
        target_revenue_variance,
        control_revenue_variance,
        target_conversion_rate,
        control_conversion_rate,
        target_revenue_per_member,
        control_revenue_per_member,
        target_conversion_rate - control_conversion_rate as conversion_lift,
        target_conversion_rate - control_conversion_rate - sqrt(
            power(target_conversion_rate - target_rate_low, 2) + power(control_rate_high - control_conversion_rate, 2)
        ) as conversion_lift_low,
        target_conversion_rate - control_conversion_rate + sqrt(
            power(target_rate_high - target_conversion_rate, 2) + power(control_conversion_rate - control_rate_low, 2)
        ) as conversion_lift_high,
        sqrt(
            target_revenue_variance / target_members + control_revenue_variance / control_members
        ) as revenue_difference_error,
        is_window_closed
    from rates
),

pooled as (
    -- a channel's campaigns that have both groups, each campaign's difference weighted by its targets: pooling the
    -- members instead would mix campaigns with different control shares and base rates (Simpson's paradox)
    select
        results.channel,
        count(*) as campaigns,
        {%- for total in totals %}
            sum(results.{{ total }}) as {{ total }},
        {%- endfor %}
        sum(results.target_members * results.conversion_lift) as incremental_conversions,
        -- each campaign's Newcombe interval, combined as for any sum of independent estimates (MOVER, Zou and
        -- Donner 2008; Newcombe's interval is that method applied to two Wilson intervals)
        sqrt(sum(power(results.target_members * (results.conversion_lift - results.conversion_lift_low), 2)))
            as incremental_conversions_below,
        sqrt(sum(power(results.target_members * (results.conversion_lift_high - results.conversion_lift), 2)))
            as incremental_conversions_above,
        sum(
            results.target_members * (results.target_revenue_per_member - results.control_revenue_per_member)
        ) as incremental_revenue,
        -- unknown when a campaign's own revenue interval is (a group of one member)
        case
            when count(results.revenue_difference_error) = count(*)
                then sqrt(sum(power(results.target_members * results.revenue_difference_error, 2)))
        end as incremental_revenue_error,
        min(case when results.is_window_closed then 1 else 0 end) = 1 as is_window_closed
    from campaign_results as results
    where
        results.breakdown = 'campaign'
        and results.target_members > 0
        and results.control_members > 0
    group by results.channel
),

channel_campaigns as (
    select
        channel,
        count(*) as campaigns_run,
        max(attribution_end_date) as attribution_end_date
    from campaign_results
    where breakdown = 'campaign'
    group by channel
),

channel_results as (
    select
        channel_campaigns.channel,
        channel_campaigns.campaigns_run,
        channel_campaigns.attribution_end_date,
        coalesce(pooled.campaigns, 0) as campaigns,
        {%- for total in totals %}
            coalesce(pooled.{{ total }}, 0) as {{ total }},
        {%- endfor %}
        cast(pooled.target_conversions as double) / nullif(pooled.target_members, 0) as target_conversion_rate,
        pooled.target_revenue / nullif(pooled.target_members, 0) as target_revenue_per_member,
        pooled.incremental_conversions / nullif(pooled.target_members, 0) as conversion_lift,
        pooled.incremental_conversions_below / nullif(pooled.target_members, 0) as conversion_lift_below,
        pooled.incremental_conversions_above / nullif(pooled.target_members, 0) as conversion_lift_above,
        pooled.incremental_revenue,
        pooled.incremental_revenue_error,
        coalesce(pooled.is_window_closed, true) as is_window_closed
    from channel_campaigns
    left join pooled on channel_campaigns.channel = pooled.channel
),

campaign_rows as (
    select
        results.campaign_id,
        results.campaign_name,
        results.channel,
        results.breakdown,
        results.breakdown_value,
        results.campaigns,
        {%- for total in totals %}
            results.{{ total }},
        {%- endfor %}
        results.target_conversion_rate,
        results.control_conversion_rate,
        results.target_revenue_per_member,
        results.control_revenue_per_member,
        results.conversion_lift,
        results.conversion_lift_low,
        results.conversion_lift_high,
        results.target_members * results.conversion_lift as incremental_conversions,
        results.target_members * (results.target_revenue_per_member - results.control_revenue_per_member)
            as incremental_revenue,
        results.target_members * (
            results.target_revenue_per_member - results.control_revenue_per_member
            - {{ z }} * results.revenue_difference_error
        ) as incremental_revenue_low,
        results.target_members * (
            results.target_revenue_per_member - results.control_revenue_per_member
            + {{ z }} * results.revenue_difference_error
        ) as incremental_revenue_high,
        'newcombe hybrid score' as lift_interval_method,
        results.is_window_closed,
        results.attribution_end_date,
        cast(null as {{ dbt.type_int() }}) as campaigns_without_control
    from campaign_results as results
),

channel_rows as (
    select
        cast(null as {{ dbt.type_string() }}) as campaign_id,
        concat('All ', channel, ' campaigns') as campaign_name,
        channel,
        'channel' as breakdown,
        channel as breakdown_value,
        campaigns,
        {%- for total in totals %}
            {{ total }},
        {%- endfor %}
        target_conversion_rate,
        -- what the targets would have converted at without the campaign: their rate minus the pooled lift
        target_conversion_rate - conversion_lift as control_conversion_rate,
        target_revenue_per_member,
        target_revenue_per_member - incremental_revenue / nullif(target_members, 0) as control_revenue_per_member,
        conversion_lift,
        conversion_lift - conversion_lift_below as conversion_lift_low,
        conversion_lift + conversion_lift_above as conversion_lift_high,
        target_members * conversion_lift as incremental_conversions,
        incremental_revenue,
        incremental_revenue - {{ z }} * incremental_revenue_error as incremental_revenue_low,
        incremental_revenue + {{ z }} * incremental_revenue_error as incremental_revenue_high,
        'newcombe combined over campaigns' as lift_interval_method,
        is_window_closed,
        attribution_end_date,
        campaigns_run - campaigns as campaigns_without_control
    from channel_results
),

all_rows as (
    select * from campaign_rows
    union all
    select * from channel_rows
),

final as (
    select
        campaign_id,
        campaign_name,
        channel,
        breakdown,
        breakdown_value,
        cast(campaigns as {{ dbt.type_bigint() }}) as campaigns,
        cast(target_members as {{ dbt.type_bigint() }}) as target_members,
        cast(control_members as {{ dbt.type_bigint() }}) as control_members,
        cast(targets_contacted as {{ dbt.type_bigint() }}) as targets_contacted,
        cast(target_responders as {{ dbt.type_bigint() }}) as target_responders,
        cast(target_responders as double) / nullif(target_members, 0) as target_response_rate,
        cast(target_conversions as {{ dbt.type_bigint() }}) as target_conversions,
        cast(control_conversions as {{ dbt.type_bigint() }}) as control_conversions,
        target_conversion_rate,
        control_conversion_rate,
        target_revenue,
        control_revenue,
        target_revenue_per_member,
        control_revenue_per_member,
        {{ reporting_currency() }} as reporting_currency_code,
        conversion_lift,
        conversion_lift_low,
        conversion_lift_high,
        lift_interval_method,
        conversion_lift / nullif(control_conversion_rate, 0) as relative_lift,
        incremental_conversions,
        incremental_revenue,
        incremental_revenue_low,
        incremental_revenue_high,
        is_window_closed,
        attribution_end_date,
        nullif(trim(concat(
            case
                when target_members = 0 and control_members = 0 and breakdown = 'channel'
                    then 'No campaign with a control group: lift cannot be measured.'
                when control_members = 0 then 'No control group: lift cannot be measured.'
                when target_members = 0 then 'No target group: lift cannot be measured.'
                when target_members < {{ small_group }} or control_members < {{ small_group }}
                    then concat(
                        'Small groups (', cast(target_members as {{ dbt.type_string() }}), ' targets, ',
                        cast(control_members as {{ dbt.type_string() }}),
                        ' controls): the intervals are wide, the revenue interval only a rough guide.'
                    )
                else ''
            end,
            case
                when campaigns > 0 and campaigns_without_control > 0
                    then concat(
                        ' ', cast(campaigns_without_control as {{ dbt.type_string() }}),
                        ' campaign(s) without a control group left out.'
                    )
                else ''
            end,
            case
                when not is_window_closed
                    then concat(
                        ' Provisional: orders count until ',
                        cast(attribution_end_date as {{ dbt.type_string() }}), '.'
                    )
                else ''
            end
        )), '') as note
    from all_rows
)

select * from final
