with customers as (
    select * from {{ ref('dim_customers') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
),

cases as (
    select * from {{ ref('fct_support_cases') }}
),

scores as (
    select * from {{ ref('customer_scores') }}
),

interactions as (
    select * from {{ ref('fct_interactions') }}
),

-- What the customer did on each channel, in one pass over the interactions: what both preferred channels and
-- the last contact are chosen from.
channel_interactions as (
    select
        customer_id,
        channel_id,
        count(*) filter (where direction = 'inbound') as interactions,
        max(occurred_at) filter (where direction = 'inbound') as last_occurred_at,
        count(*) filter (
            where campaign_id is not null and interaction_type in ('open', 'click', 'conversion')
        ) as responses,
        count(*) filter (where campaign_id is not null and interaction_type = 'send') as sends,
        max(occurred_at) as last_contact_at
    from interactions
    where customer_id is not null
    group by customer_id, channel_id
),

-- Preferred channel by interactions: where the customer most often reaches us (orders, calls, web sessions,
-- cases, responses to campaigns), ties to the most recent.
preferred_interaction_channels as (
    select
        customer_id,
        channel_id as preferred_channel_by_interactions
    from channel_interactions
    where interactions > 0
    qualify row_number() over (
        partition by customer_id order by interactions desc, last_occurred_at desc, channel_id asc
    ) = 1
),

-- Preferred channel by responses: the campaign channel whose sends the customer responds to most often (opens,
-- clicks, conversions per send), among channels with at least one response; ties to the most responses.
preferred_response_channels as (
    select
        customer_id,
        channel_id as preferred_channel_by_responses
    from channel_interactions
    where responses > 0
    qualify row_number() over (
        partition by customer_id order by responses / greatest(sends, 1) desc, responses desc, channel_id asc
    ) = 1
),

-- The last contact: the customer's latest interaction, ties to the lowest interaction id. Ranking all of a
-- customer's interactions sorted tens of millions of rows and spilled at a million customers; the latest time
-- is an aggregate, so only the interactions at it (ties, or all of them when no time is known) are ranked. They
-- are read from the table again: a second reader of the import CTE would have it held in memory.
last_contact_times as (
    select
        customer_id,
        max(last_contact_at) as last_contact_at
    from channel_interactions
    group by customer_id
),

last_contacts as (
    select
        interactions.customer_id,
        interactions.occurred_at as last_contact_at,
        interactions.channel_id as last_contact_channel,
        interactions.interaction_type as last_contact_type
    from {{ ref('fct_interactions') }} as interactions
    inner join last_contact_times
        on
            interactions.customer_id = last_contact_times.customer_id
            and (
                interactions.occurred_at = last_contact_times.last_contact_at
                or last_contact_times.last_contact_at is null
            )
    qualify row_number() over (
        partition by interactions.customer_id
        order by interactions.occurred_at desc, interactions.interaction_id asc
    ) = 1
),

-- lifetime orders, revenue and first/last order come from dim_customers; only what it lacks is added here
order_summaries as (
    select
        customer_id,
        {{ sum_if_all_known('margin') }} as lifetime_margin
    from orders
    group by customer_id
),

case_summaries as (
    select
        customer_id,
        count(*) as support_cases,
        count(*) filter (where is_open) as open_support_cases,
        avg(satisfaction_score) as average_satisfaction
    from cases
    where customer_id is not null
    group by customer_id
),

final as (
    select
        customers.customer_id,
        customers.customer_type,
        customers.geography_id,
        customers.country_code,
        customers.city,
        customers.has_email,
        customers.has_phone,
        customers.loyalty_tier,
        scores.rfm_segment,
        scores.rfm_cell,
        scores.behaviour_segment,
        scores.p_alive,
        scores.clv,
        scores.clv_score_source,
        scores.churn_probability,
        scores.churn_risk_band,
        scores.revenue_at_risk,
        scores.churn_reasons,
        scores.churn_score_source,
        scores.tier_movement,
        scores.tier_movement_reason,
        customers.trailing_12m_net_revenue,
        customers.lifetime_orders,
        customers.lifetime_net_revenue,
        -- no orders is a margin of zero; an order of unknown cost leaves the lifetime margin unknown
        case when order_summaries.customer_id is null then 0 else order_summaries.lifetime_margin end
            as lifetime_margin,
        customers.lifetime_net_revenue / nullif(customers.lifetime_orders, 0) as average_order_value,
        customers.first_order_date,
        customers.last_order_date,
        preferred_interaction_channels.preferred_channel_by_interactions,
        preferred_response_channels.preferred_channel_by_responses,
        coalesce(case_summaries.support_cases, 0) as support_cases,
        coalesce(case_summaries.open_support_cases, 0) as open_support_cases,
        case_summaries.average_satisfaction,
        last_contacts.last_contact_at,
        last_contacts.last_contact_channel,
        last_contacts.last_contact_type,
        customers.has_email_consent,
        customers.has_sms_consent,
        customers.has_phone_consent,
        customers.as_of_date,
        customers.reporting_currency_code
    from customers
    left join order_summaries on customers.customer_id = order_summaries.customer_id
    left join preferred_interaction_channels on customers.customer_id = preferred_interaction_channels.customer_id
    left join preferred_response_channels on customers.customer_id = preferred_response_channels.customer_id
    left join last_contacts on customers.customer_id = last_contacts.customer_id
    left join case_summaries on customers.customer_id = case_summaries.customer_id
    left join scores on customers.customer_id = scores.customer_id
)

select * from final
