{#- The contact details of every person dim_customers knows who has any (a name, an email or a phone), kept out of
    the general snapshot: the contacts schema is published to a file of its own, which only the roles that see
    contact details open (pipelines/users.py, pipelines/publish/contacts.py). The keys are the identity
    resolution's (macros/identity.sql), national phones read in the person's country, else the default_country
    setting, so that what a user types in a search, normalised by pipelines/identity_keys.py, finds them. The
    details are int_customer_profiles' (a prospect's from its most recently modified contact), the names those of
    the same records. -#}
with profiles as (
    select * from {{ ref('int_customer_profiles') }}
),

erp_customers as (
    select * from {{ ref('int_erp_customers_classified') }}
    where exclusion_reason_code is null
),

contacts as (
    select * from {{ ref('stg_crm__contacts') }}
),

identities as (
    select * from {{ ref('int_identity_records_resolved') }}
),

countries as (
    select * from {{ ref('countries') }}
),

default_country as (
    {{ default_country_dialling('countries') }}
),

-- the contact int_customer_profiles takes a prospect's details from
prospect_names as (
    select
        identities.customer_id,
        contacts.first_name,
        contacts.last_name
    from contacts
    inner join identities
        on identities.source_system = 'crm' and contacts.contact_id = identities.source_record_id
    where identities.is_prospect
    qualify row_number() over (
        partition by identities.customer_id order by contacts.modified_at desc, contacts.contact_id asc
    ) = 1
),

names as (
    select
        erp_customer_id as customer_id,
        first_name,
        last_name
    from erp_customers
    union all
    select
        customer_id,
        first_name,
        last_name
    from prospect_names
),

people as (
    select
        profiles.customer_id,
        nullif(trim(concat_ws(' ', trim(names.first_name), trim(names.last_name))), '') as full_name,
        nullif(trim(profiles.email), '') as email,
        nullif(trim(profiles.phone), '') as phone,
        -- trimmed, so that the key of the full name a user reads is the key stored
        trim(names.first_name) as first_name,
        trim(names.last_name) as last_name,
        coalesce(countries.calling_code, default_country.calling_code) as calling_code,
        coalesce(countries.trunk_prefix, default_country.trunk_prefix) as trunk_prefix
    from profiles
    cross join default_country
    left join names on profiles.customer_id = names.customer_id
    left join countries on profiles.country_code = countries.country_code
),

final as (
    select
        customer_id,
        full_name,
        email,
        phone,
        {{ normalise_email('email') }} as email_key,
        {{ phone_e164('phone', 'calling_code', 'trunk_prefix') }} as phone_key,
        {{ name_key('first_name', 'last_name') }} as name_key
    from people
    where coalesce(full_name, email, phone) is not null
)

select * from final
