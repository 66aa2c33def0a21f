{#- Personal data: analysts see contact fields masked (first letter and domain of an email, last two digits
    of a phone); only campaign exports carry them in full. -#}
{% macro mask_email(column) -%}
    case
        when {{ column }} like '%@%'
            then concat(left({{ column }}, 1), '***@', split_part({{ column }}, '@', 2))
    end
{%- endmacro %}

{% macro mask_phone(column) -%}
    case
        when length(regexp_replace({{ column }}, '[^0-9]', '', 'g')) >= 4
            then concat('***', right(regexp_replace({{ column }}, '[^0-9]', '', 'g'), 2))
    end
{%- endmacro %}
