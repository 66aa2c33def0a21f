{#- The published purchase model's view of every customer history: over a grid of frequency (repeat purchases) x
    recency (age at the last purchase), the probability that such a customer is still active and the purchases
    expected over the horizon, as of the cutoff. No rows when no purchase model was fitted (the baseline's scores
    were published). -#}
with matrices as (
    select * from {{ source('ml', 'clv_matrices') }}
    where as_of = {{ as_of_date() }}
),

final as (
    select
        frequency,
        recency,
        p_alive,
        expected_purchases
    from matrices
)

select * from final
