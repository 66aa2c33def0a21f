{#- Each source record but a web session resolved to a customer by deterministic rules in priority order:
      1. the ERP customer number the record carries (a known cross-system key);
      2. its email, 3. its phone, 4. its name and postcode, each only when it points to exactly one ERP customer;
      5. the email or phone of a record resolved by 1-4 (a call from the mobile number of a CRM contact that
         carries an ERP customer number), again only when unambiguous; a caller number in national form is read
         in every known country and matched when exactly one reading points to exactly one customer.
    ERP customers are the anchors: their customer_id is the ERP customer number, so it never changes when new
    data arrives. CRM contacts that match no customer are prospects (leads): contacts sharing an email or a phone
    are one prospect, whose id is 'L' followed by the first of its contact ids.
    A web session carries only the customer number of a login and the visitor cookie, so only rule 1 and rule 6
    (the visitor cookie of sessions where the same visitor logged in as one customer) can match it: sessions, 13
    of 16 million records at a million customers, are resolved where they are read (int_web_sessions_resolved). -#}
-- Each import reads the table with its own filter rather than through one CTE of all records: an engine may
-- materialise a CTE read several times (DuckDB does), and copying the 16 million records of a million customers
-- (sessions included, then) spilled 17 GB to disk.
with erp_records as (
    select * from {{ ref('int_identity_records_normalised') }}
    where source_system = 'erp'
),

records as (
    select * from {{ ref('int_identity_records_normalised') }}
),

erp_customers as (
    select
        source_record_id as customer_id,
        email_key,
        phone_key,
        name_key,
        postcode_key
    from erp_records
),

-- A key that points to exactly one customer: min = max says it as count(distinct) = 1 does, in one aggregation
-- instead of two.
by_email as (
    select
        email_key,
        min(customer_id) as customer_id
    from erp_customers
    where email_key is not null
    group by email_key
    having min(customer_id) = max(customer_id)
),

by_phone as (
    select
        phone_key,
        min(customer_id) as customer_id
    from erp_customers
    where phone_key is not null
    group by phone_key
    having min(customer_id) = max(customer_id)
),

by_name_postcode as (
    select
        name_key,
        postcode_key,
        min(customer_id) as customer_id
    from erp_customers
    where name_key is not null and postcode_key is not null
    group by name_key, postcode_key
    having min(customer_id) = max(customer_id)
),

first_pass as (
    select
        records.source_system,
        records.source_table,
        records.source_record_id,
        records.email_key,
        records.phone_key,
        records.second_phone_key,
        records.phone_candidates,
        case
            when known.customer_id is not null then known.customer_id
            when email.customer_id is not null then email.customer_id
            when phone.customer_id is not null then phone.customer_id
            when second_phone.customer_id is not null then second_phone.customer_id
            when name_postcode.customer_id is not null then name_postcode.customer_id
        end as customer_id,
        case
            when records.source_system = 'erp' then 'erp account'
            when known.customer_id is not null then 'erp customer number'
            when email.customer_id is not null then 'email'
            when phone.customer_id is not null or second_phone.customer_id is not null then 'phone'
            when name_postcode.customer_id is not null then 'name and postcode'
        end as matched_by
    from records
    left join erp_customers as known on records.known_erp_customer_id = known.customer_id
    left join by_email as email on records.email_key = email.email_key
    left join by_phone as phone on records.phone_key = phone.phone_key
    left join by_phone as second_phone on records.second_phone_key = second_phone.phone_key
    left join by_name_postcode as name_postcode
        on records.name_key = name_postcode.name_key and records.postcode_key = name_postcode.postcode_key
),

linked_identifiers as (
    select
        customer_id,
        unnest([email_key, phone_key, second_phone_key]) as identifier
    from first_pass
    where customer_id is not null
),

by_linked_identifier as (
    select
        identifier,
        min(customer_id) as customer_id
    from linked_identifiers
    where identifier is not null
    group by identifier
    having min(customer_id) = max(customer_id)
),

-- The readings of the caller numbers no earlier rule matched, one row each, unnested in the select list as the
-- identifiers above: a cross join with unnest expanded every record's readings before the filter (10 s at a
-- million customers).
phone_readings as (
    select
        source_system,
        source_record_id,
        unnest(phone_candidates) as phone
    from first_pass
    where customer_id is null
),

by_phone_candidate as (
    select
        phone_readings.source_system,
        phone_readings.source_record_id,
        min(by_linked_identifier.customer_id) as customer_id
    from phone_readings
    inner join by_linked_identifier on phone_readings.phone = by_linked_identifier.identifier
    group by phone_readings.source_system, phone_readings.source_record_id
    having min(by_linked_identifier.customer_id) = max(by_linked_identifier.customer_id)
),

second_pass as (
    select
        first_pass.source_system,
        first_pass.source_table,
        first_pass.source_record_id,
        first_pass.email_key,
        first_pass.phone_key,
        coalesce(
            first_pass.customer_id, linked_email.customer_id, linked_phone.customer_id,
            linked_second_phone.customer_id, phone_candidate.customer_id
        ) as customer_id,
        case
            when first_pass.customer_id is not null then first_pass.matched_by
            when linked_email.customer_id is not null then 'email of a linked record'
            when linked_phone.customer_id is not null or linked_second_phone.customer_id is not null
                then 'phone of a linked record'
            when phone_candidate.customer_id is not null then 'phone read in another country'
        end as matched_by
    from first_pass
    left join by_linked_identifier as linked_email on first_pass.email_key = linked_email.identifier
    left join by_linked_identifier as linked_phone on first_pass.phone_key = linked_phone.identifier
    left join by_linked_identifier as linked_second_phone
        on first_pass.second_phone_key = linked_second_phone.identifier
    left join by_phone_candidate as phone_candidate
        on
            first_pass.source_system = phone_candidate.source_system
            and first_pass.source_record_id = phone_candidate.source_record_id
),

unresolved_contacts as (
    select
        source_record_id,
        email_key,
        phone_key
    from second_pass
    where source_system = 'crm' and customer_id is null
),

leads as (
    select
        contacts.source_record_id,
        concat('L', least(
            contacts.source_record_id,
            min(same_email.source_record_id),
            min(same_phone.source_record_id)
        )) as lead_id
    from unresolved_contacts as contacts
    left join unresolved_contacts as same_email on contacts.email_key = same_email.email_key
    left join unresolved_contacts as same_phone on contacts.phone_key = same_phone.phone_key
    group by contacts.source_record_id
),

resolved as (
    select
        second_pass.source_system,
        second_pass.source_table,
        second_pass.source_record_id,
        concat(second_pass.source_system, ':', second_pass.source_record_id) as source_key,
        coalesce(second_pass.customer_id, leads.lead_id) as customer_id,
        coalesce(second_pass.matched_by, case when leads.lead_id is not null then 'prospect (no purchase)' end)
            as matched_by,
        leads.lead_id is not null as is_prospect
    from second_pass
    left join leads
        on second_pass.source_system = 'crm' and second_pass.source_record_id = leads.source_record_id
),

final as (
    select * from resolved
)

select * from final
