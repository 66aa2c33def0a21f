{#- Each segment of the two segmentations (rfm: the named RFM segments; behaviour: the k-means segments, with their
    description in words) side by side: size, recency, orders and net revenue over the RFM window (and its share of
    the segmentation's), trailing 12-month revenue, and the averages of the scores, as of the cutoff. Customers a
    segmentation left out are in none of its segments; shares are of the customers it segmented. -#}
with scores as (
    select * from {{ ref('customer_scores') }}
),

customers as (
    select * from {{ ref('dim_customers') }}
),

profiles as (
    select * from {{ source('ml', 'behaviour_segment_profiles') }}
    where as_of = {{ as_of_date() }}
),

scored as (
    select
        scores.rfm_segment,
        scores.behaviour_segment,
        scores.behaviour_segment_number,
        scores.clv,
        scores.p_alive,
        scores.churn_probability,
        scores.revenue_at_risk,
        customers.days_since_last_order,
        customers.rfm_window_orders,
        customers.rfm_window_net_revenue,
        customers.trailing_12m_net_revenue
    from scores
    inner join customers on scores.customer_id = customers.customer_id
),

segmented as (
    select
        'rfm' as segmentation,
        rfm_segment as segment,
        cast(null as integer) as segment_number,
        days_since_last_order,
        rfm_window_orders,
        rfm_window_net_revenue,
        trailing_12m_net_revenue,
        clv,
        p_alive,
        churn_probability,
        revenue_at_risk
    from scored
    where rfm_segment is not null
    union all
    select
        'behaviour' as segmentation,
        behaviour_segment as segment,
        behaviour_segment_number as segment_number,
        days_since_last_order,
        rfm_window_orders,
        rfm_window_net_revenue,
        trailing_12m_net_revenue,
        clv,
        p_alive,
        churn_probability,
        revenue_at_risk
    from scored
    where behaviour_segment is not null
),

segments as (
    select
        segmentation,
        segment,
        max(segment_number) as segment_number,
        count(*) as customers,
        avg(days_since_last_order) as average_recency_days,
        avg(rfm_window_orders) as average_orders,
        avg(rfm_window_net_revenue) as average_monetary,
        sum(rfm_window_net_revenue) as monetary,
        sum(trailing_12m_net_revenue) as net_revenue_12m,
        avg(clv) as average_clv,
        avg(p_alive) as average_p_alive,
        avg(churn_probability) as average_churn_probability,
        sum(revenue_at_risk) as revenue_at_risk
    from segmented
    group by segmentation, segment
),

final as (
    select
        segments.segmentation,
        segments.segment,
        segments.customers,
        segments.customers / sum(segments.customers) over (partition by segments.segmentation) as customer_share,
        segments.average_recency_days,
        segments.average_orders,
        segments.average_monetary,
        segments.monetary,
        segments.monetary / nullif(sum(segments.monetary) over (partition by segments.segmentation), 0)
            as monetary_share,
        segments.net_revenue_12m,
        segments.average_clv,
        segments.average_p_alive,
        segments.average_churn_probability,
        segments.revenue_at_risk,
        profiles.description,
        row_number() over (
            partition by segments.segmentation order by segments.monetary desc, segments.segment asc
        ) as sort_order
    from segments
    left join profiles on segments.segment_number = profiles.cluster
)

select * from final
