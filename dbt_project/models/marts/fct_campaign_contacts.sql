{#- One row per campaign member (target or control) who joined before the cutoff: the customer the member's
    contact resolves to, what was sent, how they responded, and what they bought in the attribution window.
    The window is the same for both groups: from the day the member joined the campaign to
    campaign_attribution_days after the campaign's end (cut at the cutoff). Control members receive nothing,
    so comparing the groups' purchases in the window measures what the campaign caused; the marketing tool's
    own conversions are last-click attributions, kept beside it. -#}
with members as (
    select * from {{ ref('stg_marketing__campaign_members') }}
),

campaigns as (
    select * from {{ ref('stg_marketing__campaigns') }}
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

identities as (
    select * from {{ ref('int_identity_records_resolved') }}
),

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
            and {{ local_date('responses.responded_at') }} < cast('{{ var("as_of") }}' as date)
    where {{ local_date('sends.sent_at') }} < cast('{{ var("as_of") }}' as date)
    group by sends.campaign_id, sends.contact_id
),

windows as (
    select
        members.campaign_member_id,
        members.campaign_id,
        members.contact_id,
        identities.customer_id,
        case when members.is_control then 'control' else 'target' end as member_group,
        members.is_control,
        members.assigned_at,
        {{ local_date('members.assigned_at') }} as window_start_date,
        least(
            cast(campaigns.end_date + interval '{{ var("campaign_attribution_days") }} days' as date),
            cast('{{ var("as_of") }}' as date) - 1
        ) as window_end_date,
        campaigns.end_date + {{ var("campaign_attribution_days") }} < cast('{{ var("as_of") }}' as date)
            as is_window_closed
    from members
    inner join campaigns on members.campaign_id = campaigns.campaign_id
    left join identities
        on identities.source_system = 'crm' and members.contact_id = identities.source_record_id
    where {{ local_date('members.assigned_at') }} < cast('{{ var("as_of") }}' as date)
),

window_orders as (
    select
        windows.campaign_member_id,
        count(*) as orders_in_window,
        sum(orders.net_revenue) as net_revenue_in_window,
        sum(orders.margin) as margin_in_window
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
        coalesce(window_orders.margin_in_window, 0) as margin_in_window
    from windows
    left join member_sends
        on windows.campaign_id = member_sends.campaign_id and windows.contact_id = member_sends.contact_id
    left join window_orders on windows.campaign_member_id = window_orders.campaign_member_id
)

select * from final
