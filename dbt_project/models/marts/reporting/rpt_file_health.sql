{#- Every landing file the door has seen, one row per version in the load ledger: its status, when and by which run
    it was loaded, its rows read, loaded and quarantined at the door, and how many of its loaded rows the warehouse
    then left out of the marts (fct_row_exclusions, matched on the file and the raw tables it fed). A version that a
    later delivery replaced, or that was taken back, no longer has rows in the warehouse: its exclusions are null.
    The file is named relative to the landing zone, as the published ledger names it (pipelines/publish/snapshot.py):
    a path from outside keeps its last part only. DuckDB-only for now (list_contains, regexp_matches). -#}
with ledger as (
    select * from {{ source('meta', 'load_ledger') }}
),

exclusions as (
    select * from {{ ref('fct_row_exclusions') }}
),

excluded_by_file as (
    select
        source_table,
        source_file,
        count(*) as rows_excluded
    from exclusions
    group by source_table, source_file
),

-- a file can feed several raw tables (tables_fed): its exclusions in any of them are its own
versions as (
    select
        ledger.source_table,
        ledger.file,
        ledger.status,
        ledger.loaded_at,
        ledger.rows_read,
        ledger.rows_loaded,
        ledger.rows_quarantined,
        ledger.run_id,
        ledger.sha256,
        cast(coalesce(sum(excluded_by_file.rows_excluded), 0) as bigint) as rows_excluded
    from ledger
    left join excluded_by_file
        on
            ledger.file = excluded_by_file.source_file
            and (
                ledger.source_table = excluded_by_file.source_table
                or list_contains(ledger.tables_fed, excluded_by_file.source_table)
            )
    group by
        ledger.source_table,
        ledger.file,
        ledger.status,
        ledger.loaded_at,
        ledger.rows_read,
        ledger.rows_loaded,
        ledger.rows_quarantined,
        ledger.run_id,
        ledger.sha256
),

final as (
    select
        source_table,
        case
            when regexp_matches(file, '^([A-Za-z]:)?[\\/]') then regexp_extract(file, '[^\\/]*$')
            else file
        end as file,  -- noqa: RF04
        status,
        loaded_at,
        rows_read,
        rows_loaded,
        rows_quarantined,
        case when status not in ('replaced', 'unloaded') then rows_excluded end as rows_excluded,
        run_id
    from versions
)

select * from final
