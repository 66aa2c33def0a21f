{#- Why rows are missing from the marts, by source table and reason: quarantined at the door (meta.quarantine, by
    reason code; a record with problems in several columns counts once under each of its reasons, a refused file
    once), filtered at the door by the contract (the current files' filter reasons in the load ledger), and
    excluded in the warehouse (fct_row_exclusions, by reason code). Only codes and counts: the quarantined records'
    text is never published. DuckDB-only for now: the filter reasons are unnested from JSON with json_each. -#}
with quarantine as (
    select * from {{ source('meta', 'quarantine') }}
),

ledger as (
    select * from {{ source('meta', 'load_ledger') }}
),

exclusions as (
    select * from {{ ref('fct_row_exclusions') }}
),

quarantined as (
    select
        source_table,
        'quarantined at the door' as stage,  -- noqa: RF04
        coalesce(reason_code, 'unknown') as reason,
        count(distinct concat(file, ':', coalesce(cast(row_number as {{ dbt.type_string() }}), 'file')))
            as rows  -- noqa: RF04
    from quarantine
    group by source_table, coalesce(reason_code, 'unknown')
),

filtered as (
    select
        ledger.source_table,
        'filtered at the door' as stage,  -- noqa: RF04
        reasons.key as reason,
        cast(sum(cast(reasons.value as bigint)) as bigint) as rows  -- noqa: RF04
    from ledger
    cross join json_each(ledger.filtered_reasons) as reasons
    where ledger.status not in ('replaced', 'unloaded')
    group by ledger.source_table, reasons.key
),

excluded as (
    select
        source_table,
        'excluded in the warehouse' as stage,  -- noqa: RF04
        exclusion_reason_code as reason,
        count(*) as rows  -- noqa: RF04
    from exclusions
    group by source_table, exclusion_reason_code
),

final as (
    select * from quarantined
    union all
    select * from filtered
    union all
    select * from excluded
)

select * from final
