{#- The RFM grid: recency score x frequency score (1 to 5 each), every one of the 25 cells listed, an empty one
    with zero customers, with the customers in it and their net revenue over the RFM window (monetary), as counts
    and as shares of all scored customers, as of the cutoff. -#}
with rfm as (
    select * from {{ source('ml', 'rfm_scores') }}
    where as_of = {{ as_of_date() }}
),

quintiles as (
    select 1 as score
    union all
    select 2 as score
    union all
    select 3 as score
    union all
    select 4 as score
    union all
    select 5 as score
),

cells as (
    select
        recency.score as recency_score,
        frequency.score as frequency_score
    from quintiles as recency
    cross join quintiles as frequency
),

filled as (
    select
        recency_score,
        frequency_score,
        count(*) as customers,
        sum(monetary) as monetary
    from rfm
    group by recency_score, frequency_score
),

totals as (
    select
        count(*) as customers,
        sum(monetary) as monetary
    from rfm
),

final as (
    select
        cells.recency_score,
        cells.frequency_score,
        coalesce(filled.customers, 0) as customers,
        coalesce(filled.monetary, 0) as monetary,
        filled.monetary / nullif(filled.customers, 0) as average_monetary,
        coalesce(filled.customers, 0) / nullif(totals.customers, 0) as share_of_customers,
        cast(coalesce(filled.monetary, 0) as double) / nullif(cast(totals.monetary as double), 0) as share_of_monetary
    from cells
    cross join totals
    left join filled
        on
            cells.recency_score = filled.recency_score
            and cells.frequency_score = filled.frequency_score
)

select * from final
