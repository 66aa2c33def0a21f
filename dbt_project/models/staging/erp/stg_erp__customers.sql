with source as (
    select * from {{ source('erp', 'customers') }}
),

renamed as (
    select
        customer_no as erp_customer_id,
        first_name,
        last_name,
        lower(trim(email)) as email,
        phone,
        street,
        postcode,
        city,
        upper(country_code) as country_code,
        created_on as created_date,
        upper(currency_code) as currency_code
    from source
)

select * from renamed
