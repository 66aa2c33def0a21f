with source as (
    select * from {{ source('crm', 'cases') }}
),

renamed as (
    select
        case_id,
        case_number,
        contact_id,
        subject,
        lower(category) as case_category,
        sku as product_id,
        lower(priority) as priority,
        lower(status) as case_status,
        opened_at,
        closed_at,
        satisfaction_score,
        _file as source_file,
        _row_number as source_row_number
    from source
)

select * from renamed
