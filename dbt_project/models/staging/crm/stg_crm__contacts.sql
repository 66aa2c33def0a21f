with source as (
    select * from {{ source('crm', 'contacts') }}
),

country_spellings as (
    select * from {{ ref('stg_reference__country_spellings') }}
),

customer_keys as (
    select * from {{ ref('stg_erp__customer_keys') }}
),

renamed as (
    select
        source.contact_id,
        coalesce(customer_keys.erp_customer_id, {{ clean_key('source.erp_customer_no') }}) as erp_customer_id,
        source.first_name,
        source.last_name,
        lower(trim(source.email)) as email,
        source.mobile_phone,
        source.office_phone,
        source.postcode,
        source.city,
        source.country as country_name,
        -- the CRM stores the country as typed: a code or a name in any language, read against every spelling
        country_spellings.country_code,
        source.lead_source,
        source.created_at,
        source.modified_at,
        source._file as source_file,
        source._row_number as source_row_number
    from source
    left join country_spellings on {{ text_key('source.country') }} = country_spellings.spelling_key
    left join customer_keys on {{ clean_key('source.erp_customer_no') }} = customer_keys.customer_key
)

select * from renamed
