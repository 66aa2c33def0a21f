{#- The Qini (uplift) curve of every campaign with a target and a control group and at least 10 members: all
    members ranked together, best first, cut into tenths, and at each tenth k the incremental conversions so far
    (Radcliffe 2007):

        Q(k) = R_t(k) - R_c(k) * N_t(k) / N_c(k)

    R = members who bought in the attribution window, N = members, t = target group, c = control group, all counted
    over the top k tenths. The random-targeting line runs from 0 to Q(10), the campaign's incremental conversions.

    Ranking: by the score the audience was targeted by (the planner's targeting_score) when the members carry one;
    for campaigns without it (the marketing tool's), by the member's orders in the year before joining, then the
    most recent order first. Both are known before the campaign, so the campaign cannot move a member up the list
    (a score computed today would rank the targets it made buy above their control twins).

    Qini coefficient: the area between the curve and the random line, with the share of members on x and Q divided
    by the campaign's targets on y (so y at 100% is the campaign's conversion lift), by the trapezoid rule over the
    eleven points 0, 10%, ..., 100%; null when a prefix holds no control member (Q cannot be measured there). -#}

with contacts as (
    select * from {{ ref('fct_campaign_contacts') }}
),

members as (
    select
        campaign_id,
        campaign_member_id,
        is_control,
        has_converted,
        targeting_score,
        orders_in_year_before_joining as orders_in_prior_year,
        last_order_date_before_joining as last_order_date
    from contacts
),

campaign_sizes as (
    select
        campaign_id,
        count(*) as members,
        count(case when not is_control then 1 end) as targets,
        count(case when is_control then 1 end) as controls,
        count(targeting_score) > 0 as has_targeting_score
    from members
    group by campaign_id
),

ranked as (
    select
        members.campaign_id,
        members.is_control,
        members.has_converted,
        case
            when campaign_sizes.has_targeting_score then 'targeting score'
            else 'orders in the year before joining'
        end as ranked_by,
        ntile(10) over (
            partition by members.campaign_id
            order by
                case when campaign_sizes.has_targeting_score then members.targeting_score end desc nulls last,
                case when not campaign_sizes.has_targeting_score then members.orders_in_prior_year end desc nulls last,
                case when not campaign_sizes.has_targeting_score then members.last_order_date end desc nulls last,
                members.campaign_member_id
        ) as decile
    from members
    inner join campaign_sizes on members.campaign_id = campaign_sizes.campaign_id
    where
        campaign_sizes.targets > 0
        and campaign_sizes.controls > 0
        and campaign_sizes.members >= 10
),

deciles as (
    select
        campaign_id,
        ranked_by,
        decile,
        count(*) as members,
        count(case when not is_control then 1 end) as targets,
        count(case when is_control then 1 end) as controls,
        count(case when not is_control and has_converted then 1 end) as target_conversions,
        count(case when is_control and has_converted then 1 end) as control_conversions
    from ranked
    group by campaign_id, ranked_by, decile
),

cumulative as (
    select
        campaign_id,
        ranked_by,
        decile,
        cast(target_conversions as double) / nullif(targets, 0)
        - cast(control_conversions as double) / nullif(controls, 0) as decile_uplift,
        sum(members) over (partition by campaign_id order by decile rows unbounded preceding) as members,
        sum(targets) over (partition by campaign_id order by decile rows unbounded preceding) as targets,
        sum(controls) over (partition by campaign_id order by decile rows unbounded preceding) as controls,
        sum(target_conversions) over (
            partition by campaign_id order by decile rows unbounded preceding
        ) as target_conversions,
        sum(control_conversions) over (
            partition by campaign_id order by decile rows unbounded preceding
        ) as control_conversions
    from deciles
),

origins as (
    -- the curve starts at zero: nobody targeted, nothing gained
    select distinct
        campaign_id,
        ranked_by,
        0 as decile,
        cast(null as double) as decile_uplift,
        0 as members,
        0 as targets,
        0 as controls,
        0 as target_conversions,
        0 as control_conversions
    from deciles
),

points as (
    select
        *,
        case
            when decile = 0 then 0
            when controls > 0 then target_conversions - cast(control_conversions as double) * targets / controls
        end as incremental_conversions
    from cumulative
    union all
    select
        *,
        cast(0 as double) as incremental_conversions
    from origins
),

with_totals as (
    select
        *,
        max(case when decile = 10 then incremental_conversions end) over (partition by campaign_id)
            as total_incremental_conversions,
        max(targets) over (partition by campaign_id) as total_targets,
        lag(incremental_conversions) over (partition by campaign_id order by decile) as previous_incremental_conversions
    from points
),

qini as (
    select
        campaign_id,
        -- trapezoids of width 0.1 under the curve, minus the triangle under the random line; a null Q anywhere
        -- (a prefix without controls) leaves the coefficient unknown
        case
            when count(incremental_conversions) = count(*)
                then (
                    sum(0.05 * (previous_incremental_conversions + incremental_conversions))
                    - 0.5 * max(total_incremental_conversions)
                ) / max(total_targets)
        end as qini_coefficient
    from with_totals
    group by campaign_id
),

final as (
    select
        with_totals.campaign_id,
        with_totals.ranked_by,
        cast(with_totals.decile as {{ dbt.type_int() }}) as decile,
        with_totals.decile / 10.0 as share_of_members,
        cast(with_totals.members as {{ dbt.type_bigint() }}) as members,
        cast(with_totals.targets as {{ dbt.type_bigint() }}) as targets,
        cast(with_totals.controls as {{ dbt.type_bigint() }}) as controls,
        cast(with_totals.target_conversions as {{ dbt.type_bigint() }}) as target_conversions,
        cast(with_totals.control_conversions as {{ dbt.type_bigint() }}) as control_conversions,
        with_totals.incremental_conversions,
        with_totals.total_incremental_conversions * with_totals.decile / 10.0 as random_incremental_conversions,
        with_totals.incremental_conversions / nullif(with_totals.total_targets, 0) as incremental_conversion_share,
        with_totals.decile_uplift,
        qini.qini_coefficient
    from with_totals
    inner join qini on with_totals.campaign_id = qini.campaign_id
)

select * from final
