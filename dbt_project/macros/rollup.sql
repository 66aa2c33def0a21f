{#- How many rows start a period for their customer (olap_sales_rollup's distinct customers): the rows with no row
    before them (``previous_date`` null), or whose row before, dated by the ``previous_calendar`` join of dim_date,
    is in another period than the row's own ``calendar`` row; the period is given by the dim_date ``columns``
    that name it (year_number; year_number, calendar_quarter; ...), none meaning all time. -#}
{% macro rows_starting_period(previous_date, previous_calendar, columns) -%}
    sum(case
        when
            {{ previous_date }} is null
            {%- for column in columns %}
            or {{ previous_calendar }}.{{ column }} <> calendar.{{ column }}
            {%- endfor %}
            then 1
        else 0
    end)
{%- endmacro %}
