{#- Identity keys: normalised so that the same person's records compare equal, and NULL for junk values
    (placeholders, all zeros, too short) so that junk never links two people. -#}

{% macro normalise_email(column) -%}
    case
        when
            regexp_matches(lower(trim({{ column }})), '^[^@\s]+@[^@\s]+\.[a-z]{2,}$')
            and lower(trim({{ column }})) not similar to
            '(no-?e?mail|noreply|no-reply|none|test|unknown|invalid|nomail|sin-?correo|x+)@.*'
            and split_part(lower(trim({{ column }})), '@', 2) not in ('example.com', 'example.org', 'test.com', 'email.com')
            then lower(trim({{ column }}))
    end
{%- endmacro %}

{#- E.164 (+<calling code><national number>) from how people type phones: international (+34 ..., 0034 ...)
    or national (06 12 34 56 78 in France, 0151 ... in Germany, 07700 ... in the UK, (212) 555-0142 in the US),
    national numbers read in the record's country, else the default_country setting; the trunk prefix (0 in
    most of Europe, 06 in Hungary, 8 in Russia) is dropped. -#}
{% macro phone_e164(column, calling_code, trunk_prefix) -%}
    case
        when regexp_replace(coalesce({{ column }}, ''), '[^0-9]', '', 'g') similar to '0*' then null
        when length(regexp_replace({{ column }}, '[^0-9]', '', 'g')) < 7 then null
        when trim({{ column }}) like '+%'
            then concat('+', regexp_replace({{ column }}, '[^0-9]', '', 'g'))
        when regexp_replace({{ column }}, '[^0-9]', '', 'g') like '00%'
            then concat('+', substr(regexp_replace({{ column }}, '[^0-9]', '', 'g'), 3))
        when {{ trunk_prefix }} is not null and regexp_replace({{ column }}, '[^0-9]', '', 'g') like {{ trunk_prefix }} || '%'
            then concat(
                '+', {{ calling_code }},
                substr(regexp_replace({{ column }}, '[^0-9]', '', 'g'), length({{ trunk_prefix }}) + 1)
            )
        else concat('+', {{ calling_code }}, regexp_replace({{ column }}, '[^0-9]', '', 'g'))
    end
{%- endmacro %}

{#- Names compared without case, accents or punctuation: 'José  Muñoz-Pérez' ~ 'jose munozperez'. -#}
{% macro name_key(first_name, last_name) -%}
    nullif(
        trim(regexp_replace(lower(strip_accents(concat_ws(' ', {{ first_name }}, {{ last_name }}))), '[^a-z ]', '', 'g')),
        ''
    )
{%- endmacro %}

{% macro postcode_key(column) -%}
    nullif(upper(regexp_replace(coalesce({{ column }}, ''), '[^0-9A-Za-z]', '', 'g')), '')
{%- endmacro %}

{#- The district part of a postcode, the most that is published (a full postcode and a name can single a person
    out): GB, IE and CA the outward code (before the space, else all but the last three characters), US the first
    three digits, NL the four digits, elsewhere the first two characters. The full postcode stays in the
    intermediate models, which resolve identities with it and are never published. -#}
{% macro postcode_district(postcode, country_code) -%}
    case
        when nullif(trim({{ postcode }}), '') is null then null
        when {{ country_code }} in ('GB', 'IE', 'CA')
            then nullif(
                case
                    when position(' ' in trim({{ postcode }})) > 0 then upper(split_part(trim({{ postcode }}), ' ', 1))
                    else upper(left(trim({{ postcode }}), length(trim({{ postcode }})) - 3))
                end,
                ''
            )
        when {{ country_code }} = 'US' then left(trim({{ postcode }}), 3)
        when {{ country_code }} = 'NL' then nullif(regexp_extract(trim({{ postcode }}), '^[0-9]{4}'), '')
        else upper(left(trim({{ postcode }}), 2))
    end
{%- endmacro %}

{#- Web sessions resolved by the two identity rules a session can meet (int_identity_records_resolved numbers
    them): 1. its login's ERP customer number, when it is a kept ERP customer's; 6. else its visitor cookie, when
    that visitor's logins name exactly one such customer (int_web_visitors_resolved). `sessions` names a relation
    (or CTE) of stg_web__sessions rows: the view of every session before the cutoff (int_web_sessions_resolved),
    or the sessions the interactions rebuild, filtered before these joins rather than after them. -#}
{% macro resolve_web_sessions(sessions) -%}
    select
        {{ sessions }}.session_id,
        {{ sessions }}.visitor_id,
        {{ sessions }}.erp_customer_id,
        {{ sessions }}.started_at,
        {{ sessions }}.ended_at,
        {{ sessions }}.source_file,
        {{ sessions }}.source_row_number,
        coalesce(known.erp_customer_id, visitor.customer_id) as customer_id,
        case
            when known.erp_customer_id is not null then 'erp customer number'
            when visitor.customer_id is not null then 'visitor cookie'
        end as matched_by
    from {{ sessions }}
    left join {{ ref('int_erp_customers_classified') }} as known
        on {{ sessions }}.erp_customer_id = known.erp_customer_id and known.exclusion_reason_code is null
    left join {{ ref('int_web_visitors_resolved') }} as visitor
        on {{ sessions }}.visitor_id = visitor.visitor_id and known.erp_customer_id is null
{%- endmacro %}

{#- The calling code and trunk prefix national phones are read with when a record's country is unknown: the
    default_country setting's, one row from `countries` (the countries seed or a CTE over it). -#}
{% macro default_country_dialling(countries) -%}
    select
        calling_code,
        trunk_prefix
    from {{ countries }}
    where country_code = {{ crm_code(var("default_country"), 'default_country', 2) }}
{%- endmacro %}
