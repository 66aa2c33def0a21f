{#- Facts built incrementally: the order chain (int_orders_classified, int_order_lines_classified) rebuilds only the
    orders whose fate can have moved since its last build, when its last build is known and comparable, and in
    full otherwise. int_sales_rebuild_plan decides (one row: build_mode 'full' or 'incremental', and why),
    int_sales_touched_orders lists the orders to rebuild, int_sales_build_state records what a finished build
    saw (the files and runs of its raw rows, the exchange rates, the cutoff, the settings and the code). A model
    takes part with `meta: {rebuild_plan: sales}` and `materialized: incremental` (docs/architecture.md,
    "Incremental facts"). -#}

{#- dbt's own should_full_refresh, and for a model of a rebuild plan: in full unless its plan, built in this
    invocation, says incremental. dbt's incremental materialization then takes its full-refresh route (the same
    `create table as` as a table model) or appends the touched orders' rows after its pre-hook deleted theirs. -#}
{% macro should_full_refresh() %}
    {%- set full_refresh = config.get('full_refresh') -%}
    {%- if full_refresh is none -%}
        {%- set full_refresh = flags.FULL_REFRESH -%}
    {%- endif -%}
    {%- if not full_refresh and (config.get('meta') or {}).get('rebuild_plan') -%}
        {%- set full_refresh = not rebuild_plan_is_incremental() -%}
    {%- endif -%}
    {{ return(full_refresh) }}
{% endmacro %}

{#- A relation of the order chain beside the calling model (the chain's models share its schema), or none when it
    does not exist (yet); none while parsing. -#}
{% macro rebuild_plan_relation(name) -%}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(adapter.get_relation(database=this.database, schema=this.schema, identifier=name)) }}
{%- endmacro %}

{#- Whether the plan built in this very invocation says incremental (a plan left by another run never counts). -#}
{% macro rebuild_plan_is_incremental() -%}
    {%- set plan = rebuild_plan_relation('int_sales_rebuild_plan') -%}
    {%- if plan is none -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set found = run_query(
        "select count(*) from " ~ plan ~ " where build_mode = 'incremental' and invocation_id = "
        ~ crm_string(invocation_id, 'invocation_id')
    ) -%}
    {{ return(found.columns[0].values()[0] > 0) }}
{%- endmacro %}

{#- What a build of the chain depends on besides its rows, the cutoff and the exchange rates: the settings its
    models and macros read (a test checks the list against them) and the project's code (var project_checksum,
    which the pipeline passes; without it every build is full). A change rebuilds every order. -#}
{% macro rebuild_plan_settings() -%}
    {%- set settings = {
        'reporting_currency': var('reporting_currency'),
        'timezone': var('timezone'),
        'outlier_date_span_years': var('outlier_date_span_years', 100),
        'project_checksum': var('project_checksum', none),
    } -%}
    {{ return(settings | tojson) }}
{%- endmacro %}

{#- Every (raw table, file, run) the chain reads rows of: a build's record of what it saw. -#}
{% macro rebuild_plan_loads() -%}
    select distinct 'orders' as source_name, _file as source_file, _run_id as run_id
    from {{ source('erp', 'orders') }}
    union all
    select distinct 'order_lines' as source_name, _file as source_file, _run_id as run_id
    from {{ source('erp', 'order_lines') }}
{%- endmacro %}

{#- The pre-hooks of a model of the chain: the chain's record of its last build is forgotten first (a night that
    fails half-way leaves the next one a full build, never a partial record), then, when the model builds
    incrementally, the rows of the touched orders are deleted (its SQL selects them again). Both commit with the
    model's rows or not at all (dbt runs them in its transaction). -#}
{% macro rebuild_plan_forget_build() -%}
    {%- set state = rebuild_plan_relation('int_sales_build_state') -%}
    {%- if state is not none -%}
        delete from {{ state }} where kind = 'build'
    {%- endif -%}
{%- endmacro %}

{% macro rebuild_plan_delete_touched() -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where order_id in (select order_id from {{ ref('int_sales_touched_orders') }})
    {%- endif -%}
{%- endmacro %}
