{#- The ERP customers as of the cutoff: every row of the customers export with its fate, and the customers known
    only from their orders (the export is optional, or misses some). A customer is kept when the account was
    opened before the cutoff or they ordered before it; the rest are excluded (opened, or first ordering, on or
    after the cutoff), as are second rows of a customer number. An account without an opening date (or with one
    implausibly early, more than outlier_date_span_years before the cutoff) opened with its first order; one whose
    opening date follows an earlier order opened with that order. -#}
with customers as (
    select * from {{ ref('stg_erp__customers') }}
),

orders as (
    select * from {{ ref('stg_erp__orders') }}
),

first_orders as (
    select
        erp_customer_id,
        min(order_date) as first_order_date
    from orders
    -- an order dated implausibly early (int_orders_classified excludes it) opens no account
    where order_date >= {{ plausible_first_date() }}
    group by erp_customer_id
),

numbered_customers as (
    select
        *,
        -- the row of the customer's own key first: another key of the same person is merged into it
        row_number() over (
            partition by erp_customer_id
            order by customer_key = erp_customer_id desc, source_file asc, source_row_number asc
        ) as copy_number
    from customers
),

exported as (
    select
        numbered_customers.erp_customer_id,
        'customers' as known_from,
        numbered_customers.first_name,
        numbered_customers.last_name,
        numbered_customers.email,
        numbered_customers.phone,
        numbered_customers.street,
        numbered_customers.postcode,
        numbered_customers.city,
        numbered_customers.country_code,
        numbered_customers.currency_code,
        case
            -- an opening date implausibly early (a 1900 placeholder) is as good as none
            when
                numbered_customers.created_date is null
                or numbered_customers.created_date < {{ plausible_first_date() }}
                then first_orders.first_order_date
            when first_orders.first_order_date < numbered_customers.created_date then first_orders.first_order_date
            else numbered_customers.created_date
        end as created_date,
        numbered_customers.copy_number,
        numbered_customers.customer_key,
        numbered_customers.source_file,
        numbered_customers.source_row_number
    from numbered_customers
    left join first_orders on numbered_customers.erp_customer_id = first_orders.erp_customer_id
),

known_from_orders as (
    select
        first_orders.erp_customer_id,
        'orders' as known_from,
        cast(null as {{ dbt.type_string() }}) as first_name,
        cast(null as {{ dbt.type_string() }}) as last_name,
        cast(null as {{ dbt.type_string() }}) as email,
        cast(null as {{ dbt.type_string() }}) as phone,
        cast(null as {{ dbt.type_string() }}) as street,
        cast(null as {{ dbt.type_string() }}) as postcode,
        cast(null as {{ dbt.type_string() }}) as city,
        'ZZ' as country_code,
        cast(null as {{ dbt.type_string() }}) as currency_code,
        first_orders.first_order_date as created_date,
        1 as copy_number,
        first_orders.erp_customer_id as customer_key,
        cast(null as {{ dbt.type_string() }}) as source_file,
        cast(null as bigint) as source_row_number
    from first_orders
    where
        first_orders.first_order_date < {{ as_of_date() }}
        and first_orders.erp_customer_id not in (select customers.erp_customer_id from customers)
),

unioned as (
    select * from exported
    union all
    select * from known_from_orders
),

final as (
    select
        erp_customer_id,
        known_from,
        first_name,
        last_name,
        email,
        phone,
        street,
        postcode,
        city,
        country_code,
        currency_code,
        created_date,
        copy_number = 1 as is_first_copy,
        case
            when copy_number > 1 and customer_key != erp_customer_id then 'same_person'
            when copy_number > 1 then 'duplicate_key'
            when created_date >= {{ as_of_date() }} then 'after_as_of'
        end as exclusion_reason_code,
        case
            when copy_number > 1 and customer_key != erp_customer_id
                then concat(
                    'customer key ', customer_key, ' is another key of the same person as customer ',
                    erp_customer_id, ', into which it is merged'
                )
            when copy_number > 1
                then concat(
                    'customer ', erp_customer_id, ' was loaded more than once; the first row is kept'
                )
            when created_date >= {{ as_of_date() }} then concat(
                'became a customer on ', cast(created_date as {{ dbt.type_string() }}),
                ', on or after the as-of date ', cast({{ as_of_date() }} as {{ dbt.type_string() }})
            )
        end as exclusion_reason,
        source_file,
        source_row_number
    from unioned
)

select * from final
