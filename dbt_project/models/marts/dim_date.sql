{#- One row per day from January 1 of the year of the earliest date the marts hold (an order, a return, a
    customer's start, a contact, a case, a campaign) to three years after the cutoff (room for forecasts), so a
    company's whole history fits, whatever its period. -#}
with order_lines as (
    select * from {{ ref('fct_order_lines') }}
),

returns as (
    select * from {{ ref('fct_returns') }}
),

customers as (
    select * from {{ ref('dim_customers') }}
),

interactions as (
    select * from {{ ref('fct_interactions') }}
),

cases as (
    select * from {{ ref('fct_support_cases') }}
),

campaigns as (
    select * from {{ ref('dim_campaigns') }}
),

campaign_contacts as (
    select * from {{ ref('fct_campaign_contacts') }}
),

dates_held as (
    select min(order_date) as first_date from order_lines
    union all
    select min(returned_date) as first_date from returns
    union all
    select min(created_date) as first_date from customers
    union all
    select min(first_order_date) as first_date from customers
    union all
    select min(occurred_date) as first_date from interactions
    union all
    select min(opened_date) as first_date from cases
    union all
    select min(start_date) as first_date from campaigns
    union all
    select min(window_start_date) as first_date from campaign_contacts
),

bounds as (
    select
        cast({{ dbt.date_trunc('year', 'coalesce(min(first_date), ' ~ as_of_date() ~ ')') }} as date) as first_date,
        cast({{ dbt.dateadd('day', 1096, as_of_date()) }} as date) as last_date
    from dates_held
),

days as (
    {{ calendar_days('bounds.first_date', 'bounds.last_date') }}
),

final as (
    select
        date_day,
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
