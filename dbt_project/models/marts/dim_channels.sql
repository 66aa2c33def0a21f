with channels as (
    select * from {{ ref('channels') }}
),

final as (
    select
        channel_id,
        channel_name,
        channel_group,
        is_sales_channel
    from channels
)

select * from final
