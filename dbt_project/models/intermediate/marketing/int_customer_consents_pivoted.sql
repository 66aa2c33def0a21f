{#- Consent per customer and channel as of the cutoff: each of the customer's CRM contacts has a latest state per
    channel recorded before the cutoff; the most recent of them wins. No record means no consent. -#}
with consents as (
    select * from {{ ref('stg_marketing__consents') }}
    where {{ local_date('updated_at') }} < {{ as_of_date() }}
),

identities as (
    select * from {{ ref('int_identity_records_resolved') }}
),

customer_consents as (
    select
        identities.customer_id,
        consents.channel,
        consents.has_consent,
        consents.updated_at
    from consents
    inner join identities
        on identities.source_system = 'crm' and consents.contact_id = identities.source_record_id
    where identities.customer_id is not null
    qualify row_number() over (
        partition by identities.customer_id, consents.channel order by consents.updated_at desc
    ) = 1
),

final as (
    select
        customer_id,
        coalesce(bool_or(has_consent) filter (where channel = 'email'), false) as has_email_consent,
        coalesce(bool_or(has_consent) filter (where channel = 'sms'), false) as has_sms_consent,
        coalesce(bool_or(has_consent) filter (where channel = 'phone'), false) as has_phone_consent,
        max(updated_at) as consent_updated_at
    from customer_consents
    group by customer_id
)

select * from final
