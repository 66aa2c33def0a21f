{#- One row per kept return (int_returns_matched), with the order line it returns and how it was matched to it;
    the refund in the order currency and in the reporting currency at the order's rate. Returns excluded on the
    way (no matching sale, after the cutoff...) are in fct_row_exclusions. -#}
with returns as (
    select * from {{ ref('int_returns_matched') }}
    where exclusion_reason_code is null
),

final as (
    select
        return_id,
        order_line_id,
        order_id,
        erp_customer_id as customer_id,
        product_id,
        returned_date,
        returned_quantity,
        refund_amount,
        currency_code,
        refunded_revenue,
        {{ reporting_currency() }} as reporting_currency_code,
        return_reason,
        matched_by,
        source_file,
        source_row_number
    from returns
)

select * from final
