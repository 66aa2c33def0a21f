{#- Each customer's scores as of the run's cutoff, one row per customer who has been scored: what dashboards and
    customer_360 read, and what the history snapshot follows. -#}
with rfm as (
    select * from {{ source('ml', 'rfm_scores') }}
),

final as (
    select
        customer_id,
        recency_score,
        frequency_score,
        monetary_score,
        rfm_cell,
        segment as rfm_segment,
        model_run_id as rfm_model_run_id,
        as_of as as_of_date
    from rfm
    where as_of = cast('{{ var("as_of") }}' as date)
)

select * from final
