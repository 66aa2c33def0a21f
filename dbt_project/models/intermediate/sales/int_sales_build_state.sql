{#- The record of the order chain's last finished build, which the next night's plan starts from
    (int_sales_rebuild_plan, int_sales_touched_orders): a row of kind 'build' (its cutoff and its settings and
    code, as the plan saw them), a row of kind 'load' per raw table, file and run whose rows it read, and a row
    of kind 'rate' per exchange rate it converted with, one of kind 'cost' per product's unit cost. Built after
    the chain and the facts (fct_order_lines, fct_orders); their pre-hooks delete the 'build' row first, so a
    night that fails between them leaves no record and the next night rebuilds in full. -#}
-- depends_on: {{ ref('int_orders_classified') }}
-- depends_on: {{ ref('int_order_lines_classified') }}
-- depends_on: {{ ref('fct_order_lines') }}
-- depends_on: {{ ref('fct_orders') }}
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

final as (
    select
        'build' as kind,
        as_of,
        build_settings,
        cast(null as {{ dbt.type_string() }}) as source_name,
        cast(null as {{ dbt.type_string() }}) as source_file,
        cast(null as {{ dbt.type_string() }}) as run_id,
        cast(null as {{ dbt.type_string() }}) as currency_code,
        -- typed by the rates' and the costs' branches, so that each is recorded exactly as read
        null as rate_month,
        null as eur_per_unit,
        cast(null as {{ dbt.type_string() }}) as product_id,
        null as unit_cost
    from plan
    union all
    select
        'load' as kind,
        cast(null as date) as as_of,
        cast(null as {{ dbt.type_string() }}) as build_settings,
        source_name,
        source_file,
        run_id,
        cast(null as {{ dbt.type_string() }}) as currency_code,
        null as rate_month,
        null as eur_per_unit,
        cast(null as {{ dbt.type_string() }}) as product_id,
        null as unit_cost
    from loads
    union all
    select
        'rate' as kind,
        cast(null as date) as as_of,
        cast(null as {{ dbt.type_string() }}) as build_settings,
        cast(null as {{ dbt.type_string() }}) as source_name,
        cast(null as {{ dbt.type_string() }}) as source_file,
        cast(null as {{ dbt.type_string() }}) as run_id,
        currency_code,
        rate_month,
        eur_per_unit,
        cast(null as {{ dbt.type_string() }}) as product_id,
        null as unit_cost
    from rates
    union all
    select
        'cost' as kind,
        cast(null as date) as as_of,
        cast(null as {{ dbt.type_string() }}) as build_settings,
        cast(null as {{ dbt.type_string() }}) as source_name,
        cast(null as {{ dbt.type_string() }}) as source_file,
        cast(null as {{ dbt.type_string() }}) as run_id,
        cast(null as {{ dbt.type_string() }}) as currency_code,
        null as rate_month,
        null as eur_per_unit,
        product_id,
        unit_cost
    from costs
)

select * from final
