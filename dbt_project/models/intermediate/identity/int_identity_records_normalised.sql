{#- Every source record that can name a person as of the cutoff but a web session, with its identity keys
    normalised: the known cross-system key (an ERP customer number), email, phone in E.164, name and postcode.
    National phone numbers are read in the record's country, else the default_country setting. Records dated on
    or after the cutoff (contacts created, calls) are not known yet; ERP customers are the kept ones of
    int_erp_customers_classified, with those known only from their orders. Web sessions carry only a login's
    customer number and a visitor cookie, and are most of the records (13 of 16 million at a million customers):
    int_web_sessions_resolved resolves them where they are read, rather than copying them here and again into
    int_identity_records_resolved (two tables of 13 million rows written each night to no other use). -#}
with erp_customers as (
    select * from {{ ref('int_erp_customers_classified') }}
    where exclusion_reason_code is null
),

contacts as (
    select * from {{ ref('stg_crm__contacts') }}
    where cast(created_at as date) < {{ as_of_date() }}
),

calls as (
    select * from {{ ref('stg_callcenter__calls') }}
    where {{ local_date('started_at') }} < {{ as_of_date() }}
),

countries as (
    select * from {{ ref('countries') }}
),

default_country as (
    select
        calling_code,
        trunk_prefix
    from countries
    where country_code = {{ crm_code(var("default_country"), 'default_country', 2) }}
),

-- Each record's country as far as it is known, else the default country: how its national phones read.
erp_customers_located as (
    select
        erp_customers.*,
        coalesce(countries.calling_code, default_country.calling_code) as calling_code,
        coalesce(countries.trunk_prefix, default_country.trunk_prefix) as trunk_prefix
    from erp_customers
    cross join default_country
    left join countries on erp_customers.country_code = countries.country_code
),

contacts_located as (
    select
        contacts.*,
        coalesce(countries.calling_code, default_country.calling_code) as calling_code,
        coalesce(countries.trunk_prefix, default_country.trunk_prefix) as trunk_prefix
    from contacts
    cross join default_country
    left join countries on contacts.country_code = countries.country_code
),

erp_records as (
    select
        'erp' as source_system,
        known_from as source_table,
        erp_customer_id as source_record_id,
        erp_customer_id as known_erp_customer_id,
        {{ normalise_email('email') }} as email_key,
        {{ phone_e164('phone', 'calling_code', 'trunk_prefix') }} as phone_key,
        cast(null as varchar) as second_phone_key,
        {{ name_key('first_name', 'last_name') }} as name_key,
        {{ postcode_key('postcode') }} as postcode_key,
        cast(null as varchar[]) as phone_candidates
    from erp_customers_located
),

crm_records as (
    select
        'crm' as source_system,
        'contacts' as source_table,
        contact_id as source_record_id,
        erp_customer_id as known_erp_customer_id,
        {{ normalise_email('email') }} as email_key,
        {{ phone_e164('mobile_phone', 'calling_code', 'trunk_prefix') }} as phone_key,
        {{ phone_e164('office_phone', 'calling_code', 'trunk_prefix') }} as second_phone_key,
        {{ name_key('first_name', 'last_name') }} as name_key,
        {{ postcode_key('postcode') }} as postcode_key,
        cast(null as varchar[]) as phone_candidates
    from contacts_located
),

-- The countries the customers and contacts live in: where a national caller number may come from.
countries_in_use as (
    select countries.*
    from countries
    where countries.country_code in (
        select erp_customers.country_code from erp_customers
        union
        select contacts.country_code from contacts
    )
),

-- A caller number in national form could be from any country: keep its reading in each country in use, and let
-- resolution accept the one reading that matches exactly one customer.
call_phone_candidates as (
    select
        calls.call_id,
        list(distinct {{ phone_e164('calls.caller_number', 'countries.calling_code', 'countries.trunk_prefix') }})
            as phone_candidates
    from calls
    cross join countries_in_use as countries
    where not (trim(calls.caller_number) like '+%' or regexp_replace(calls.caller_number, '[^0-9]', '', 'g') like '00%')
    group by calls.call_id
),

call_records as (
    select
        'callcenter' as source_system,
        'calls' as source_table,
        calls.call_id as source_record_id,
        cast(null as varchar) as known_erp_customer_id,
        cast(null as varchar) as email_key,
        {{ phone_e164('calls.caller_number', 'default_country.calling_code', 'default_country.trunk_prefix') }}
            as phone_key,
        cast(null as varchar) as second_phone_key,
        cast(null as varchar) as name_key,
        cast(null as varchar) as postcode_key,
        call_phone_candidates.phone_candidates
    from calls
    cross join default_country
    left join call_phone_candidates on calls.call_id = call_phone_candidates.call_id
),

final as (
    select * from erp_records
    union all
    select * from crm_records
    union all
    select * from call_records
)

select * from final
