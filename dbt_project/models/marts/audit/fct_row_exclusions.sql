{#- Every loaded row that the warehouse leaves out of its marts, one row each, with its source table, file and row
    number, its key, and why: a reason code and the reason in plain words. What the door refused is in
    meta.quarantine; what got in and was left out on the way is here, so that every row is accounted for
    (mart_source_reconciliation). Rows dated on or after the cutoff are here too: they count from the run whose
    cutoff follows them. -#}
with orders as (
    select * from {{ ref('int_orders_classified') }}
),

order_lines as (
    select * from {{ ref('int_order_lines_classified') }}
),

returns as (
    select * from {{ ref('int_returns_matched') }}
),

customers as (
    select * from {{ ref('int_erp_customers_classified') }}
),

products as (
    select * from {{ ref('int_products_classified') }}
),

campaigns as (
    select * from {{ ref('int_campaigns_classified') }}
),

campaign_members as (
    select * from {{ ref('int_campaign_members_classified') }}
),

contacts as (
    select * from {{ ref('stg_crm__contacts') }}
),

cases as (
    select * from {{ ref('stg_crm__cases') }}
),

calls as (
    select * from {{ ref('stg_callcenter__calls') }}
),

sends as (
    select * from {{ ref('stg_marketing__sends') }}
),

responses as (
    select * from {{ ref('stg_marketing__responses') }}
),

sessions as (
    select * from {{ ref('stg_web__sessions') }}
),

classified as (
    select
        'erp__orders' as source_table,
        source_file,
        source_row_number,
        order_id as source_key,
        exclusion_reason_code,
        exclusion_reason
    from orders
    where exclusion_reason_code is not null
    union all
    select
        'erp__order_lines' as source_table,
        source_file,
        source_row_number,
        order_line_id as source_key,
        exclusion_reason_code,
        exclusion_reason
    from order_lines
    where exclusion_reason_code is not null
    union all
    select
        'erp__returns' as source_table,
        source_file,
        source_row_number,
        return_id as source_key,
        exclusion_reason_code,
        exclusion_reason
    from returns
    where exclusion_reason_code is not null
    union all
    select
        'erp__customers' as source_table,
        source_file,
        source_row_number,
        erp_customer_id as source_key,
        exclusion_reason_code,
        exclusion_reason
    from customers
    where exclusion_reason_code is not null
    union all
    select
        'erp__products' as source_table,
        source_file,
        source_row_number,
        product_id as source_key,
        exclusion_reason_code,
        exclusion_reason
    from products
    where exclusion_reason_code is not null
    union all
    select
        'marketing__campaigns' as source_table,
        source_file,
        source_row_number,
        campaign_id as source_key,
        exclusion_reason_code,
        exclusion_reason
    from campaigns
    where exclusion_reason_code is not null
    union all
    select
        'marketing__campaign_members' as source_table,
        source_file,
        source_row_number,
        campaign_member_id as source_key,
        exclusion_reason_code,
        exclusion_reason
    from campaign_members
    where exclusion_reason_code is not null
),

-- Touchpoints are left out only when dated on or after the cutoff (or, for a response, when its send is missing).
-- A UTC time is within a day of its local time (offsets run from -12 to +14 hours): only the touches from a day
-- before the cutoff on need their local date, a timezone conversion that took half of the model's time when done
-- for each of the 25 million calls, sends, responses and sessions of a million customers.
dated as (
    select
        'crm__contacts' as source_table,
        source_file,
        source_row_number,
        contact_id as source_key,
        cast(created_at as date) as event_date,
        'created' as event_verb
    from contacts
    union all
    select
        'crm__cases' as source_table,
        source_file,
        source_row_number,
        case_id as source_key,
        cast(opened_at as date) as event_date,
        'opened' as event_verb
    from cases
    union all
    select
        'callcenter__calls' as source_table,
        source_file,
        source_row_number,
        call_id as source_key,
        {{ local_date('started_at') }} as event_date,
        'called' as event_verb
    from calls
    where started_at >= {{ day_before_cutoff() }}
    union all
    select
        'marketing__sends' as source_table,
        source_file,
        source_row_number,
        cast(send_id as {{ dbt.type_string() }}) as source_key,
        {{ local_date('sent_at') }} as event_date,
        'sent' as event_verb
    from sends
    where sent_at >= {{ day_before_cutoff() }}
    union all
    select
        'marketing__responses' as source_table,
        source_file,
        source_row_number,
        cast(response_id as {{ dbt.type_string() }}) as source_key,
        {{ local_date('responded_at') }} as event_date,
        'responded' as event_verb
    from responses
    where responded_at >= {{ day_before_cutoff() }}
    union all
    select
        'web__sessions' as source_table,
        source_file,
        source_row_number,
        session_id as source_key,
        {{ local_date('started_at') }} as event_date,
        'visited' as event_verb
    from sessions
    where started_at >= {{ day_before_cutoff() }}
),

after_cutoff as (
    select
        source_table,
        source_file,
        source_row_number,
        source_key,
        'after_as_of' as exclusion_reason_code,
        concat(
            event_verb, ' on ', cast(event_date as {{ dbt.type_string() }}),
            ', on or after the as-of date ', cast({{ as_of_date() }} as {{ dbt.type_string() }})
        ) as exclusion_reason
    from dated
    where event_date >= {{ as_of_date() }}
),

responses_without_send as (
    select
        'marketing__responses' as source_table,
        responses.source_file,
        responses.source_row_number,
        cast(responses.response_id as {{ dbt.type_string() }}) as source_key,
        'send_missing' as exclusion_reason_code,
        concat(
            'the send it responds to, ', cast(responses.send_id as {{ dbt.type_string() }}),
            ', is not among the loaded sends'
        ) as exclusion_reason
    from responses
    where
        {{ local_date('responses.responded_at') }} < {{ as_of_date() }}
        and responses.send_id not in (select sends.send_id from sends)
),

unioned as (
    select * from classified
    union all
    select * from after_cutoff
    union all
    select * from responses_without_send
),

final as (
    select
        concat(source_table, ':', source_file, ':', cast(source_row_number as {{ dbt.type_string() }}))
            as row_exclusion_id,
        source_table,
        source_file,
        source_row_number,
        source_key,
        exclusion_reason_code,
        exclusion_reason,
        {{ as_of_date() }} as as_of_date
    from unioned
)

select * from final
