{#- Every source record that can name a person as of the cutoff but a web session (int_identity_record_inputs),
    with its identity keys normalised: the known cross-system key (an ERP customer number), email, phone in E.164,
    name and postcode. National phones are read with the record's calling code and trunk prefix (its country's,
    else the default_country setting's); a caller number in national form is also read in every country in use
    (phone_candidates), for resolution to accept the one reading that matches exactly one customer.
    Built incrementally on the order facts' plan (macros/rebuild_plan.sql): when the plan says incremental, only
    the records int_identity_records_touched lists (new, gone, or with another fingerprint of their fields) are
    normalised again; each row keeps the fingerprint it was built from. -#}
{%- set touched = ref('int_identity_records_touched') %}
with records as (
    select * from {{ ref('int_identity_record_inputs') }}
    {%- if is_incremental() %}
        where source_key in (select source_key from {{ touched }})
    {%- endif %}
),

erp_records as (
    select
        source_system,
        source_table,
        source_record_id,
        known_erp_customer_id,
        {{ normalise_email('email') }} as email_key,
        {{ phone_e164('phone', 'calling_code', 'trunk_prefix') }} as phone_key,
        cast(null as varchar) as second_phone_key,
        {{ name_key('first_name', 'last_name') }} as name_key,
        {{ postcode_key('postcode') }} as postcode_key,
        cast(null as varchar[]) as phone_candidates,
        source_key,
        input_fingerprint
    from records
    where source_system = 'erp'
),

crm_records as (
    select
        source_system,
        source_table,
        source_record_id,
        known_erp_customer_id,
        {{ normalise_email('email') }} as email_key,
        {{ phone_e164('phone', 'calling_code', 'trunk_prefix') }} as phone_key,
        {{ phone_e164('second_phone', 'calling_code', 'trunk_prefix') }} as second_phone_key,
        {{ name_key('first_name', 'last_name') }} as name_key,
        {{ postcode_key('postcode') }} as postcode_key,
        cast(null as varchar[]) as phone_candidates,
        source_key,
        input_fingerprint
    from records
    where source_system = 'crm'
),

calls as (
    select * from records
    where source_system = 'callcenter'
),

-- A caller number in national form could be from any country: keep its reading in each country in use.
call_phone_candidates as (
    select
        calls.source_record_id,
        list_sort(list(distinct {{ phone_e164('calls.phone', 'countries.calling_code', 'countries.trunk_prefix') }}))
            as phone_candidates
    from calls
    cross join {{ ref('int_identity_countries_in_use') }} as countries
    where not (trim(calls.phone) like '+%' or regexp_replace(calls.phone, '[^0-9]', '', 'g') like '00%')
    group by calls.source_record_id
),

call_records as (
    select
        calls.source_system,
        calls.source_table,
        calls.source_record_id,
        calls.known_erp_customer_id,
        cast(null as varchar) as email_key,
        {{ phone_e164('calls.phone', 'calls.calling_code', 'calls.trunk_prefix') }} as phone_key,
        cast(null as varchar) as second_phone_key,
        cast(null as varchar) as name_key,
        cast(null as varchar) as postcode_key,
        call_phone_candidates.phone_candidates,
        calls.source_key,
        calls.input_fingerprint
    from calls
    left join call_phone_candidates on calls.source_record_id = call_phone_candidates.source_record_id
),

final as (
    select * from erp_records
    union all
    select * from crm_records
    union all
    select * from call_records
)

select * from final
