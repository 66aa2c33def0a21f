{#- The countries the kept ERP customers and the CRM contacts known at the cutoff live in, with their calling codes
    and trunk prefixes: where a caller number in national form may come from (int_identity_records_normalised
    reads it in each of them). -#}
with erp_customers as (
    select country_code from {{ ref('int_erp_customers_classified') }}
    where exclusion_reason_code is null
),

contacts as (
    select country_code from {{ ref('stg_crm__contacts') }}
    where cast(created_at as date) < {{ as_of_date() }}
),

countries as (
    select * from {{ ref('countries') }}
),

final as (
    select
        countries.country_code,
        countries.calling_code,
        countries.trunk_prefix
    from countries
    where countries.country_code in (
        select erp_customers.country_code from erp_customers
        union
        select contacts.country_code from contacts
    )
)

select * from final
