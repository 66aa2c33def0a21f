{#- One row per day (column date_day) from first_date to last_date, SQL expressions of a relation `bounds`
    that the caller defines, so the range can come from the data rather than from literals. -#}
{% macro calendar_days(first_date, last_date) -%}
    {{ return(adapter.dispatch('calendar_days', 'analytical_crm')(first_date, last_date)) }}
{%- endmacro %}

{% macro default__calendar_days(first_date, last_date) -%}
    {#- a fixed series of 2^17 days (358 years) where the engine has no series function of its own; a wider range
        fails dim_date's coverage test rather than silently losing days -#}
    select cast({{ dbt.dateadd('day', 'numbers.generated_number - 1', first_date) }} as date) as date_day
    from ({{ dbt.generate_series(131072) }}) as numbers
    cross join bounds
    where {{ dbt.dateadd('day', 'numbers.generated_number - 1', first_date) }} <= {{ last_date }}
{%- endmacro %}

{% macro duckdb__calendar_days(first_date, last_date) -%}
    select cast(unnest(generate_series({{ first_date }}, {{ last_date }}, interval 1 day)) as date) as date_day
    from bounds
{%- endmacro %}
