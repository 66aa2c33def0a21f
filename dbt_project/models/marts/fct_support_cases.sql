{#- One row per support case opened before the cutoff, as it stood at the cutoff: a case closed on or after the
    cutoff was still open then (assigned, with no closing time, resolution or satisfaction yet). -#}
with cases as (
    select * from {{ ref('stg_crm__cases') }}
    where cast(opened_at as date) < {{ as_of_date() }}
),

identities as (
    select * from {{ ref('int_identity_records_resolved') }}
),

as_of_cutoff as (
    select
        *,
        coalesce(cast(closed_at as date) < {{ as_of_date() }}, false) as is_closed_by_cutoff
    from cases
),

final as (
    select
        as_of_cutoff.case_id,
        as_of_cutoff.case_number,
        identities.customer_id,
        as_of_cutoff.contact_id,
        as_of_cutoff.product_id,
        as_of_cutoff.case_category,
        as_of_cutoff.priority,
        case
            when as_of_cutoff.case_status = 'closed' and not as_of_cutoff.is_closed_by_cutoff then 'assigned'
            else as_of_cutoff.case_status
        end as case_status,
        as_of_cutoff.opened_at,
        case when as_of_cutoff.is_closed_by_cutoff then as_of_cutoff.closed_at end as closed_at,
        cast(as_of_cutoff.opened_at as date) as opened_date,
        case
            when as_of_cutoff.is_closed_by_cutoff
                then {{ dbt.datediff('as_of_cutoff.opened_at', 'as_of_cutoff.closed_at', 'hour') }}
        end as resolution_hours,
        case when as_of_cutoff.is_closed_by_cutoff then as_of_cutoff.satisfaction_score end as satisfaction_score,
        not as_of_cutoff.is_closed_by_cutoff as is_open,
        coalesce(as_of_cutoff.is_closed_by_cutoff and as_of_cutoff.satisfaction_score <= 2, false)
            as is_bad_experience,
        as_of_cutoff.source_file,
        as_of_cutoff.source_row_number
    from as_of_cutoff
    left join identities
        on identities.source_system = 'crm' and as_of_cutoff.contact_id = identities.source_record_id
)

select * from final
