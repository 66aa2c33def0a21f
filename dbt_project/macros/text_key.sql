{#- Free text as a comparison key: lower case, accents stripped, every run of characters other than a-z and 0-9
    one space ('  Côte d’Ivoire ' ~ 'cote d ivoire'), so spellings match whatever their case and punctuation. -#}
{% macro text_key(column) -%}
    {{ return(adapter.dispatch('text_key', 'analytical_crm')(column)) }}
{%- endmacro %}

{#- engines without strip_accents: the countries seed also lists the unaccented spellings -#}
{% macro default__text_key(column) -%}
    trim(regexp_replace(lower({{ column }}), '[^a-z0-9]+', ' ', 'g'))
{%- endmacro %}

{% macro spark__text_key(column) -%}
    trim(regexp_replace(lower({{ column }}), '[^a-z0-9]+', ' '))
{%- endmacro %}

{% macro duckdb__text_key(column) -%}
    trim(regexp_replace(lower(strip_accents({{ column }})), '[^a-z0-9]+', ' ', 'g'))
{%- endmacro %}

{#- One row per element of a delimited list: a select-list item that expands the row. -#}
{% macro split_to_rows(column, delimiter) -%}
    {{ return(adapter.dispatch('split_to_rows', 'analytical_crm')(column, delimiter)) }}
{%- endmacro %}

{% macro default__split_to_rows(column, delimiter) -%}
    unnest(string_to_array({{ column }}, '{{ delimiter }}'))
{%- endmacro %}

{% macro duckdb__split_to_rows(column, delimiter) -%}
    unnest(string_split({{ column }}, '{{ delimiter }}'))
{%- endmacro %}

{% macro spark__split_to_rows(column, delimiter) -%}
    explode(split({{ column }}, '\\{{ delimiter }}'))
{%- endmacro %}

{#- A key as the exporting system meant it: invisible characters (zero-width space, joiners, word joiner, byte order
    mark) and surrounding blanks removed, empty as null. Loading strips them too; the models do not rely on it, so a
    key typed with an invisible character still finds its customer or order. -#}
{% macro clean_key(column) -%}
    {{ return(adapter.dispatch('clean_key', 'analytical_crm')(column)) }}
{%- endmacro %}

{% macro default__clean_key(column) -%}
    nullif(trim(regexp_replace({{ column }}, '[\x{200B}-\x{200D}\x{2060}\x{FEFF}]', '', 'g')), '')
{%- endmacro %}

{#- a key of ASCII characters only (as many bytes as characters), nearly every key, holds none of them: the regular
    expression is skipped, as the loader skips it (pipelines/ingest/loader.py, clean_text_sql) -#}
{% macro duckdb__clean_key(column) -%}
    nullif(trim(
        case
            when strlen({{ column }}) = length({{ column }}) then {{ column }}
            else regexp_replace({{ column }}, '[\x{200B}-\x{200D}\x{2060}\x{FEFF}]', '', 'g')
        end
    ), '')
{%- endmacro %}
