{#- The loyalty programme's headline figures, one row per KPI, each beside what it is compared with. Activity
    KPIs cover the 12 months before the cutoff and compare with the 12 months before those; the score KPIs are this
    run's and compare with the latest earlier run that scored. A comparison the history cannot make is null, never
    zero: a year without any order before it is not a year of zero customers. -#}
{%- set period_kpis = [
    ('active_customers', 'Active customers', 'count'),
    ('net_revenue', 'Net revenue', 'currency'),
    ('repeat_purchase_rate', 'Repeat purchase rate', 'share'),
    ('retention_rate', 'Retention rate', 'share'),
] %}

with orders as (
    select * from {{ ref('fct_orders') }}
),

scores as (
    select * from {{ ref('customer_scores') }}
),

clv_runs as (
    select * from {{ source('ml', 'clv_scores') }}
),

churn_runs as (
    select * from {{ ref('customer_revenue_at_risk') }}
),

-- period 0 is the current 12 months, 1 the 12 before, 2 the 12 before those (for last year's retention)
periods as (
    select
        0 as period_number,
        cast({{ dbt.dateadd('month', -12, as_of_date()) }} as date) as period_start,
        {{ as_of_date() }} as period_end
    union all
    select
        1 as period_number,
        cast({{ dbt.dateadd('month', -24, as_of_date()) }} as date) as period_start,
        cast({{ dbt.dateadd('month', -12, as_of_date()) }} as date) as period_end
    union all
    select
        2 as period_number,
        cast({{ dbt.dateadd('month', -36, as_of_date()) }} as date) as period_start,
        cast({{ dbt.dateadd('month', -24, as_of_date()) }} as date) as period_end
),

history as (
    select min(order_date) as first_order_date from orders
),

customer_periods as (
    select
        periods.period_number,
        orders.customer_id,
        count(*) as orders,
        sum(orders.net_revenue) as net_revenue
    from orders
    inner join periods on orders.order_date >= periods.period_start and orders.order_date < periods.period_end
    group by periods.period_number, orders.customer_id
),

-- an earlier period is compared only when the history covers all of it (a half-covered year would show growth
-- that is only the start of the data); the current period is what the data says, whatever its length
period_figures as (
    select
        periods.period_number,
        periods.period_start,
        periods.period_end,
        periods.period_number = 0 or history.first_order_date <= periods.period_start as is_covered,
        count(customer_periods.customer_id) as active_customers,
        coalesce(sum(customer_periods.net_revenue), 0) as net_revenue,
        sum(case when customer_periods.orders >= 2 then 1 else 0 end) as repeat_customers
    from periods
    cross join history
    left join customer_periods on periods.period_number = customer_periods.period_number
    group by periods.period_number, periods.period_start, periods.period_end, history.first_order_date
),

-- customers active in a period who are active again in the next one (period_number one lower)
retained as (
    select
        earlier.period_number as from_period_number,
        count(*) as retained_customers
    from customer_periods as earlier
    inner join customer_periods as later
        on
            earlier.customer_id = later.customer_id
            and later.period_number = earlier.period_number - 1
    group by earlier.period_number
),

periods_judged as (
    select
        period_figures.period_number,
        period_figures.period_start,
        period_figures.period_end,
        case when period_figures.is_covered then period_figures.active_customers end as active_customers,
        case when period_figures.is_covered then period_figures.net_revenue end as net_revenue,
        case
            when period_figures.is_covered
                then period_figures.repeat_customers / nullif(period_figures.active_customers, 0)
        end as repeat_purchase_rate,
        -- the share of the period before's active customers active again in this one
        case
            when period_before.is_covered
                then coalesce(retained.retained_customers, 0) / nullif(period_before.active_customers, 0)
        end as retention_rate
    from period_figures
    left join period_figures as period_before
        on period_figures.period_number + 1 = period_before.period_number
    left join retained on period_before.period_number = retained.from_period_number
),

current_period as (
    select * from periods_judged
    where period_number = 0
),

previous_period as (
    select * from periods_judged
    where period_number = 1
),

-- the latest run before this one that scored customers, per model
previous_clv_run as (
    select max(as_of) as as_of
    from clv_runs
    where as_of < {{ as_of_date() }}
),

previous_churn_run as (
    select max(as_of) as as_of
    from churn_runs
    where as_of < {{ as_of_date() }}
),

previous_clv as (
    select
        max(previous_clv_run.as_of) as as_of,
        avg(clv_runs.clv) as average_clv
    from previous_clv_run
    left join clv_runs on previous_clv_run.as_of = clv_runs.as_of
),

previous_churn as (
    select
        max(previous_churn_run.as_of) as as_of,
        sum(churn_runs.revenue_at_risk) as revenue_at_risk
    from previous_churn_run
    left join churn_runs on previous_churn_run.as_of = churn_runs.as_of
),

current_scores as (
    select
        avg(clv) as average_clv,
        sum(revenue_at_risk) as revenue_at_risk
    from scores
),

-- The layout of a Jinja-generated union is not the layout of hand-written SQL:
-- noqa: disable=LT02
period_kpis as (
    {%- for kpi, label, unit in period_kpis %}
    select
        '{{ kpi }}' as kpi,
        '{{ label }}' as label,  -- noqa: RF04
        '{{ unit }}' as unit,
        {{ loop.index }} as sort_order,
        cast(current_period.{{ kpi }} as double) as current_value,
        cast(previous_period.{{ kpi }} as double) as previous_value
    from current_period cross join previous_period
        {%- if not loop.last %}
    union all
        {%- endif %}
    {%- endfor %}
),
-- noqa: enable=LT02

score_kpis as (
    select
        'average_clv' as kpi,
        'Average customer lifetime value' as label,  -- noqa: RF04
        'currency' as unit,
        5 as sort_order,
        cast(current_scores.average_clv as double) as current_value,
        cast(previous_clv.average_clv as double) as previous_value,
        previous_clv.as_of as previous_as_of
    from current_scores cross join previous_clv
    union all
    select
        'revenue_at_risk' as kpi,
        'Revenue at risk' as label,  -- noqa: RF04
        'currency' as unit,
        6 as sort_order,
        cast(current_scores.revenue_at_risk as double) as current_value,
        cast(previous_churn.revenue_at_risk as double) as previous_value,
        previous_churn.as_of as previous_as_of
    from current_scores cross join previous_churn
),

final as (
    select
        period_kpis.kpi,
        period_kpis.label,
        period_kpis.unit,
        period_kpis.sort_order,
        period_kpis.current_value,
        period_kpis.previous_value,
        case
            when period_kpis.previous_value is null then 'no data for the 12 months before'
            else 'the 12 months before'
        end as comparison,
        current_period.period_start,
        cast({{ dbt.dateadd('day', -1, 'current_period.period_end') }} as date) as period_end
    from period_kpis
    cross join current_period
    union all
    select
        kpi,
        label,
        unit,
        sort_order,
        current_value,
        previous_value,
        case
            when previous_as_of is null then 'no earlier run'
            else concat('the run as of ', cast(previous_as_of as {{ dbt.type_string() }}))
        end as comparison,
        cast(null as date) as period_start,
        cast(null as date) as period_end
    from score_kpis
)

select * from final
