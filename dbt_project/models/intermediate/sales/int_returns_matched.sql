{#- Every loaded return with the order line it returns and its fate as of the cutoff. The line is the one the
    export names (order and line number); with the order named but not the line, the order's first line of the
    same product; with neither, the customer's latest purchase of the product on or before the return date
    among the kept lines. A return is excluded when its number was loaded before, it is dated on or after the
    cutoff, no order line matches it, or the line it returns is itself excluded. The refund is converted at the
    rate of the returned order. -#}
with returns as (
    select * from {{ ref('stg_erp__returns') }}
),

order_lines as (
    select * from {{ ref('int_order_lines_classified') }}
    where is_first_copy
),

numbered_returns as (
    select
        *,
        row_number() over (partition by return_id order by source_file, source_row_number) as copy_number
    from returns
),

-- the order is named but not the line: the order's first line of the product
by_order_and_product as (
    select
        numbered_returns.source_file,
        numbered_returns.source_row_number,
        order_lines.order_line_id,
        row_number() over (
            partition by numbered_returns.source_file, numbered_returns.source_row_number
            order by order_lines.line_number
        ) as preference
    from numbered_returns
    inner join order_lines
        on
            numbered_returns.order_id = order_lines.order_id
            and numbered_returns.product_id = order_lines.product_id
    where numbered_returns.order_line_id is null and numbered_returns.order_id is not null
),

-- neither is named: the customer's latest kept purchase of the product on or before the return date
by_customer_and_product as (
    select
        numbered_returns.source_file,
        numbered_returns.source_row_number,
        order_lines.order_line_id,
        row_number() over (
            partition by numbered_returns.source_file, numbered_returns.source_row_number
            order by order_lines.ordered_at desc, order_lines.order_id desc, order_lines.line_number desc
        ) as preference
    from numbered_returns
    inner join order_lines
        on
            numbered_returns.erp_customer_id = order_lines.erp_customer_id
            and numbered_returns.product_id = order_lines.product_id
            and numbered_returns.returned_date >= order_lines.order_date
    where
        numbered_returns.order_id is null
        and order_lines.exclusion_reason_code is null
),

matched as (
    select
        numbered_returns.*,
        coalesce(
            numbered_returns.order_line_id, by_order_and_product.order_line_id, by_customer_and_product.order_line_id
        ) as matched_order_line_id,
        case
            when numbered_returns.order_line_id is not null then 'order line'
            when numbered_returns.order_id is not null then 'order and product'
            when numbered_returns.erp_customer_id is not null then 'latest earlier purchase'
        end as matched_by
    from numbered_returns
    left join by_order_and_product
        on
            numbered_returns.source_file = by_order_and_product.source_file
            and numbered_returns.source_row_number = by_order_and_product.source_row_number
            and by_order_and_product.preference = 1
    left join by_customer_and_product
        on
            numbered_returns.source_file = by_customer_and_product.source_file
            and numbered_returns.source_row_number = by_customer_and_product.source_row_number
            and by_customer_and_product.preference = 1
),

final as (
    select
        matched.return_id,
        order_lines.order_line_id,
        order_lines.order_id,
        order_lines.erp_customer_id,
        matched.product_id,
        matched.returned_date,
        matched.returned_quantity,
        matched.refund_amount,
        order_lines.currency_code,
        order_lines.rate_to_reporting,
        cast(round(matched.refund_amount * order_lines.rate_to_reporting, 2) as decimal(38, 2)) as refunded_revenue,
        matched.return_reason,
        case when order_lines.order_line_id is not null then matched.matched_by end as matched_by,
        matched.copy_number = 1 as is_first_copy,
        case
            when matched.copy_number > 1 then 'duplicate_key'
            when matched.returned_date >= {{ as_of_date() }} then 'after_as_of'
            when order_lines.order_line_id is null then 'no_matching_sale'
            when order_lines.exclusion_reason_code is not null then 'sale_excluded'
        end as exclusion_reason_code,
        case
            when matched.copy_number > 1
                then concat(
                    'return ', matched.return_id, ' was loaded more than once; the first row is kept'
                )
            when matched.returned_date >= {{ as_of_date() }}
                then concat(
                    'returned on ', cast(matched.returned_date as {{ dbt.type_string() }}),
                    ', on or after the as-of date ', cast({{ as_of_date() }} as {{ dbt.type_string() }})
                )
            when order_lines.order_line_id is null and matched.order_line_id is not null
                then concat(
                    'the order line it names, ', matched.order_line_id, ', is not among the loaded order lines'
                )
            when order_lines.order_line_id is null and matched.order_id is not null
                then concat(
                    'its order ', matched.order_id, ' has no loaded line of product ', matched.product_id
                )
            when order_lines.order_line_id is null and matched.erp_customer_id is not null
                then concat(
                    'customer ', matched.erp_customer_id, ' bought no product ', matched.product_id,
                    ' on or before the return date'
                )
            when order_lines.order_line_id is null then 'it names neither the original order nor the customer'
            when order_lines.exclusion_reason_code is not null then concat(
                'the order line it returns is excluded: ', order_lines.exclusion_reason
            )
        end as exclusion_reason,
        matched.source_file,
        matched.source_row_number
    from matched
    left join order_lines on matched.matched_order_line_id = order_lines.order_line_id
)

select * from final
