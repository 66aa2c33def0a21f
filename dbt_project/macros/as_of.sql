{#- The run's cutoff (var as_of) as a date: everything dated on or after it is the future for this run. -#}
{% macro as_of_date() -%}
    cast('{{ var("as_of") }}' as date)
{%- endmacro %}

{#- Sum of a column that may be unknown (null): the sum when every value is known, else null, so that an
    unknown cost never reads as a cost of zero (sum() alone would skip the nulls and understate it). -#}
{% macro sum_if_all_known(column) -%}
    case when count({{ column }}) = count(*) then sum({{ column }}) end
{%- endmacro %}

{#- The reporting currency (var reporting_currency, the `currency` setting) as an upper-case ISO 4217 literal. -#}
{% macro reporting_currency() -%}
    '{{ var("reporting_currency") | trim | upper }}'
{%- endmacro %}
