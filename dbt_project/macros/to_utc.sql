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

{#- A UTC time a day before the cutoff's midnight: a time earlier than it is before the cutoff in every timezone
    (offsets run from -12 to +14 hours). -#}
{% macro day_before_cutoff() -%}
    cast({{ dbt.dateadd('day', -1, as_of_date()) }} as timestamp)
{%- endmacro %}

{#- Whether a UTC timestamp's business-timezone date is before the cutoff, with the timezone conversion only for
    the times within a day of it: converting every row took a quarter of a model's time at a million customers.
    ``local`` is the local date when the model has it already. -#}
{% macro local_date_before_cutoff(column, local=none) -%}
    (
        {{ column }} < {{ day_before_cutoff() }}
        or (
            {{ column }} < cast({{ dbt.dateadd('day', 1, as_of_date()) }} as timestamp)
            and {{ local if local else local_date(column) }} < {{ as_of_date() }}
        )
    )
{%- endmacro %}
