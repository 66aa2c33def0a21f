{#- The one way a var (a setting the pipeline passes, or anyone's `--vars`) becomes SQL text, the Jinja side of
    pipelines/sql.py: a value is checked against the shape it must have and quoted, never pasted as it is. Each
    macro names the var it was given, so a bad value fails the compilation with a message naming the setting
    rather than running SQL that someone else wrote. `name` is the var's name, for the message. -#}

{#- A SQL string literal: single quotes doubled; a NUL character (which would end the text) refused. -#}
{% macro crm_string(value, name='value') -%}
    {%- if value is none -%}
        {{ exceptions.raise_compiler_error("the dbt var " ~ name ~ " is not set: pass it with --vars") }}
    {%- endif -%}
    {%- set text = value | string -%}
    {%- if '\x00' in text -%}
        {{ exceptions.raise_compiler_error("the dbt var " ~ name ~ " holds a NUL character; give it as plain text") }}
    {%- endif -%}
    '{{ text | replace("'", "''") }}'
{%- endmacro %}

{#- A date literal from a YYYY-MM-DD value that is a real calendar day, else a compilation error naming the var. -#}
{% macro crm_date(value, name='date') -%}
    {%- set text = (value | string) | trim -%}
    {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', text) -%}
        {{ exceptions.raise_compiler_error(
            "the dbt var " ~ name ~ " must be a date written YYYY-MM-DD (e.g. 2026-06-30), not " ~ (text | tojson)
        ) }}
    {%- endif -%}
    {%- set month, day_of_month = text[5:7] | int, text[8:10] | int -%}
    {%- if month < 1 or month > 12 or day_of_month < 1 or day_of_month > 31 -%}
        {{ exceptions.raise_compiler_error(
            "the dbt var " ~ name ~ " must be a calendar day (YYYY-MM-DD), not " ~ (text | tojson)
        ) }}
    {%- endif -%}
    cast('{{ text }}' as date)
{%- endmacro %}

{#- A finite number (an integer or a decimal, as a number or as text), written as SQL; anything else, NaN and the
    infinities included, is a compilation error naming the var. -#}
{% macro crm_number(value, name='number') -%}
    {%- set text = (value | string) | trim -%}
    {%- if value is sameas true or value is sameas false
        or not modules.re.fullmatch('-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?', text) -%}
        {{ exceptions.raise_compiler_error(
            "the dbt var " ~ name ~ " must be a finite number (e.g. 250 or 0.5), not " ~ (text | tojson)
        ) }}
    {%- endif -%}
    {{ text }}
{%- endmacro %}

{#- An upper-case code of `length` letters (ISO 4217 currency: 3, ISO 3166 country: 2) as a string literal. -#}
{% macro crm_code(value, name='code', length=3) -%}
    {%- set text = ((value | string) | trim) | upper -%}
    {%- if not modules.re.fullmatch('[A-Z]{' ~ length ~ '}', text) -%}
        {{ exceptions.raise_compiler_error(
            "the dbt var " ~ name ~ " must be a code of " ~ length ~ " letters (e.g. "
            ~ ('EUR' if length == 3 else 'ES') ~ "), not " ~ (value | string | tojson)
        ) }}
    {%- endif -%}
    '{{ text }}'
{%- endmacro %}
