{#- The interactions (fct_interactions) whose row can have moved since their last build (int_sales_build_state),
    one interaction_id each, when tonight's plan (int_sales_rebuild_plan) is incremental; none when it is full.
    An interaction is a function of its source record, the record's resolved customer, the cutoff and, for a
    send or a response, the send's campaign among the kept campaigns; a response's channel, campaign and customer
    are its send's. So an interaction is touched when:
    - it is an order whose facts were rebuilt (int_sales_touched_facts);
    - a row of its call, send, response or session came in a file (or a version of a file) the last build did
      not see, or went with a file it saw; every copy of its key is rebuilt with it;
    - it happened on or after the day before the earlier of the two cutoffs (it can enter or leave the facts; a
      call does so with its identity record, below);
    - its call's or its send's contact's resolved customer changed (the identities of the last build, recorded);
    - its session's login names a customer key or ERP customer whose customer changed, appeared or went, or its
      visitor's customer (int_web_visitors_resolved) did;
    - its send's campaign entered or left the kept campaigns (dim_campaigns);
    - it is a response to a touched send;
    - it is a support case whose row (fct_support_cases, rebuilt whole each night) differs from its row in the
      facts, either way (the cases are few: compared whole). -#}
{%- set state = rebuild_plan_relation('int_sales_build_state') %}
{%- set built = rebuild_plan_relation('fct_interactions') %}
{#- read only when the plan is incremental: named here so that dbt knows them while parsing -#}
{%- set read = {
    'orders': ref('int_sales_touched_facts'),
    'calls': ref('stg_callcenter__calls'),
    'sends': ref('stg_marketing__sends'),
    'responses': ref('stg_marketing__responses'),
    'sessions': ref('stg_web__sessions'),
    'cases': ref('fct_support_cases'),
    'identities': ref('int_identity_records_resolved'),
    'customer_keys': ref('stg_erp__customer_keys'),
    'visitors': ref('int_web_visitors_resolved'),
    'campaigns': ref('dim_campaigns'),
    'plan': ref('int_sales_rebuild_plan'),
} %}
{%- set incremental = rebuild_plan_is_incremental() %}
{%- set sources = ['calls', 'sends', 'responses', 'sessions'] %}

{% if incremental %}
    with state as (
        select * from {{ state }}
    ),

    built as (
        select
            interaction_id,
            interaction_type,
            source_record_id,
            source_file
        from {{ built }}
    ),

    -- the first moment whose touches the cutoff's move can bring in or take out (local_date_before_cutoff), from
    -- the plan (the record's 'build' row is gone by now: the order chain's pre-hooks forgot it)
    moved_from as (
        select
            cast({{ dbt.dateadd('day', -1, 'least(last_as_of, as_of)') }} as timestamp) as occurred_at
        from {{ read.plan }}
    ),

    {{ rebuild_plan_file_changes(state, sources) }}

    identities as (
        select
            source_system as record_system,
            source_record_id as record_id,
            customer_id
        from {{ read.identities }}
    ),

    seen_identities as (
        select
            record_system,
            record_id,
            customer_id
        from state
        where kind = 'identity'
    ),

    changed_records as (
        select distinct
            record_system,
            record_id
        from ({{ rebuild_plan_changed_rows('identities', 'seen_identities') }}) as changed
    ),

    customer_keys as (
        select
            customer_key,
            erp_customer_id as customer_id
        from {{ read.customer_keys }}
    ),

    seen_customer_keys as (
        select
            customer_key,
            customer_id
        from state
        where kind = 'customer_key'
    ),

    changed_keys as (
        {{ rebuild_plan_changed_rows('customer_keys', 'seen_customer_keys') }}
    ),

    -- the customer numbers a session's login can carry whose customer can have changed: a key whose customer
    -- changed (a login carries the key itself when no customer has it), the customers it stood and stands for,
    -- and the ERP customers that appeared or went
    changed_logins as (
        select customer_key as erp_customer_id from changed_keys
        union
        select customer_id from changed_keys
        union
        select record_id from changed_records
        where record_system = 'erp'
    ),

    visitors as (
        select
            visitor_id,
            customer_id
        from {{ read.visitors }}
    ),

    seen_visitors as (
        select
            visitor_id,
            customer_id
        from state
        where kind = 'visitor'
    ),

    changed_visitors as (
        select distinct visitor_id
        from ({{ rebuild_plan_changed_rows('visitors', 'seen_visitors') }}) as changed
    ),

    campaigns as (
        select campaign_id from {{ read.campaigns }}
    ),

    seen_campaigns as (
        select campaign_id from state
        where kind = 'campaign'
    ),

    changed_campaigns as (
        {{ rebuild_plan_changed_rows('campaigns', 'seen_campaigns') }}
    ),

    -- the interactions of the rows in files that went, as the facts hold them
    gone as (
        select
            built.interaction_id,
            built.interaction_type,
            built.source_record_id
        from built
        inner join file_changes
            on
                built.source_file = file_changes.source_file
                and file_changes.change = 'gone'
                and case file_changes.source_name
                    when 'calls' then built.interaction_type = 'call'
                    when 'sends' then built.interaction_type = 'send'
                    when 'sessions' then built.interaction_type = 'web_session'
                    else built.interaction_id like 'response:%'
                end
    ),

    new_files as (
        select
            source_name,
            source_file
        from file_changes
        where change = 'new'
    ),

    -- a call entering or leaving the facts with the cutoff enters or leaves the identities as well (the same
    -- local date before the cutoff), so the identities' changes cover the cutoff's move for calls
    touched_calls as (
        select concat('call:', call_id) as interaction_id
        from {{ read.calls }}
        where
            source_file in (select source_file from new_files where source_name = 'calls')
            or call_id in (select record_id from changed_records where record_system = 'callcenter')
    ),

    touched_sends as (
        select send_id
        from {{ read.sends }}
        where
            source_file in (select source_file from new_files where source_name = 'sends')
            or sent_at >= (select occurred_at from moved_from)
            or contact_id in (select record_id from changed_records where record_system = 'crm')
            or campaign_id in (select campaign_id from changed_campaigns)
    ),

    -- a response's send is touched when its row is, or when it went with its file
    touched_send_ids as (
        select cast(send_id as {{ dbt.type_string() }}) as send_id from touched_sends
        union
        select source_record_id from gone
        where interaction_type = 'send'
    ),

    touched_responses as (
        select concat('response:', response_id) as interaction_id
        from {{ read.responses }}
        where
            source_file in (select source_file from new_files where source_name = 'responses')
            or responded_at >= (select occurred_at from moved_from)
            or cast(send_id as {{ dbt.type_string() }}) in (select send_id from touched_send_ids)
    ),

    touched_sessions as (
        select concat('web_session:', session_id) as interaction_id
        from {{ read.sessions }}
        where
            source_file in (select source_file from new_files where source_name = 'sessions')
            or started_at >= (select occurred_at from moved_from)
            or visitor_id in (select visitor_id from changed_visitors)
            or erp_customer_id in (select erp_customer_id from changed_logins)
    ),

    -- the cases as fct_interactions reads them, against the facts' rows of them
    cases as (
        select
            concat('support_case:', case_id) as interaction_id,
            customer_id,
            {{ to_utc('opened_at') }} as occurred_at,
            opened_date as occurred_date,
            source_file,
            source_row_number
        from {{ read.cases }}
    ),

    cases_now as (
        select * from cases
        where {{ local_date_before_cutoff('occurred_at', 'occurred_date') }}
    ),

    cases_built as (
        select
            interaction_id,
            customer_id,
            occurred_at,
            occurred_date,
            source_file,
            source_row_number
        from {{ built }}
        where interaction_type = 'support_case'
    ),

    touched_cases as (
        select distinct interaction_id
        from ({{ rebuild_plan_changed_rows('cases_now', 'cases_built') }}) as changed
    ),

    touched as (
        select concat('order:', order_id) as interaction_id from {{ read.orders }}
        union
        select interaction_id from gone
        union
        select interaction_id from touched_calls
        union
        select concat('send:', send_id) from touched_sends
        union
        select interaction_id from touched_responses
        union
        select interaction_id from touched_sessions
        union
        select interaction_id from touched_cases
    ),

    final as (
        select interaction_id from touched
        where interaction_id is not null
    )

    select * from final
{% else %}
    {#- a full build: nothing to list -#}
    {{ rebuild_plan_nothing_touched(read.plan, ['interaction_id']) }}
{% endif %}
