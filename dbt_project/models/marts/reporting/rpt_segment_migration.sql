{#- How customers moved between RFM segments since the previous run: one row per pair of segments (from the
    previous run's to this run's; '(not scored)' on the side where a customer was not scored), with the share of
    the from-segment's customers that made the move. The previous run is the latest earlier as-of with RFM scores,
    the one the RFM asset compared with; when there is none, every customer comes from '(not scored)'. -#}
with migration as (
    select * from {{ source('ml', 'rfm_migration') }}
    where as_of = {{ as_of_date() }}
),

rfm_runs as (
    select * from {{ source('ml', 'rfm_scores') }}
),

previous_run as (
    select max(as_of) as previous_as_of
    from rfm_runs
    where as_of < {{ as_of_date() }}
),

final as (
    select
        migration.from_segment,
        migration.to_segment,
        migration.customers,
        migration.customers / sum(migration.customers) over (partition by migration.from_segment) as from_share,
        previous_run.previous_as_of,
        migration.as_of
    from migration
    cross join previous_run
)

select * from final
