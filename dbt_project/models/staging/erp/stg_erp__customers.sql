with source as (
    select * from {{ source('erp', 'customers') }}
),

country_spellings as (
    select * from {{ ref('stg_reference__country_spellings') }}
),

customer_keys as (
    select * from {{ ref('stg_erp__customer_keys') }}
),

renamed as (
    select
        -- the customer the key stands for: keys of one person (person_no) are one customer
        coalesce(customer_keys.erp_customer_id, {{ clean_key('source.customer_no') }}) as erp_customer_id,
        {{ clean_key('source.customer_no') }} as customer_key,
        source.first_name,
        source.last_name,
        lower(trim(source.email)) as email,
        source.phone,
        source.street,
        source.postcode,
        source.city,
        -- an ISO alpha-2 or alpha-3 code or a name, in any case and with or without accents; unreadable is ZZ
        coalesce(country_spellings.country_code, 'ZZ') as country_code,
        source.created_on as created_date,
        upper(nullif(trim(source.currency_code), '')) as currency_code,
        source._file as source_file,
        source._row_number as source_row_number
    from source
    left join country_spellings on {{ text_key('source.country_code') }} = country_spellings.spelling_key
    left join customer_keys on {{ clean_key('source.customer_no') }} = customer_keys.customer_key
)

select * from renamed
