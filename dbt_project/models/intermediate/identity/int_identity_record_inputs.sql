{#- Every source record that can name a person as of the cutoff but a web session, with the fields its identity
    keys are normalised from (int_identity_records_normalised) and a fingerprint of them (input_fingerprint): a
    record whose fingerprint is the one its normalised row was built from needs no normalising again
    (int_identity_records_touched). The fields are the record's as read and the calling code and trunk prefix
    its national phones are read with: the record's country's, else the default_country setting's; a call's
    caller number is read in the default country and, in national form, in every country in use
    (int_identity_countries_in_use), whose readings its fingerprint includes. Records dated on or after the
    cutoff (contacts created, calls) are not known yet; ERP customers are the kept ones of
    int_erp_customers_classified, with those known only from their orders. Web sessions carry only a login's
    customer number and a visitor cookie, and are most of the records (13 of 16 million at a million customers):
    int_web_sessions_resolved resolves them where they are read. -#}
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
    {{ default_country_dialling('countries') }}
),

-- every reading a caller number in national form gets, in one text: a call's fingerprint changes with them
phone_countries as (
    select
        {{ dbt.listagg(
            "concat(country_code, ':', calling_code, ':', coalesce(trunk_prefix, ''))", "','", "order by country_code"
        ) }} as readings
    from {{ ref('int_identity_countries_in_use') }}
),

erp_inputs as (
    select
        'erp' as source_system,
        erp_customers.known_from as source_table,
        erp_customers.erp_customer_id as source_record_id,
        erp_customers.erp_customer_id as known_erp_customer_id,
        erp_customers.email,
        erp_customers.phone,
        cast(null as {{ dbt.type_string() }}) as second_phone,
        erp_customers.first_name,
        erp_customers.last_name,
        erp_customers.postcode,
        coalesce(countries.calling_code, default_country.calling_code) as calling_code,
        coalesce(countries.trunk_prefix, default_country.trunk_prefix) as trunk_prefix,
        cast(null as {{ dbt.type_string() }}) as phone_readings
    from erp_customers
    cross join default_country
    left join countries on erp_customers.country_code = countries.country_code
),

crm_inputs as (
    select
        'crm' as source_system,
        'contacts' as source_table,
        contacts.contact_id as source_record_id,
        contacts.erp_customer_id as known_erp_customer_id,
        contacts.email,
        contacts.mobile_phone as phone,
        contacts.office_phone as second_phone,
        contacts.first_name,
        contacts.last_name,
        contacts.postcode,
        coalesce(countries.calling_code, default_country.calling_code) as calling_code,
        coalesce(countries.trunk_prefix, default_country.trunk_prefix) as trunk_prefix,
        cast(null as {{ dbt.type_string() }}) as phone_readings
    from contacts
    cross join default_country
    left join countries on contacts.country_code = countries.country_code
),

call_inputs as (
    select
        'callcenter' as source_system,
        'calls' as source_table,
        calls.call_id as source_record_id,
        cast(null as {{ dbt.type_string() }}) as known_erp_customer_id,
        cast(null as {{ dbt.type_string() }}) as email,
        calls.caller_number as phone,
        cast(null as {{ dbt.type_string() }}) as second_phone,
        cast(null as {{ dbt.type_string() }}) as first_name,
        cast(null as {{ dbt.type_string() }}) as last_name,
        cast(null as {{ dbt.type_string() }}) as postcode,
        default_country.calling_code,
        default_country.trunk_prefix,
        phone_countries.readings as phone_readings
    from calls
    cross join default_country
    cross join phone_countries
),

inputs as (
    select * from erp_inputs
    union all
    select * from crm_inputs
    union all
    select * from call_inputs
),

final as (
    select
        *,
        concat(source_system, ':', source_record_id) as source_key,
        {{ row_fingerprint([
            'source_table', 'known_erp_customer_id', 'email', 'phone', 'second_phone', 'first_name', 'last_name',
            'postcode', 'calling_code', 'trunk_prefix', 'phone_readings',
        ]) }} as input_fingerprint
    from inputs
)

select * from final
