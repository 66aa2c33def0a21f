{#- One row per day from calendar_start to three years after the cutoff (room for forecasts). -#}
with days as (
    {{ dbt.date_spine(
        'day',
        "cast('" ~ var('calendar_start') ~ "' as date)",
        "cast(" ~ dbt.dateadd('day', 1096, "cast('" ~ var('as_of') ~ "' as date)") ~ " as date)"
    ) }}
),

final as (
    select
        cast(date_day as date) as date_day,
        extract(year from date_day) as year_number,
        extract(quarter from date_day) as quarter_number,
        extract(month from date_day) as month_number,
        extract(day from date_day) as day_of_month,
        extract(isodow from date_day) as iso_day_of_week,
        extract(week from date_day) as iso_week_number,
        concat(extract(year from date_day), '-Q', extract(quarter from date_day)) as calendar_quarter,
        strftime(date_day, '%Y-%m') as calendar_month,
        strftime(date_day, '%B') as month_name,
        strftime(date_day, '%A') as day_name,
        extract(isodow from date_day) in (6, 7) as is_weekend
    from days
)

select * from final
