with source as (
    select * from {{ source('crm', 'contacts') }}
),

countries as (
    select * from {{ ref('countries') }}
),

-- The CRM stores the country as typed (a name in any language, or a code): read it against every known spelling.
country_spellings as (
    select
        country_code,
        unnest(string_split(aliases, '|')) as spelling
    from countries
),

renamed as (
    select
        source.contact_id,
        source.erp_customer_no as erp_customer_id,
        source.first_name,
        source.last_name,
        lower(trim(source.email)) as email,
        source.mobile_phone,
        source.office_phone,
        source.postcode,
        source.city,
        source.country as country_name,
        country_spellings.country_code,
        source.lead_source,
        source.created_at,
        source.modified_at
    from source
    left join country_spellings on lower(trim(source.country)) = country_spellings.spelling
)

select * from renamed
