{#- One row per person known at the cutoff: every ERP customer (those the customers export lacks, known from
    their orders, too) and every prospect (a CRM contact who has not bought), with current attributes, purchase
    history as of the cutoff, loyalty tier and consent per channel. -#}
with people as (
    select * from {{ ref('int_customer_profiles') }}
),

summaries as (
    select * from {{ ref('int_customers_summarised') }}
),

consents as (
    select * from {{ ref('int_customer_consents_pivoted') }}
),

final as (
    select
        people.customer_id,
        people.customer_type,
        people.erp_customer_id,
        people.geography_id,
        people.country_code,
        people.city,
        {{ postcode_district('people.postcode', 'people.country_code') }} as postcode_district,
        people.billing_currency_code,
        people.created_date,
        people.has_customer_record,
        -- whether the customer can be reached; the details themselves are published apart (contacts schema)
        coalesce(people.email like '%@%', false) as has_email,
        coalesce(length(regexp_replace(people.phone, '[^0-9]', '', 'g')) >= 4, false) as has_phone,
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
        -- Every ERP customer is in the loyalty programme (bronze until they spend); prospects are not.
        case when people.customer_type = 'customer' then coalesce(summaries.loyalty_tier, 'bronze') end
            as loyalty_tier,
        summaries.erp_customer_id is not null as has_purchased,
        coalesce(consents.has_email_consent, false) as has_email_consent,
        coalesce(consents.has_sms_consent, false) as has_sms_consent,
        coalesce(consents.has_phone_consent, false) as has_phone_consent,
        {{ as_of_date() }} as as_of_date,
        {{ reporting_currency() }} as reporting_currency_code,
        people.source_file,
        people.source_row_number
    from people
    left join summaries
        on people.erp_customer_id = summaries.erp_customer_id
    left join consents
        on people.customer_id = consents.customer_id
)

select * from final
