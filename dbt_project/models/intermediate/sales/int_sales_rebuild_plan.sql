{#- Tonight's plan for the identity records' keys (int_identity_records_normalised), the order chain
    (int_orders_classified, int_order_lines_classified), its facts (fct_order_lines, fct_orders) and the
    interactions (fct_interactions), one row: build_mode 'incremental' when their last build finished and saw the
    same settings and code (its record in int_sales_build_state), so that only the records, orders and
    interactions whose inputs, fate or facts can have moved are rebuilt (int_identity_records_touched,
    int_sales_touched_orders, int_sales_touched_facts, int_interactions_touched); 'full' otherwise, with the reason
    in words (which speaks of the orders, the most of what is rebuilt). The models read the plan of their own
    invocation only (invocation_id). -#}
{%- set state = rebuild_plan_relation('int_sales_build_state') %}
{%- set built = [
    rebuild_plan_relation('int_identity_records_normalised'),
    rebuild_plan_relation('int_orders_classified'),
    rebuild_plan_relation('int_order_lines_classified'),
    rebuild_plan_relation('fct_order_lines'),
    rebuild_plan_relation('fct_orders'),
    rebuild_plan_relation('fct_interactions'),
] %}
{%- set settings = crm_string(rebuild_plan_settings(), 'rebuild_plan_settings') %}
{#- a record of another layout (an older version's) is no record -#}
{%- set state_columns = adapter.get_columns_in_relation(state) | map(attribute='name') | list if state else [] %}

with
{% if var('project_checksum', none) is none %}
    plan as (
        select
            'full' as build_mode,
            'the run passed no project_checksum (an ad-hoc dbt run): every order is rebuilt' as reason,
            cast(null as date) as last_as_of
    ),
{% elif 'kind' not in state_columns or 'build_settings' not in state_columns or none in built %}
    plan as (
        select
            'full' as build_mode,
            'no earlier build of the order facts to start from: every order is built' as reason,
            cast(null as date) as last_as_of
    ),
{% else %}
    last_build as (
        select
            as_of,
            build_settings
        from {{ state }}
        where kind = 'build'
    ),

    plan as (
        select
            case
                when (select count(*) from last_build) = 0 then 'full'
                when (select max(build_settings) from last_build) != {{ settings }} then 'full'
                else 'incremental'
            end as build_mode,
            case
                when (select count(*) from last_build) = 0
                    then 'the last build of the order facts did not finish: every order is rebuilt'
                when (select max(build_settings) from last_build) != {{ settings }}
                    then concat(
                        'a setting the order facts or the interactions depend on (currency, timezone, ',
                        'outlier_date_span_years, default_country) or the code changed since their last build: ',
                        'every order is rebuilt'
                    )
                else 'only the orders whose rows, cutoff, exchange rates or customer changed are rebuilt'
            end as reason,
            (select max(as_of) from last_build) as last_as_of
    ),
{% endif %}

final as (
    select
        build_mode,
        reason,
        {{ as_of_date() }} as as_of,
        last_as_of,
        {{ settings }} as build_settings,
        {{ crm_string(invocation_id, 'invocation_id') }} as invocation_id
    from plan
)

select * from final
