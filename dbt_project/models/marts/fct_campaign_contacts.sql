{#- One row per campaign member (target or control) who joined before the cutoff: the customer the member's
    contact resolves to, what was sent, how they responded, and what they bought in the attribution window.
    The window is the same for both groups: from the day the member joined the campaign to
    campaign_attribution_days after the campaign's end (cut at the cutoff). Control members receive nothing,
    so comparing the groups' purchases in the window measures what the campaign caused; the marketing tool's
    own conversions are last-click attributions, kept beside it. -#}
{%- set attribution_days = crm_number(var('campaign_attribution_days'), 'campaign_attribution_days') %}

with members as (
    select * from {{ ref('int_campaign_members_classified') }}
    where exclusion_reason_code is null
),

sends as (
    select * from {{ ref('stg_marketing__sends') }}
),

responses as (
    select * from {{ ref('stg_marketing__responses') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
),

-- Only the sends to the campaign's members count: most sends are not (half a million of the ten million sends of a
-- million customers are), and joining and counting the others' responses first spilled to disk.
member_sends as (
    select
        sends.campaign_id,
        sends.contact_id,
        count(distinct sends.send_id) as sends,
        min(sends.sent_at) as first_sent_at,
        count(responses.response_id) filter (where responses.response_type = 'open') > 0 as has_opened,
        count(responses.response_id) filter (where responses.response_type = 'click') > 0 as has_clicked,
        count(responses.response_id) filter (where responses.response_type = 'conversion') as attributed_conversions,
        count(responses.response_id) filter (where responses.response_type = 'unsubscribe') > 0 as has_unsubscribed,
        min(responses.responded_at) filter (where responses.response_type in ('open', 'click', 'conversion'))
            as first_responded_at
    from sends
    left join responses
        on
            sends.send_id = responses.send_id
            and {{ local_date('responses.responded_at') }} < {{ as_of_date() }}
    where
        {{ local_date('sends.sent_at') }} < {{ as_of_date() }}
        and exists (
            select 1 from members
            where members.campaign_id = sends.campaign_id and members.contact_id = sends.contact_id
        )
    group by sends.campaign_id, sends.contact_id
),

windows as (
    select
        campaign_member_id,
        campaign_id,
        contact_id,
        customer_id,
        case when is_control then 'control' else 'target' end as member_group,
        is_control,
        assigned_at,
        stratum,
        targeting_score,
        assigned_date as window_start_date,
        least(
            cast({{ dbt.dateadd('day', attribution_days, 'campaign_end_date') }} as date),
            cast({{ dbt.dateadd('day', -1, as_of_date()) }} as date)
        ) as window_end_date,
        {{ dbt.dateadd('day', attribution_days, 'campaign_end_date') }} < {{ as_of_date() }}
            as is_window_closed,
        source_file,
        source_row_number
    from members
),

-- what the member had bought before joining: fixed before the campaign, so it can segment and rank members
-- without the campaign moving them
orders_before_joining as (
    select
        windows.campaign_member_id,
        count(
            case when orders.order_date >= {{ dbt.dateadd('day', -365, 'windows.window_start_date') }} then 1 end
        ) as orders_in_year_before_joining,
        max(orders.order_date) as last_order_date_before_joining
    from windows
    inner join orders
        on
            windows.customer_id = orders.customer_id
            and windows.window_start_date > orders.order_date
    group by windows.campaign_member_id
),

window_orders as (
    select
        windows.campaign_member_id,
        count(*) as orders_in_window,
        sum(orders.net_revenue) as net_revenue_in_window,
        {{ sum_if_all_known('orders.margin') }} as margin_in_window
    from windows
    inner join orders
        on
            windows.customer_id = orders.customer_id
            and orders.order_date between windows.window_start_date and windows.window_end_date
    group by windows.campaign_member_id
),

final as (
    select
        windows.campaign_member_id,
        windows.campaign_id,
        windows.customer_id,
        windows.contact_id,
        windows.member_group,
        windows.is_control,
        windows.assigned_at,
        windows.stratum,
        windows.targeting_score,
        coalesce(before_joining.orders_in_year_before_joining, 0) as orders_in_year_before_joining,
        before_joining.last_order_date_before_joining,
        windows.window_start_date,
        windows.window_end_date,
        windows.is_window_closed,
        coalesce(member_sends.sends, 0) as sends,
        member_sends.first_sent_at,
        coalesce(member_sends.has_opened, false) as has_opened,
        coalesce(member_sends.has_clicked, false) as has_clicked,
        member_sends.first_responded_at is not null as has_responded,
        member_sends.first_responded_at,
        coalesce(member_sends.attributed_conversions, 0) as attributed_conversions,
        coalesce(member_sends.has_unsubscribed, false) as has_unsubscribed,
        coalesce(window_orders.orders_in_window, 0) > 0 as has_converted,
        coalesce(window_orders.orders_in_window, 0) as orders_in_window,
        coalesce(window_orders.net_revenue_in_window, 0) as net_revenue_in_window,
        -- no order is a margin of zero; an order of unknown cost leaves the margin unknown
        case when window_orders.campaign_member_id is null then 0 else window_orders.margin_in_window end
            as margin_in_window,
        windows.source_file,
        windows.source_row_number
    from windows
    left join member_sends
        on windows.campaign_id = member_sends.campaign_id and windows.contact_id = member_sends.contact_id
    left join window_orders on windows.campaign_member_id = window_orders.campaign_member_id
    left join orders_before_joining as before_joining
        on windows.campaign_member_id = before_joining.campaign_member_id
)

select * from final
