{#- Every spelling of a country the countries seed knows (ISO alpha-2 and alpha-3 codes, English names, names
    in other languages), as a comparison key: what staging reads country columns against. -#}
with countries as (
    select * from {{ ref('countries') }}
),

spellings as (
    select
        country_code,
        {{ split_to_rows('aliases', '|') }} as spelling
    from countries
),

final as (
    select distinct
        {{ text_key('spelling') }} as spelling_key,
        country_code
    from spellings
)

select * from final
