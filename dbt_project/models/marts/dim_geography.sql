{#- Where customers live: region > country > city. -#}
with customers as (
    select * from {{ ref('stg_erp__customers') }}
),

countries as (
    select * from {{ ref('countries') }}
),

cities as (
    select distinct
        country_code,
        coalesce(nullif(trim(city), ''), 'Unknown') as city_name
    from customers
),

final as (
    select
        concat(cities.country_code, '|', lower(strip_accents(cities.city_name))) as geography_id,
        cities.city_name,
        cities.country_code,
        coalesce(countries.country_name, cities.country_code) as country_name,
        coalesce(countries.region_name, 'Other') as region_name
    from cities
    left join countries on cities.country_code = countries.country_code
    qualify row_number() over (partition by geography_id order by cities.city_name) = 1
)

select * from final
