{#- Where customers and prospects live: region > country > city. -#}
with people as (
    select * from {{ ref('int_customer_profiles') }}
),

countries as (
    select * from {{ ref('countries') }}
),

cities as (
    select
        geography_id,
        min(city) as city_name,
        any_value(country_code) as country_code
    from people
    group by geography_id
),

final as (
    select
        cities.geography_id,
        cities.city_name,
        cities.country_code,
        coalesce(countries.country_name, case when cities.country_code = 'ZZ' then 'Unknown' end, cities.country_code)
            as country_name,
        coalesce(countries.region_name, 'Other') as region_name
    from cities
    left join countries on cities.country_code = countries.country_code
)

select * from final
