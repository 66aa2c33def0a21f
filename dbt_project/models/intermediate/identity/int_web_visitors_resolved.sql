{#- Identity rule 6's map: each visitor cookie whose logins before the cutoff name exactly one kept ERP customer,
    with that customer (a login whose customer number no kept ERP customer has teaches nothing; a visitor who
    logged in as two customers is nobody's). int_web_sessions_resolved gives it to the visitor's anonymous
    sessions; the interactions built incrementally compare it with the one of their last build (a visitor whose
    customer changed has every session touched: int_interactions_touched). -#}
with session_logins as (
    select
        visitor_id,
        erp_customer_id
    from {{ ref('stg_web__sessions') }}
    -- the sessions with a login, chosen before the customer keys' join (4.8 of 13.1 million at a million customers)
    where login_key is not null and {{ local_date_before_cutoff('started_at') }}
),

erp_customers as (
    select erp_customer_id as customer_id
    from {{ ref('int_erp_customers_classified') }}
    where exclusion_reason_code is null
),

visitor_logins as (
    select
        session_logins.visitor_id,
        known.customer_id
    from session_logins
    inner join erp_customers as known on session_logins.erp_customer_id = known.customer_id
),

final as (
    select
        visitor_id,
        min(customer_id) as customer_id
    from visitor_logins
    where visitor_id is not null
    group by visitor_id
    having min(customer_id) = max(customer_id)
)

select * from final
