{#- One source table's row accounting for mart_source_reconciliation: a select of one row with rows_loaded,
    rows_in_marts, rows_excluded, rows_unaccounted, rows_counted_twice and mart_rows_without_source, matching the
    loaded rows (``loaded``: _file, _row_number, _run_id) to the mart rows (``held``) and the exclusions
    (``excluded``) one by one through the file and row number. A row may be loaded more than once (each copy
    counts), but is held or excluded once however many mart or exclusion rows name it. A null file or row number
    matches nothing, as in a join: its loaded rows are in neither, its mart rows are without a source. -#}
{% macro reconcile_rows(loaded, held, excluded) -%}
    {{ return(adapter.dispatch('reconcile_rows', 'analytical_crm')(loaded, held, excluded)) }}
{%- endmacro %}

{#- Any engine: the loaded, held and excluded rows stacked and grouped by file and row number, one group per source
    row. -#}
{% macro default__reconcile_rows(loaded, held, excluded) -%}
    with lineage as (
        select
            _file as source_file,
            _row_number as source_row_number,
            1 as is_loaded,
            0 as is_in_marts,
            0 as is_excluded
        from {{ loaded }}
        union all
        select
            source_file,
            source_row_number,
            0 as is_loaded,
            1 as is_in_marts,
            0 as is_excluded
        from {{ held }}
        union all
        select
            source_file,
            source_row_number,
            0 as is_loaded,
            0 as is_in_marts,
            1 as is_excluded
        from {{ excluded }}
    ),

    source_rows as (
        select
            source_file is not null and source_row_number is not null as is_matchable,
            count(case when is_loaded = 1 then 1 end) as times_loaded,
            max(is_in_marts) as is_in_marts,
            max(is_excluded) as is_excluded
        from lineage
        group by source_file, source_row_number
    )

    select
        sum(times_loaded) as rows_loaded,
        sum(case when is_matchable and is_in_marts = 1 then times_loaded else 0 end) as rows_in_marts,
        sum(case when is_matchable and is_excluded = 1 then times_loaded else 0 end) as rows_excluded,
        sum(case when not (is_matchable and (is_in_marts = 1 or is_excluded = 1)) then times_loaded else 0 end)
            as rows_unaccounted,
        sum(case when is_matchable and is_in_marts = 1 and is_excluded = 1 then times_loaded else 0 end)
            as rows_counted_twice,
        -- mart rows whose source row is not loaded (lineage lost on the way) would make the counts lie
        count(case when is_in_marts = 1 and (times_loaded = 0 or not is_matchable) then 1 end)
            as mart_rows_without_source
    from source_rows
{%- endmacro %}

{#- DuckDB: the same counts from bitmaps. The row numbers of a file are cut into blocks of 65,536; each side sets
    one bit per row number in a bitstring per file and block (the loaded rows per load, a run's copy of a file), and
    the counts are the set bits of their intersections. Grouping tens of millions of rows one group per row number
    took most of the model's time at a million customers and grew faster than the rows (13x from 100,000 to
    1,000,000 customers: the hash table outgrows the CPU's cache); a few hundred groups of bitmaps stay in it. A load
    numbers each of its rows once: a row number a load repeated (which the loader never writes) counts as
    unaccounted rather than matched. -#}
{% macro duckdb__reconcile_rows(loaded, held, excluded) -%}
    with loaded_blocks as (
        select
            _file as source_file,
            _run_id as load_run,
            _row_number >> 16 as block,
            count(*) as copies,
            bitstring_agg(_row_number & 65535, 0, 65535) as loaded_bits
        from {{ loaded }}
        group by 1, 2, 3
    ),

    marked as (
        select
            source_file,
            source_row_number,
            1 as is_in_marts
        from {{ held }}
        union all
        select
            source_file,
            source_row_number,
            0 as is_in_marts
        from {{ excluded }}
    ),

    marked_blocks as (
        select
            source_file,
            source_row_number >> 16 as block,
            count(*) filter (where is_in_marts = 1) as held_rows,
            bitstring_agg(source_row_number & 65535, 0, 65535) filter (where is_in_marts = 1) as held_bits,
            bitstring_agg(source_row_number & 65535, 0, 65535) filter (where is_in_marts = 0) as excluded_bits
        from marked
        group by 1, 2
    ),

    -- every load of a block, with the mart rows and exclusions of its block (none for an unmatchable one)
    loads as (
        select
            loaded_blocks.copies,
            loaded_blocks.loaded_bits & marked_blocks.held_bits as held_loaded,
            loaded_blocks.loaded_bits & marked_blocks.excluded_bits as excluded_loaded,
            loaded_blocks.loaded_bits & marked_blocks.held_bits & marked_blocks.excluded_bits as both_loaded
        from loaded_blocks
        left join marked_blocks
            on
                loaded_blocks.source_file = marked_blocks.source_file
                and loaded_blocks.block = marked_blocks.block
    ),

    loads_counted as (
        select
            sum(copies) as rows_loaded,
            coalesce(sum(bit_count(held_loaded)), 0) as rows_in_marts,
            coalesce(sum(bit_count(excluded_loaded)), 0) as rows_excluded,
            coalesce(sum(bit_count(both_loaded)), 0) as rows_counted_twice
        from loads
    ),

    -- the row numbers of each block that any load holds
    loaded_anywhere as (
        select
            source_file,
            block,
            bit_or(loaded_bits) as loaded_bits
        from loaded_blocks
        group by 1, 2
    ),

    -- mart rows without a loaded row: in a block, the held row numbers no load holds (a block without a file
    -- matches no load: all of them); an unmatchable file and row number once however many mart rows carry it
    orphans as (
        select
            coalesce(sum(
                case
                    when marked_blocks.held_rows = 0 then 0
                    when marked_blocks.block is null then 1
                    else bit_count(marked_blocks.held_bits)
                        - coalesce(bit_count(marked_blocks.held_bits & loaded_anywhere.loaded_bits), 0)
                end
            ), 0) as mart_rows_without_source
        from marked_blocks
        left join loaded_anywhere
            on
                marked_blocks.source_file = loaded_anywhere.source_file
                and marked_blocks.block = loaded_anywhere.block
    )

    select
        loads_counted.rows_loaded,
        loads_counted.rows_in_marts,
        loads_counted.rows_excluded,
        loads_counted.rows_loaded - loads_counted.rows_in_marts - loads_counted.rows_excluded
        + loads_counted.rows_counted_twice as rows_unaccounted,
        loads_counted.rows_counted_twice,
        orphans.mart_rows_without_source
    from loads_counted
    cross join orphans
{%- endmacro %}
