{#- The channels of the channels seed, and any other sales channel the orders name (an export's own words, such
    as marketplace), which reads as itself in the 'other' group. -#}
with channels as (
    select * from {{ ref('channels') }}
),

order_lines as (
    select * from {{ ref('int_order_lines_converted') }}
),

seeded as (
    select
        channel_id,
        channel_name,
        channel_group,
        is_sales_channel
    from channels
),

from_orders as (
    select distinct
        sales_channel as channel_id,
        sales_channel as channel_name,
        'other' as channel_group,
        true as is_sales_channel
    from order_lines
    where sales_channel not in (select seeded.channel_id from seeded)
),

final as (
    select * from seeded
    union all
    select * from from_orders
)

select * from final
