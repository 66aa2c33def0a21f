{#- Every touchpoint before the cutoff, one row each: the customer's activity timeline. Orders, call-center
    calls, campaign sends and the responses to them (open, click, conversion, unsubscribe), web sessions and
    support cases, each with its channel, direction (inbound: the customer acted; outbound: we did) and UTC
    timestamp. A touchpoint no identity rule resolves (an anonymous session, a call from an unknown number) is
    kept with no customer, so channel volumes stay whole. A response whose send is not loaded has no channel:
    fct_row_exclusions records it. A send (and its responses) whose campaign is not among the kept campaigns (a
    campaigns export re-delivered without it) is kept, the touch happened, with no campaign; a warning test
    counts them. Each row carries the file and row of its source record.
    Built incrementally (dbt_project.yml, macros/rebuild_plan.sql): when tonight's plan says so, only the
    interactions whose row can have moved (int_interactions_touched), each touch read with its key's filter. -#}
{%- set touched = ref('int_interactions_touched') %}
{%- set only_touched = is_incremental() %}

with orders as (
    select * from {{ ref('fct_orders') }}
),

calls as (
    select * from {{ ref('stg_callcenter__calls') }}
),

sends as (
    select * from {{ ref('stg_marketing__sends') }}
),

responses as (
    select * from {{ ref('stg_marketing__responses') }}
),

web_sessions as (
    select * from {{ ref('stg_web__sessions') }}
    {%- if only_touched %}
        where concat('web_session:', session_id) in (select interaction_id from {{ touched }})
    {%- endif %}
),

-- resolved as they are read (int_identity_records_resolved holds the other records; int_web_sessions_resolved is
-- the same map of every session, a view)
sessions as (
    {{ resolve_web_sessions('web_sessions') }}
),

cases as (
    select * from {{ ref('fct_support_cases') }}
),

identities as (
    select * from {{ ref('int_identity_records_resolved') }}
),

campaigns as (
    select * from {{ ref('dim_campaigns') }}
),

order_touches as (
    select
        concat('order:', order_id) as interaction_id,
        customer_id,
        'order' as interaction_type,
        sales_channel as channel_id,
        'inbound' as direction,
        ordered_at as occurred_at,
        order_date as occurred_date,
        cast(null as varchar) as campaign_id,
        order_id as source_record_id,
        net_revenue,
        cast(null as bigint) as duration_seconds,
        source_file,
        source_row_number
    from orders
    {%- if only_touched %}
        where concat('order:', order_id) in (select interaction_id from {{ touched }})
    {%- endif %}
),

call_touches as (
    select
        concat('call:', calls.call_id) as interaction_id,
        identities.customer_id,
        'call' as interaction_type,
        'call' as channel_id,
        'inbound' as direction,
        calls.started_at as occurred_at,
        {{ local_date('calls.started_at') }} as occurred_date,
        cast(null as varchar) as campaign_id,
        calls.call_id as source_record_id,
        cast(null as decimal(38, 2)) as net_revenue,
        calls.duration_seconds,
        calls.source_file,
        calls.source_row_number
    from calls
    left join identities
        on identities.source_system = 'callcenter' and calls.call_id = identities.source_record_id
    {%- if only_touched %}
        where concat('call:', calls.call_id) in (select interaction_id from {{ touched }})
    {%- endif %}
),

send_touches as (
    select
        concat('send:', sends.send_id) as interaction_id,
        identities.customer_id,
        'send' as interaction_type,
        sends.channel as channel_id,
        'outbound' as direction,
        sends.sent_at as occurred_at,
        {{ local_date('sends.sent_at') }} as occurred_date,
        case when sends.campaign_id in (select campaigns.campaign_id from campaigns) then sends.campaign_id end
            as campaign_id,
        cast(sends.send_id as varchar) as source_record_id,
        cast(null as decimal(38, 2)) as net_revenue,
        cast(null as bigint) as duration_seconds,
        sends.source_file,
        sends.source_row_number
    from sends
    left join identities
        on identities.source_system = 'crm' and sends.contact_id = identities.source_record_id
    {%- if only_touched %}
        where concat('send:', sends.send_id) in (select interaction_id from {{ touched }})
    {%- endif %}
),

response_touches as (
    select
        concat('response:', responses.response_id) as interaction_id,
        identities.customer_id,
        responses.response_type as interaction_type,
        sends.channel as channel_id,
        'inbound' as direction,
        responses.responded_at as occurred_at,
        {{ local_date('responses.responded_at') }} as occurred_date,
        case when sends.campaign_id in (select campaigns.campaign_id from campaigns) then sends.campaign_id end
            as campaign_id,
        cast(responses.response_id as varchar) as source_record_id,
        cast(null as decimal(38, 2)) as net_revenue,
        cast(null as bigint) as duration_seconds,
        responses.source_file,
        responses.source_row_number
    from responses
    inner join sends on responses.send_id = sends.send_id
    left join identities
        on identities.source_system = 'crm' and sends.contact_id = identities.source_record_id
    {%- if only_touched %}
        where concat('response:', responses.response_id) in (select interaction_id from {{ touched }})
    {%- endif %}
),

session_touches as (
    select
        concat('web_session:', sessions.session_id) as interaction_id,
        sessions.customer_id,
        'web_session' as interaction_type,
        'web_session' as channel_id,
        'inbound' as direction,
        sessions.started_at as occurred_at,
        {{ local_date('sessions.started_at') }} as occurred_date,
        cast(null as varchar) as campaign_id,
        sessions.session_id as source_record_id,
        cast(null as decimal(38, 2)) as net_revenue,
        {{ dbt.datediff('sessions.started_at', 'sessions.ended_at', 'second') }} as duration_seconds,  -- noqa: LT05
        sessions.source_file,
        sessions.source_row_number
    from sessions
),

case_touches as (
    select
        concat('support_case:', case_id) as interaction_id,
        customer_id,
        'support_case' as interaction_type,
        'support_case' as channel_id,
        'inbound' as direction,
        {{ to_utc('opened_at') }} as occurred_at,
        opened_date as occurred_date,
        cast(null as varchar) as campaign_id,
        case_id as source_record_id,
        cast(null as decimal(38, 2)) as net_revenue,
        cast(null as bigint) as duration_seconds,
        source_file,
        source_row_number
    from cases
    {%- if only_touched %}
        where concat('support_case:', case_id) in (select interaction_id from {{ touched }})
    {%- endif %}
),

touches as (
    select * from order_touches
    union all
    select * from call_touches
    union all
    select * from send_touches
    union all
    select * from response_touches
    union all
    select * from session_touches
    union all
    select * from case_touches
),

-- only the touches within a day of the cutoff need their local date compared (local_date_before_cutoff): the
-- filter would otherwise convert the timezone of each of 25 million touches again beside the column's
final as (
    select * from touches
    where {{ local_date_before_cutoff('occurred_at', 'occurred_date') }}
)

select * from final
