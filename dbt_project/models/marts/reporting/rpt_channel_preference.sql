{#- How far channel preference is known: customers by evidence status (and, for those with a preferred channel, by
    the channel), as counts and as shares of all customers and of the customers a campaign contacted. All six rows
    are listed, an empty one with zero customers. -#}
with preferences as (
    select * from {{ ref('customer_channel_preference') }}
),

outcomes as (
    select
        'preferred' as evidence_status,
        'email' as preferred_channel,
        1 as sort_order
    union all
    select
        'preferred' as evidence_status,
        'sms' as preferred_channel,
        2 as sort_order
    union all
    select
        'preferred' as evidence_status,
        'phone' as preferred_channel,
        3 as sort_order
    union all
    select
        'no response' as evidence_status,
        cast(null as {{ dbt.type_string() }}) as preferred_channel,
        4 as sort_order
    union all
    select
        'too little evidence' as evidence_status,
        cast(null as {{ dbt.type_string() }}) as preferred_channel,
        5 as sort_order
    union all
    select
        'never contacted' as evidence_status,
        cast(null as {{ dbt.type_string() }}) as preferred_channel,
        6 as sort_order
),

counted as (
    select
        evidence_status,
        preferred_channel,
        count(*) as customers
    from preferences
    group by evidence_status, preferred_channel
),

totals as (
    select
        count(*) as customers,
        count(case when evidence_status <> 'never contacted' then 1 end) as contacted_customers
    from preferences
),

final as (
    select
        outcomes.evidence_status,
        outcomes.preferred_channel,
        outcomes.sort_order,
        cast(coalesce(counted.customers, 0) as {{ dbt.type_bigint() }}) as customers,
        cast(coalesce(counted.customers, 0) as double) / nullif(totals.customers, 0) as share_of_customers,
        case
            when outcomes.evidence_status <> 'never contacted'
                then cast(coalesce(counted.customers, 0) as double) / nullif(totals.contacted_customers, 0)
        end as share_of_contacted_customers
    from outcomes
    cross join totals
    left join counted
        on
            outcomes.evidence_status = counted.evidence_status
            and coalesce(outcomes.preferred_channel, '-') = coalesce(counted.preferred_channel, '-')
)

select * from final
