{#- Facts built incrementally: the identity records' keys (int_identity_records_normalised), the order chain
    (int_orders_classified, int_order_lines_classified), its facts (fct_order_lines, fct_orders) and the
    interactions (fct_interactions) rebuild only the records, orders and interactions whose inputs, fate or facts
    can have moved since their last build, when that build is known and comparable, and in full otherwise.
    int_sales_rebuild_plan decides (one row: build_mode 'full' or 'incremental', and why),
    int_identity_records_touched lists the records whose fields' fingerprint changed (row_fingerprint, below),
    int_sales_touched_orders the orders whose fate to rebuild, int_sales_touched_facts the orders whose facts to
    rebuild and their customers, int_interactions_touched the interactions to rebuild, int_sales_build_state records what a finished build saw (the files and runs of its
    raw rows, the exchange rates, the unit costs, the identities, customer keys, visitors and campaigns the
    interactions read, the cutoff, the settings and the code). A model takes part with
    `meta: {rebuild_plan: sales}`, `materialized: incremental` and the pre-hooks below (dbt_project.yml;
    docs/operations.md). -#}

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

{#- The relation of a model of this project (wherever its database and schema), or none when it does not exist
    (yet); none while parsing. -#}
{% macro rebuild_plan_relation(name) -%}
    {%- set node = graph.nodes.get('model.' ~ project_name ~ '.' ~ name) if execute else none -%}
    {%- if node is none -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias)) }}
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
        'default_country': var('default_country'),
        'project_checksum': var('project_checksum', none),
    } -%}
    {{ return(settings | tojson) }}
{%- endmacro %}

{#- Every (raw table, file, run) the chain and the interactions read rows of, or of the raw tables `names`: a
    build's record of what it saw. -#}
{% macro rebuild_plan_loads(names=none) -%}
    {%- set tables = [
        ('orders', source('erp', 'orders')),
        ('order_lines', source('erp', 'order_lines')),
        ('calls', source('callcenter', 'calls')),
        ('sends', source('marketing', 'sends')),
        ('responses', source('marketing', 'responses')),
        ('sessions', source('web', 'sessions')),
    ] -%}
    {%- for name, relation in tables if names is none or name in names %}
        {%- if not loop.first %}
            union all
        {%- endif %}
        select distinct '{{ name }}' as source_name, _file as source_file, _run_id as run_id
        from {{ relation }}
    {%- endfor %}
{%- endmacro %}

{#- Three CTEs (and the comma after them) for a model listing what changed since the last build (`state`, the
    record): `loads`, tonight's (raw table, file, run) of the raw tables `names`; `seen_loads`, the record's; and
    `file_changes`, the files whose rows are new since (of a (file, run) the record did not see) or gone (of one
    it saw that is not loaded now). A file's rows all come from one load, so a file either is new, is gone, or
    did not change. -#}
{% macro rebuild_plan_file_changes(state, names) -%}
    loads as (
        {{ rebuild_plan_loads(names) }}
    ),

    seen_loads as (
        select
            source_name,
            source_file,
            run_id
        from {{ state }}
        where kind = 'load' and source_name in ('{{ names | join("', '") }}')
    ),

    file_changes as (
        select
            source_name,
            source_file,
            'new' as change
        from (select * from loads except select * from seen_loads) as unseen
        union all
        select
            source_name,
            source_file,
            'gone' as change
        from (select * from seen_loads except select * from loads) as gone
    ),
{%- endmacro %}

{#- The pre-hooks of a model of the plan: the record of the last build is forgotten first, committed on its own
    (a night that fails half-way leaves the next one a full build, never a partial record; and a DuckDB
    transaction writes to one database file, the record's is the warehouse, the facts' the marts file), then,
    when the model builds incrementally, the rows of the touched keys are deleted (its SQL selects them again),
    committed with the model's new rows or not at all (dbt runs that hook in the model's transaction). -#}
{% macro rebuild_plan_forget_build() -%}
    {%- set state = rebuild_plan_relation('int_sales_build_state') -%}
    {%- if state is not none -%}
        delete from {{ state }} where kind = 'build'
    {%- endif -%}
{%- endmacro %}

{#- The model's meta names the column of its rows (`key`) and the model listing the touched values in a column of
    the same name (`touched`, which the model's SQL refers to) -#}
{% macro rebuild_plan_delete_touched() -%}
    {%- if is_incremental() -%}
        {%- set meta = config.get('meta') -%}
        delete from {{ this }} where {{ meta.key }} in (select {{ meta.key }} from {{ ref(meta.touched) }})
    {%- endif -%}
{%- endmacro %}

{#- Each product's unit cost, from its first row (by file and row) of `products` (stg_erp__products): what a
    line's cost of goods is reckoned with (int_order_lines_converted), and what a build of the facts records to
    notice a cost that changed. -#}
{% macro product_unit_costs(products) -%}
    select
        product_id,
        unit_cost
    from (
        select
            product_id,
            unit_cost,
            row_number() over (partition by product_id order by source_file, source_row_number) as copy_number
        from {{ products }}
    ) as numbered
    where copy_number = 1
{%- endmacro %}

{#- The rows of one relation that are not in the other, either way: what changed between the record of the last
    build and tonight's values of the same kind (exchange rates, unit costs). -#}
{% macro rebuild_plan_changed_rows(one, other) -%}
    select * from (select * from {{ one }} except select * from {{ other }}) as added
    union all
    select * from (select * from {{ other }} except select * from {{ one }}) as removed
{%- endmacro %}

{#- The filter of a chain model's order lines when it builds incrementally: every copy of the touched orders'
    lines, wherever the copy is (the copies of a line decide which one is kept). -#}
{% macro rebuild_plan_copies_of_touched_lines(touched) -%}
    where order_line_id in (
        select order_line_id from {{ ref('stg_erp__order_lines') }}
        where order_id in (select order_id from {{ touched }})
    )
{%- endmacro %}


{#- A touched list's rows on a full build: none, with the list's columns (text), read from the plan so that dbt
    builds the plan before the list. -#}
{% macro rebuild_plan_nothing_touched(plan, columns) -%}
    with final as (
        select
            {%- for column in columns %}
                cast(null as {{ dbt.type_string() }}) as {{ column }}{{ "," if not loop.last }}
            {%- endfor %}
        from {{ plan }}
        where 1 = 0
    )

    select * from final
{%- endmacro %}

{#- A fingerprint of a row's `columns` (names): equal for equal values, null and empty text told apart; what a
    model built on the plan keeps to know a row's inputs did not change (int_identity_record_inputs). DuckDB's
    64-bit hash of the values; elsewhere an md5 of each value with its length. -#}
{% macro row_fingerprint(columns) -%}
    {{ return(adapter.dispatch('row_fingerprint', 'analytical_crm')(columns)) }}
{%- endmacro %}

{% macro default__row_fingerprint(columns) -%}
    {%- set parts = [] -%}
    {%- for column in columns -%}
        {%- do parts.append(
            "coalesce(concat(cast(length(cast(" ~ column ~ " as " ~ dbt.type_string() ~ ")) as "
            ~ dbt.type_string() ~ "), ':', cast(" ~ column ~ " as " ~ dbt.type_string() ~ ")), '-')"
        ) -%}
    {%- endfor -%}
    {{ dbt.hash(dbt.concat(parts)) }}
{%- endmacro %}

{% macro duckdb__row_fingerprint(columns) -%}
    hash({{ columns | join(', ') }})
{%- endmacro %}
