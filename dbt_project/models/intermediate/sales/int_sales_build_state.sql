{#- The record of the order chain's and the interactions' last finished build, which the next night's plan starts
    from (int_sales_rebuild_plan, int_sales_touched_orders, int_interactions_touched): a row of kind 'build' (its
    cutoff and its settings and code, as the plan saw them), a row of kind 'load' per raw table, file and run
    whose rows it read, a row of kind 'rate' per exchange rate it converted with, one of kind 'cost' per
    product's unit cost, and what the interactions' customers and campaigns came from: one of kind 'identity'
    per resolved record (ERP customer, CRM contact, call), 'customer_key' per ERP customer key and the customer
    it stands for, 'visitor' per visitor cookie of one customer, 'campaign' per kept campaign. Built after the
    identity records' keys (int_identity_records_normalised, whose rows keep their own fingerprints), the chain
    and the facts (fct_order_lines, fct_orders, fct_interactions); their pre-hooks delete the 'build' row
    first, so a night that fails between them leaves no record and the next night rebuilds in full. -#}
-- depends_on: {{ ref('int_identity_records_normalised') }}
-- depends_on: {{ ref('int_orders_classified') }}
-- depends_on: {{ ref('int_order_lines_classified') }}
-- depends_on: {{ ref('fct_order_lines') }}
-- depends_on: {{ ref('fct_orders') }}
-- depends_on: {{ ref('fct_interactions') }}
with plan as (
    select * from {{ ref('int_sales_rebuild_plan') }}
),

loads as (
    {{ rebuild_plan_loads() }}
),

rates as (
    select distinct
        currency_code,
        rate_month,
        eur_per_unit
    from {{ ref('stg_erp__exchange_rates') }}
),

costs as (
    {{ product_unit_costs(ref('stg_erp__products')) }}
),

-- what the interactions' customers and campaigns were read from (int_interactions_touched)
identities as (
    select
        source_system as record_system,
        source_record_id as record_id,
        customer_id
    from {{ ref('int_identity_records_resolved') }}
),

customer_keys as (
    select
        customer_key,
        erp_customer_id as customer_id
    from {{ ref('stg_erp__customer_keys') }}
),

visitors as (
    select
        visitor_id,
        customer_id
    from {{ ref('int_web_visitors_resolved') }}
),

campaigns as (
    select campaign_id from {{ ref('dim_campaigns') }}
),

{#- Every row has every column: a kind fills its own and leaves the others null, typed, except the rates' and the
    costs' values, which their own branch types, so that each is recorded exactly as read. -#}
{%- set text = 'cast(null as ' ~ dbt.type_string() ~ ')' %}
{%- set nulls = {
    'as_of': 'cast(null as date)', 'build_settings': text, 'source_name': text, 'source_file': text, 'run_id': text,
    'currency_code': text, 'rate_month': 'null', 'eur_per_unit': 'null', 'product_id': text, 'unit_cost': 'null',
    'record_system': text, 'record_id': text, 'customer_id': text, 'customer_key': text, 'visitor_id': text,
    'campaign_id': text,
} %}
{%- set kinds = [
    ('build', 'plan', ['as_of', 'build_settings']),
    ('load', 'loads', ['source_name', 'source_file', 'run_id']),
    ('rate', 'rates', ['currency_code', 'rate_month', 'eur_per_unit']),
    ('cost', 'costs', ['product_id', 'unit_cost']),
    ('identity', 'identities', ['record_system', 'record_id', 'customer_id']),
    ('customer_key', 'customer_keys', ['customer_key', 'customer_id']),
    ('visitor', 'visitors', ['visitor_id', 'customer_id']),
    ('campaign', 'campaigns', ['campaign_id']),
] %}

final as (
    {%- for kind, rows, filled in kinds %}
        {%- if not loop.first %}
            union all
        {%- endif %}
        select
            '{{ kind }}' as kind,
            {%- for column, empty in nulls.items() %}
                {{ column if column in filled else empty }} as {{ column }}{% if not loop.last %},{% endif %}
            {%- endfor %}
        from {{ rows }}
    {%- endfor %}
)

select * from final
