with cases as (
    select * from {{ ref('stg_crm__cases') }}
),

identities as (
    select * from {{ ref('int_identity_records_resolved') }}
),

final as (
    select
        cases.case_id,
        cases.case_number,
        identities.customer_id,
        cases.contact_id,
        cases.product_id,
        cases.case_category,
        cases.priority,
        cases.case_status,
        cases.opened_at,
        cases.closed_at,
        cast(cases.opened_at as date) as opened_date,
        {{ dbt.datediff('cases.opened_at', 'cases.closed_at', 'hour') }} as resolution_hours,  -- noqa: LT05
        cases.satisfaction_score,
        cases.closed_at is null as is_open,
        coalesce(cases.satisfaction_score <= 2, false) as is_bad_experience
    from cases
    left join identities
        on identities.source_system = 'crm' and cases.contact_id = identities.source_record_id
    where cast(cases.opened_at as date) < cast('{{ var("as_of") }}' as date)
)

select * from final
