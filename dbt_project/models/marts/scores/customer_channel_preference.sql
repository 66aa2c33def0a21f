{#- The channel each customer responds to most, with the evidence: one row per customer of dim_customers.

    A contact is a campaign that sent to the customer (a target with at least one send before the cutoff) over the
    campaign's channel; a response is an open, click or conversion the marketing tool recorded for it (a phone
    call records only conversions). Broadcasts without a member list (newsletters) are not contacts: they reach
    every subscriber every month, so they would name email for everyone who opens one, a comparison with nothing. Channels are compared by each one's response rate relative to that channel's
    average over all customers, because channels measure differently (an email open is cheap, a phone sale is
    not), and the rate is smoothed towards the channel's average by a prior worth `prior_contacts` contacts, so
    that 1 response in 1 contact does not outrank 30 in 100 (a beta-binomial posterior mean):

        response_index = ((responses + prior_contacts * average_rate) / (contacts + prior_contacts)) / average_rate

    1 is the channel's average. A channel is a candidate with at least channel_min_contacts contacts and one
    response; the preferred channel is the candidate with the highest index (then more responses, then email, sms,
    phone), null when there is none. -#}
{%- set min_contacts = crm_number(var('channel_min_contacts'), 'channel_min_contacts') %}
{%- set prior_contacts = 10 %}
{%- set channels = ['email', 'sms', 'phone'] %}

with customers as (
    select * from {{ ref('dim_customers') }}
),

contacts as (
    select * from {{ ref('fct_campaign_contacts') }}
    where sends > 0
),

campaigns as (
    select * from {{ ref('dim_campaigns') }}
),

channels as (
    {%- for channel in channels %}
        select
            '{{ channel }}' as channel,
            {{ loop.index }} as channel_order
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

channel_contacts as (
    select
        contacts.customer_id,
        campaigns.channel_id as channel,
        count(*) as contacts,
        count(case when contacts.has_responded then 1 end) as responses
    from contacts
    inner join campaigns on contacts.campaign_id = campaigns.campaign_id
    inner join channels on campaigns.channel_id = channels.channel
    group by contacts.customer_id, campaigns.channel_id
),

channel_averages as (
    select
        channel,
        cast(sum(responses) as double) / sum(contacts) as average_response_rate
    from channel_contacts
    group by channel
),

scored as (
    select
        channel_contacts.customer_id,
        channel_contacts.channel,
        channel_contacts.contacts,
        channel_contacts.responses,
        (channel_contacts.responses + {{ prior_contacts }} * channel_averages.average_response_rate)
        / (channel_contacts.contacts + {{ prior_contacts }})
        / nullif(channel_averages.average_response_rate, 0) as response_index,
        channel_contacts.contacts >= {{ min_contacts }} as has_enough_contacts,
        channels.channel_order
    from channel_contacts
    inner join channel_averages on channel_contacts.channel = channel_averages.channel
    inner join channels on channel_contacts.channel = channels.channel
),

ranked as (
    select
        customer_id,
        channel,
        row_number() over (
            partition by customer_id
            order by
                response_index desc,
                responses desc,
                channel_order asc
        ) as preference_rank
    from scored
    where has_enough_contacts and responses > 0
),

pivoted as (
    select
        customer_id,
        {%- for channel in channels %}
            sum(case when channel = '{{ channel }}' then contacts else 0 end) as contacts_{{ channel }},
            sum(case when channel = '{{ channel }}' then responses else 0 end) as responses_{{ channel }},
            max(case when channel = '{{ channel }}' then response_index end) as response_index_{{ channel }},
        {%- endfor %}
        count(case when has_enough_contacts then 1 end) as channels_compared
    from scored
    group by customer_id
),

evidence as (
    select
        customers.customer_id,
        preferred.channel as preferred_channel,
        {%- for channel in channels %}
            cast(coalesce(pivoted.contacts_{{ channel }}, 0) as {{ dbt.type_bigint() }}) as contacts_{{ channel }},
            cast(coalesce(pivoted.responses_{{ channel }}, 0) as {{ dbt.type_bigint() }}) as responses_{{ channel }},
            cast(pivoted.responses_{{ channel }} as double) / nullif(pivoted.contacts_{{ channel }}, 0)
                as response_rate_{{ channel }},
            pivoted.response_index_{{ channel }},
        {%- endfor %}
        coalesce(pivoted.channels_compared, 0) > 0 as has_enough_evidence,
        cast(coalesce(pivoted.channels_compared, 0) as {{ dbt.type_int() }}) as channels_compared,
        case
            when pivoted.customer_id is null then 'never contacted'
            when pivoted.channels_compared = 0 then 'too little evidence'
            when preferred.channel is null then 'no response'
            else 'preferred'
        end as evidence_status
    from customers
    left join pivoted on customers.customer_id = pivoted.customer_id
    left join ranked as preferred
        on
            customers.customer_id = preferred.customer_id
            and preferred.preference_rank = 1
),

final as (
    select
        *,
        case evidence_status
            when 'never contacted' then 'Never contacted by a campaign.'
            else concat(
                case
                    when evidence_status = 'too little evidence'
                        then 'Too little evidence: fewer than {{ min_contacts }} contacts on every channel.'
                    when evidence_status = 'no response'
                        then 'No response on a channel with {{ min_contacts }} or more contacts.'
                    when channels_compared = 1
                        then concat(
                            'Responds to ', preferred_channel,
                            '; no other channel has {{ min_contacts }} contacts to compare it with.'
                        )
                    else concat('Responds best to ', preferred_channel, '.')
                end,
                ' Responses to contacts:',
                {%- for channel in channels %}
                    ' {{ channel }} ', cast(responses_{{ channel }} as {{ dbt.type_string() }}), ' of ',
                    cast(contacts_{{ channel }} as {{ dbt.type_string() }}), '{{ "," if not loop.last else "." }}'
                    {{- "," if not loop.last }}
                {%- endfor %}
            )
        end as evidence_note
    from evidence
)

select * from final
