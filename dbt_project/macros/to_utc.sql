{#- A local wall-clock timestamp (as the ERP and the phone system write them, in the business timezone)
    as UTC wall-clock time. -#}
{% macro to_utc(column) -%}
    {{ return(adapter.dispatch('to_utc', 'analytical_crm')(column)) }}
{%- endmacro %}

{% macro default__to_utc(column) -%}
    convert_timezone({{ crm_string(var("timezone"), 'timezone') }}, 'UTC', {{ column }})
{%- endmacro %}

{% macro duckdb__to_utc(column) -%}
    timezone('UTC', timezone({{ crm_string(var("timezone"), 'timezone') }}, {{ column }}))
{%- endmacro %}

{#- The business-timezone calendar date of a UTC wall-clock timestamp: the day a touchpoint counts for. -#}
{% macro local_date(column) -%}
    {{ return(adapter.dispatch('local_date', 'analytical_crm')(column)) }}
{%- endmacro %}

{% macro default__local_date(column) -%}
    cast(convert_timezone('UTC', {{ crm_string(var("timezone"), 'timezone') }}, {{ column }}) as date)
{%- endmacro %}

{% macro duckdb__local_date(column) -%}
    cast(timezone({{ crm_string(var("timezone"), 'timezone') }}, timezone('UTC', {{ column }})) as date)
{%- endmacro %}
