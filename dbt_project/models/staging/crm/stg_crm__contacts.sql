with source as (
    select * from {{ source('crm', 'contacts') }}
),

renamed as (
    select
        contact_id,
        erp_customer_no as erp_customer_id,
        first_name,
        last_name,
        lower(trim(email)) as email,
        mobile_phone,
        office_phone,
        postcode,
        city,
        country as country_name,
        lead_source,
        created_at,
        modified_at
    from source
)

select * from renamed
