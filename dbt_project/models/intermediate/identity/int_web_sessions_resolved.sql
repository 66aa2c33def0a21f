{#- Every web session before the cutoff with the customer it belongs to and the rule that matched it, by the two
    identity rules a session can meet (macro resolve_web_sessions):
      1. the ERP customer number of its login, when it is a kept ERP customer's;
      6. else its visitor cookie, when the sessions where that visitor logged in name exactly one such customer
         (int_web_visitors_resolved).
    Anonymous sessions of a visitor who never logged in (or logged in as two customers) have no customer.
    A view, the identity map of the sessions for analysts and tests: sessions are most of the identity records
    (13 of 16 million at a million customers), and the interactions (fct_interactions) resolve the ones they
    build with the same macro, in the one pass over them, rather than a table of them being written each night.
    The sessions within a day of the cutoff alone need the timezone conversion (local_date_before_cutoff). -#}
with sessions as (
    select * from {{ ref('stg_web__sessions') }}
    where {{ local_date_before_cutoff('started_at') }}
),

final as (
    {{ resolve_web_sessions('sessions') }}
)

select * from final
