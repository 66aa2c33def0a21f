with customers as (
    select * from {{ ref('stg_erp__customers') }}
),

summaries as (
    select * from {{ ref('int_customers_summarised') }}
),

consents as (
    select * from {{ ref('int_customer_consents_pivoted') }}
),

final as (
    select
        customers.erp_customer_id as customer_id,
        customers.erp_customer_id,
        concat(customers.country_code, '|', lower(strip_accents(coalesce(nullif(trim(customers.city), ''), 'Unknown'))))
            as geography_id,
        customers.country_code,
        customers.city,
        customers.postcode,
        customers.currency_code as billing_currency_code,
        customers.created_date,
        {{ mask_email('customers.email') }} as email_masked,
        {{ mask_phone('customers.phone') }} as phone_masked,
        summaries.first_order_date,
        summaries.last_order_date,
        summaries.days_since_last_order,
        summaries.tenure_days,
        coalesce(summaries.lifetime_orders, 0) as lifetime_orders,
        coalesce(summaries.lifetime_purchase_days, 0) as lifetime_purchase_days,
        coalesce(summaries.lifetime_net_revenue, 0) as lifetime_net_revenue,
        coalesce(summaries.trailing_12m_net_revenue, 0) as trailing_12m_net_revenue,
        coalesce(summaries.rfm_window_orders, 0) as rfm_window_orders,
        coalesce(summaries.rfm_window_net_revenue, 0) as rfm_window_net_revenue,
        coalesce(summaries.loyalty_tier, 'bronze') as loyalty_tier,
        summaries.erp_customer_id is not null as has_purchased,
        coalesce(consents.has_email_consent, false) as has_email_consent,
        coalesce(consents.has_sms_consent, false) as has_sms_consent,
        coalesce(consents.has_phone_consent, false) as has_phone_consent,
        cast('{{ var("as_of") }}' as date) as as_of_date,
        '{{ var("reporting_currency") }}' as reporting_currency_code
    from customers
    left join summaries
        on customers.erp_customer_id = summaries.erp_customer_id
    left join consents
        on customers.erp_customer_id = consents.customer_id
)

select * from final
