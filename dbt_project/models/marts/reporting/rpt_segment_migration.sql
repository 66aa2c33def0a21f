{#- How customers moved between RFM segments since the previous run: one row per pair of segments (from the
    previous run's to this run's; '(not scored)' on the side where a customer was not scored), with the share of
    the from-segment's customers that made the move. The previous run is the latest earlier as-of with RFM scores
    (ml.rfm_scores keeps every run); when there is none, every customer comes from '(not scored)'. A run that scored
    nobody shows no moves. -#}
with rfm_runs as (
    select * from {{ source('ml', 'rfm_scores') }}
),

previous_run as (
    select max(as_of) as previous_as_of
    from rfm_runs
    where as_of < {{ as_of_date() }}
),

current_scores as (
    select
        customer_id,
        segment
    from rfm_runs
    where as_of = {{ as_of_date() }}
),

previous_scores as (
    select
        rfm_runs.customer_id,
        rfm_runs.segment
    from rfm_runs
    inner join previous_run on rfm_runs.as_of = previous_run.previous_as_of
),

current_run as (
    select count(*) as scored_customers
    from current_scores
),

paired as (
    select
        coalesce(previous_scores.segment, '(not scored)') as from_segment,
        coalesce(current_scores.segment, '(not scored)') as to_segment
    from current_scores
    full outer join previous_scores on current_scores.customer_id = previous_scores.customer_id
),

moves as (
    select
        from_segment,
        to_segment,
        count(*) as customers
    from paired
    group by from_segment, to_segment
),

final as (
    select
        moves.from_segment,
        moves.to_segment,
        moves.customers,
        moves.customers / sum(moves.customers) over (partition by moves.from_segment) as from_share,
        previous_run.previous_as_of,
        {{ as_of_date() }} as as_of
    from moves
    cross join previous_run
    cross join current_run
    where current_run.scored_customers > 0
)

select * from final
