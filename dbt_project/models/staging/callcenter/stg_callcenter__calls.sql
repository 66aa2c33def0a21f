with source as (
    select * from {{ source('callcenter', 'calls') }}
),

renamed as (
    select
        unique_id as call_id,
        source_number as caller_number,
        destination as dialled_number,
        case when last_application = 'Queue' then split_part(last_data, ',', 1) end as queue_name,
        {{ to_utc('started_at') }} as started_at,
        {{ to_utc('answered_at') }} as answered_at,
        {{ to_utc('ended_at') }} as ended_at,
        duration_seconds,
        billed_seconds,
        lower(disposition) as disposition,
        disposition = 'ANSWERED' as is_answered,
        _file as source_file,
        _row_number as source_row_number
    from source
)

select * from renamed
