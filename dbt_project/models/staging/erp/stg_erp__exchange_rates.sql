with source as (
    select * from {{ source('erp', 'exchange_rates') }}
),

renamed as (
    select
        upper(trim(currency_code)) as currency_code,
        rate_month,
        eur_per_unit,
        _file as source_file,
        _row_number as source_row_number
    from source
)

select * from renamed
