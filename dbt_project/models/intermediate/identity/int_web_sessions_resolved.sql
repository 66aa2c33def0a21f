{#- Every web session before the cutoff with the customer it belongs to and the rule that matched it, by the two
    identity rules a session can meet (int_identity_records_resolved numbers them):
      1. the ERP customer number of its login, when it is a kept ERP customer's;
      6. else its visitor cookie, when the sessions where that visitor logged in name exactly one such customer.
    Anonymous sessions of a visitor who never logged in (or logged in as two customers) have no customer.
    A view: sessions are most of the identity records (13 of 16 million at a million customers) and only the
    interactions (fct_interactions) read them, so they are resolved there, in the one pass over the sessions,
    rather than written to a table of their own each night. The sessions within a day of the cutoff alone need
    the timezone conversion (local_date_before_cutoff). -#}
with sessions as (
    select * from {{ ref('stg_web__sessions') }}
    where {{ local_date_before_cutoff('started_at') }}
),

session_logins as (
    select
        visitor_id,
        erp_customer_id
    from {{ ref('stg_web__sessions') }}
    where erp_customer_id is not null and {{ local_date_before_cutoff('started_at') }}
),

erp_customers as (
    select erp_customer_id as customer_id
    from {{ ref('int_erp_customers_classified') }}
    where exclusion_reason_code is null
),

-- Rule 6 learns from logins only: the customer number a session carries, when it is an ERP customer's.
visitor_logins as (
    select
        session_logins.visitor_id,
        known.customer_id
    from session_logins
    inner join erp_customers as known on session_logins.erp_customer_id = known.customer_id
),

by_visitor as (
    select
        visitor_id,
        min(customer_id) as customer_id
    from visitor_logins
    group by visitor_id
    having min(customer_id) = max(customer_id)
),

final as (
    select
        sessions.session_id,
        sessions.visitor_id,
        sessions.erp_customer_id,
        sessions.started_at,
        sessions.ended_at,
        sessions.source_file,
        sessions.source_row_number,
        coalesce(known.customer_id, visitor.customer_id) as customer_id,
        case
            when known.customer_id is not null then 'erp customer number'
            when visitor.customer_id is not null then 'visitor cookie'
        end as matched_by
    from sessions
    left join erp_customers as known on sessions.erp_customer_id = known.customer_id
    left join by_visitor as visitor
        on sessions.visitor_id = visitor.visitor_id and known.customer_id is null
)

select * from final
