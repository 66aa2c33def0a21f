with source as (
    select * from {{ source('erp', 'exchange_rates') }}
),

renamed as (
    select
        upper(currency_code) as currency_code,
        rate_month,
        eur_per_unit
    from source
)

select * from renamed
