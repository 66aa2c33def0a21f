{#- One row per person the warehouse knows as of the cutoff: every ERP customer kept by
    int_erp_customers_classified, those known only from their orders too (their customer_id is the ERP customer
    number), and every prospect (CRM contacts that match no ERP customer, grouped by identity resolution; their
    customer_id starts with 'L'). A prospect's attributes come from its most recently modified contact. A country
    that cannot be read is 'ZZ', the ISO 3166 code for an unknown country. -#}
with erp_customers as (
    select * from {{ ref('int_erp_customers_classified') }}
    where exclusion_reason_code is null
),

contacts as (
    select * from {{ ref('stg_crm__contacts') }}
),

identities as (
    select * from {{ ref('int_identity_records_resolved') }}
),

customers as (
    select
        erp_customer_id as customer_id,
        'customer' as customer_type,
        erp_customer_id,
        country_code,
        city,
        postcode,
        email,
        phone,
        currency_code as billing_currency_code,
        created_date,
        known_from = 'customers' as has_customer_record,
        source_file,
        source_row_number
    from erp_customers
),

prospect_contacts as (
    select
        identities.customer_id,
        contacts.*,
        min(contacts.created_at) over (partition by identities.customer_id) as first_created_at
    from contacts
    inner join identities
        on identities.source_system = 'crm' and contacts.contact_id = identities.source_record_id
    where identities.is_prospect
    qualify row_number() over (
        partition by identities.customer_id order by contacts.modified_at desc, contacts.contact_id asc
    ) = 1
),

prospects as (
    select
        customer_id,
        'prospect' as customer_type,
        cast(null as varchar) as erp_customer_id,
        country_code,
        city,
        postcode,
        email,
        coalesce(mobile_phone, office_phone) as phone,
        cast(null as varchar) as billing_currency_code,
        cast(first_created_at as date) as created_date,
        false as has_customer_record,
        cast(null as varchar) as source_file,
        cast(null as bigint) as source_row_number
    from prospect_contacts
),

people as (
    select * from customers
    union all
    select * from prospects
),

located as (
    select
        customer_id,
        customer_type,
        erp_customer_id,
        coalesce(country_code, 'ZZ') as country_code,
        coalesce(nullif(trim(city), ''), 'Unknown') as city,
        postcode,
        email,
        phone,
        billing_currency_code,
        created_date,
        has_customer_record,
        source_file,
        source_row_number
    from people
),

final as (
    select
        customer_id,
        customer_type,
        erp_customer_id,
        country_code,
        city,
        concat(country_code, '|', lower(strip_accents(city))) as geography_id,
        postcode,
        email,
        phone,
        billing_currency_code,
        created_date,
        has_customer_record,
        source_file,
        source_row_number
    from located
)

select * from final
