{#- Every row accounted for inside the warehouse: for each loaded table that feeds the marts, the rows loaded,
    the rows the marts hold (each mart row carries the file and row of its source record), the rows excluded
    with a reason (fct_row_exclusions), and what does not add up: rows in neither (lost) or in both. The door's
    own account (rows read = loaded + quarantined) is in meta.load_ledger. -#}
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

order_lines as (
    select * from {{ ref('fct_order_lines') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
),

returns as (
    select * from {{ ref('fct_returns') }}
),

customers as (
    select * from {{ ref('dim_customers') }}
),

products as (
    select * from {{ ref('dim_products') }}
),

campaigns as (
    select * from {{ ref('dim_campaigns') }}
),

campaign_contacts as (
    select * from {{ ref('fct_campaign_contacts') }}
),

support_cases as (
    select * from {{ ref('fct_support_cases') }}
),

interactions as (
    select * from {{ ref('fct_interactions') }}
),

contacts as (
    select * from {{ ref('stg_crm__contacts') }}
),

identities as (
    select * from {{ ref('int_identity_records_resolved') }}
),

exclusions as (
    select * from {{ ref('fct_row_exclusions') }}
),

-- The layout of a Jinja-generated union is not the layout of hand-written SQL:
-- noqa: disable=LT02
loaded as (
    {%- for source_name, table_name, _ in sources %}
    select
        '{{ source_name }}__{{ table_name }}' as source_table,
        _file as source_file,
        _row_number as source_row_number
    from loaded_{{ source_name }}__{{ table_name }}
        {%- if not loop.last %}
    union all
        {%- endif %}
    {%- endfor %}
),
-- noqa: enable=LT02

contacts_in_customers as (
    select
        contacts.source_file,
        contacts.source_row_number
    from contacts
    inner join identities
        on identities.source_system = 'crm' and contacts.contact_id = identities.source_record_id
    inner join customers on identities.customer_id = customers.customer_id
),

in_marts as (
    select
        'erp__orders' as source_table,
        source_file,
        source_row_number
    from orders
    union all
    select
        'erp__order_lines' as source_table,
        source_file,
        source_row_number
    from order_lines
    union all
    select
        'erp__returns' as source_table,
        source_file,
        source_row_number
    from returns
    union all
    select
        'erp__customers' as source_table,
        source_file,
        source_row_number
    from customers
    where has_customer_record
    union all
    select
        'erp__products' as source_table,
        source_file,
        source_row_number
    from products
    where has_product_record
    union all
    select
        'crm__contacts' as source_table,
        source_file,
        source_row_number
    from contacts_in_customers
    union all
    select
        'crm__cases' as source_table,
        source_file,
        source_row_number
    from support_cases
    union all
    select
        case interaction_type
            when 'call' then 'callcenter__calls'
            when 'send' then 'marketing__sends'
            when 'web_session' then 'web__sessions'
            else 'marketing__responses'
        end as source_table,
        source_file,
        source_row_number
    from interactions
    where interaction_type not in ('order', 'support_case')
    union all
    select
        'marketing__campaigns' as source_table,
        source_file,
        source_row_number
    from campaigns
    union all
    select
        'marketing__campaign_members' as source_table,
        source_file,
        source_row_number
    from campaign_contacts
),

held_rows as (
    select distinct
        source_table,
        source_file,
        source_row_number
    from in_marts
),

excluded_rows as (
    select distinct
        source_table,
        source_file,
        source_row_number
    from exclusions
),

fates as (
    select
        loaded.source_table,
        held_rows.source_table is not null as is_in_marts,
        excluded_rows.source_table is not null as is_excluded
    from loaded
    left join held_rows
        on
            loaded.source_table = held_rows.source_table
            and loaded.source_file = held_rows.source_file
            and loaded.source_row_number = held_rows.source_row_number
    left join excluded_rows
        on
            loaded.source_table = excluded_rows.source_table
            and loaded.source_file = excluded_rows.source_file
            and loaded.source_row_number = excluded_rows.source_row_number
),

-- noqa: disable=LT02
tables as (
    {%- for source_name, table_name, mart_name in sources %}
    select
        '{{ source_name }}__{{ table_name }}' as source_table,
        '{{ mart_name }}' as mart_name
        {%- if not loop.last %}
    union all
        {%- endif %}
    {%- endfor %}
),
-- noqa: enable=LT02

counted as (
    select
        tables.source_table,
        tables.mart_name,
        count(fates.source_table) as rows_loaded,
        sum(case when fates.is_in_marts then 1 else 0 end) as rows_in_marts,
        sum(case when fates.is_excluded then 1 else 0 end) as rows_excluded,
        sum(case when fates.is_in_marts and fates.is_excluded then 1 else 0 end) as rows_counted_twice,
        sum(case when not fates.is_in_marts and not fates.is_excluded then 1 else 0 end) as rows_unaccounted
    from tables
    left join fates on tables.source_table = fates.source_table
    group by tables.source_table, tables.mart_name
),

-- mart rows whose source row is not loaded (lineage lost on the way) would make the counts lie
orphans as (
    select
        held_rows.source_table,
        count(*) as mart_rows_without_source
    from held_rows
    left join loaded
        on
            held_rows.source_table = loaded.source_table
            and held_rows.source_file = loaded.source_file
            and held_rows.source_row_number = loaded.source_row_number
    where loaded.source_table is null
    group by held_rows.source_table
),

final as (
    select
        counted.source_table,
        counted.mart_name,
        counted.rows_loaded,
        coalesce(counted.rows_in_marts, 0) as rows_in_marts,
        coalesce(counted.rows_excluded, 0) as rows_excluded,
        coalesce(counted.rows_unaccounted, 0) as rows_unaccounted,
        coalesce(counted.rows_counted_twice, 0) as rows_counted_twice,
        coalesce(orphans.mart_rows_without_source, 0) as mart_rows_without_source,
        {{ as_of_date() }} as as_of_date
    from counted
    left join orphans on counted.source_table = orphans.source_table
)

select * from final
