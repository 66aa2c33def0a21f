{#- The run's cutoff (var as_of) as a date: everything dated on or after it is the future for this run. -#}
{% macro as_of_date() -%}
    {{ crm_date(var("as_of"), 'as_of') }}
{%- endmacro %}

{#- The earliest plausible date of an event (var outlier_date_span_years, the setting of the same name, before the
    cutoff): an order dated earlier (a 1900 or 0001 placeholder, a typing error) is excluded as implausible_date
    rather than stretching the calendar over centuries. `as_of` is another cutoff's SQL (a column), the run's by
    default. -#}
{% macro plausible_first_date(as_of=none) -%}
    cast({{ dbt.dateadd(
        'year',
        '-' ~ crm_number(var('outlier_date_span_years', 100), 'outlier_date_span_years'),
        as_of if as_of is not none else as_of_date()
    ) }} as date)
{%- endmacro %}

{#- Sum of a column that may be unknown (null): the sum when every value is known, else null, so that an
    unknown cost never reads as a cost of zero (sum() alone would skip the nulls and understate it). -#}
{% macro sum_if_all_known(column) -%}
    case when count({{ column }}) = count(*) then sum({{ column }}) end
{%- endmacro %}

{#- The reporting currency (var reporting_currency, the `currency` setting) as an upper-case ISO 4217 literal. -#}
{% macro reporting_currency() -%}
    {{ crm_code(var("reporting_currency"), 'reporting_currency', 3) }}
{%- endmacro %}
