{#- Every row accounted for inside the warehouse: for each loaded table that feeds the marts, the rows loaded,
    the rows the marts hold (each mart row carries the file and row of its source record), the rows excluded
    with a reason (fct_row_exclusions), and what does not add up: rows in neither (lost) or in both. The door's
    own account (rows read = loaded + quarantined) is in meta.load_ledger.

    How it counts, and why so: the rows must be matched one by one (counts per file can add up while the
    lineage is wrong, e.g. a mart row pointing one row off: one lost, one orphan). Joining tens of millions of
    loaded rows to as many mart rows, twice (orphans are the other way round), spilled gigabytes. Instead, one
    source table at a time, reconcile_rows (macros/reconcile_rows.sql) matches the loaded, held and excluded rows
    by file and row number: on DuckDB as bitmaps of row numbers per file and block of rows, elsewhere by grouping
    the three stacked. Each mart is read in its own CTE, once: an engine may materialise a CTE read several times
    (DuckDB does), and these are large. -#}
{%- set sources = [
    ('erp', 'orders', 'fct_orders'), ('erp', 'order_lines', 'fct_order_lines'), ('erp', 'returns', 'fct_returns'),
    ('erp', 'customers', 'dim_customers'), ('erp', 'products', 'dim_products'), ('crm', 'contacts', 'dim_customers'),
    ('crm', 'cases', 'fct_support_cases'), ('callcenter', 'calls', 'fct_interactions'),
    ('marketing', 'campaigns', 'dim_campaigns'), ('marketing', 'campaign_members', 'fct_campaign_contacts'),
    ('marketing', 'sends', 'fct_interactions'), ('marketing', 'responses', 'fct_interactions'),
    ('web', 'sessions', 'fct_interactions'),
] %}

with loaded_erp__orders as (
    select * from {{ source('erp', 'orders') }}
),

loaded_erp__order_lines as (
    select * from {{ source('erp', 'order_lines') }}
),

loaded_erp__returns as (
    select * from {{ source('erp', 'returns') }}
),

loaded_erp__customers as (
    select * from {{ source('erp', 'customers') }}
),

loaded_erp__products as (
    select * from {{ source('erp', 'products') }}
),

loaded_crm__contacts as (
    select * from {{ source('crm', 'contacts') }}
),

loaded_crm__cases as (
    select * from {{ source('crm', 'cases') }}
),

loaded_callcenter__calls as (
    select * from {{ source('callcenter', 'calls') }}
),

loaded_marketing__campaigns as (
    select * from {{ source('marketing', 'campaigns') }}
),

loaded_marketing__campaign_members as (
    select * from {{ source('marketing', 'campaign_members') }}
),

loaded_marketing__sends as (
    select * from {{ source('marketing', 'sends') }}
),

loaded_marketing__responses as (
    select * from {{ source('marketing', 'responses') }}
),

loaded_web__sessions as (
    select * from {{ source('web', 'sessions') }}
),

held_erp__orders as (
    select * from {{ ref('fct_orders') }}
),

held_erp__order_lines as (
    select * from {{ ref('fct_order_lines') }}
),

held_erp__returns as (
    select * from {{ ref('fct_returns') }}
),

held_erp__customers as (
    select * from {{ ref('dim_customers') }}
    where has_customer_record
),

held_erp__products as (
    select * from {{ ref('dim_products') }}
    where has_product_record
),

held_crm__cases as (
    select * from {{ ref('fct_support_cases') }}
),

held_callcenter__calls as (
    select * from {{ ref('fct_interactions') }}
    where interaction_type = 'call'
),

held_marketing__campaigns as (
    select * from {{ ref('dim_campaigns') }}
),

held_marketing__campaign_members as (
    select * from {{ ref('fct_campaign_contacts') }}
),

held_marketing__sends as (
    select * from {{ ref('fct_interactions') }}
    where interaction_type = 'send'
),

-- every interaction that is not an order, a case, a call, a send or a web session is a campaign response
held_marketing__responses as (
    select * from {{ ref('fct_interactions') }}
    where interaction_type not in ('order', 'support_case', 'call', 'send', 'web_session')
),

held_web__sessions as (
    select * from {{ ref('fct_interactions') }}
    where interaction_type = 'web_session'
),

contacts as (
    select * from {{ ref('stg_crm__contacts') }}
),

identities as (
    select * from {{ ref('int_identity_records_resolved') }}
),

customers as (
    select * from {{ ref('dim_customers') }}
),

exclusions as (
    select * from {{ ref('fct_row_exclusions') }}
),

-- a contact is held when its identity resolved to a customer of the mart
held_crm__contacts as (
    select
        contacts.source_file,
        contacts.source_row_number
    from contacts
    inner join identities
        on identities.source_system = 'crm' and contacts.contact_id = identities.source_record_id
    inner join customers on identities.customer_id = customers.customer_id
),

-- The layout of Jinja-generated CTEs is not the layout of hand-written SQL:
-- noqa: disable=LT02
{%- for source_name, table_name, _ in sources %}
{%- set source_table = source_name ~ '__' ~ table_name %}

excluded_{{ source_table }} as (
    select
        source_file,
        source_row_number
    from exclusions
    where source_table = '{{ source_table }}'
),

counted_{{ source_table }} as (
    {{ reconcile_rows('loaded_' ~ source_table, 'held_' ~ source_table, 'excluded_' ~ source_table) }}
),
{%- endfor %}

counted as (
    {%- for source_name, table_name, mart_name in sources %}
    {%- set source_table = source_name ~ '__' ~ table_name %}
    select
        '{{ source_table }}' as source_table,
        '{{ mart_name }}' as mart_name,
        *
    from counted_{{ source_table }}
        {%- if not loop.last %}
    union all
        {%- endif %}
    {%- endfor %}
),
-- noqa: enable=LT02

final as (
    select
        source_table,
        mart_name,
        coalesce(cast(rows_loaded as {{ dbt.type_bigint() }}), 0) as rows_loaded,
        coalesce(rows_in_marts, 0) as rows_in_marts,
        coalesce(rows_excluded, 0) as rows_excluded,
        coalesce(rows_unaccounted, 0) as rows_unaccounted,
        coalesce(rows_counted_twice, 0) as rows_counted_twice,
        mart_rows_without_source,
        {{ as_of_date() }} as as_of_date
    from counted
)

select * from final
