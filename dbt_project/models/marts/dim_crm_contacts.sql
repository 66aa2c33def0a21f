{#- One row per CRM contact known at the cutoff, with the customer (or prospect) identity resolution gives it and the
    contact's own consent per channel: its latest state recorded before the cutoff (no record means none). A campaign
    list names its members by contact_id (the marketing contracts), so a campaign planner (pipelines/campaigns) needs
    each customer's contacts and which of them consented; the customer's own consent (dim_customers) is the latest
    state of any of its contacts. No name, email or phone here: those stay in the contacts file. -#}
with identities as (
    select * from {{ ref('int_identity_records_resolved') }}
    where source_system = 'crm' and customer_id is not null
),

consents as (
    select * from {{ ref('stg_marketing__consents') }}
    where {{ local_date('updated_at') }} < {{ as_of_date() }}
),

latest_consents as (
    select
        contact_id,
        channel,
        has_consent,
        updated_at
    from consents
    -- on a tie the withdrawal wins: a contact who said yes and no at the same moment has not consented
    qualify row_number() over (partition by contact_id, channel order by updated_at desc, has_consent asc) = 1
),

final as (
    select
        identities.source_record_id as contact_id,
        identities.customer_id,
        identities.is_prospect,
        coalesce(bool_or(latest_consents.has_consent) filter (where latest_consents.channel = 'email'), false)
            as has_email_consent,
        coalesce(bool_or(latest_consents.has_consent) filter (where latest_consents.channel = 'sms'), false)
            as has_sms_consent,
        coalesce(bool_or(latest_consents.has_consent) filter (where latest_consents.channel = 'phone'), false)
            as has_phone_consent,
        max(latest_consents.updated_at) filter (where latest_consents.channel = 'email') as email_consent_updated_at,
        max(latest_consents.updated_at) filter (where latest_consents.channel = 'sms') as sms_consent_updated_at,
        max(latest_consents.updated_at) filter (where latest_consents.channel = 'phone') as phone_consent_updated_at
    from identities
    left join latest_consents on identities.source_record_id = latest_consents.contact_id
    group by identities.source_record_id, identities.customer_id, identities.is_prospect
)

select * from final
