"""Loyalty: the programme's headline figures for executives, how the tiers are made up and where they are going,
how cohorts come back, how concentrated revenue is, and the monthly trend.

Every figure is read from a reporting mart built for this page (dbt_project/models/marts/reporting/) or from the
cohort and concentration marts; the page only picks rows, formats and draws them.
"""

import altair as alt
import pandas as pd
import streamlit as st

from dashboards.components import chart, empty, heatmap, kpi, relative_change, table
from dashboards.page import start
from dashboards.theme import MOVEMENT_COLOURS, TIER_COLOURS, colour_scale

PAGE = {
    "title": "Loyalty",
    "icon": ":material/loyalty:",
    "order": 10,
    "roles": ("executive", "analyst", "marketing", "admin"),
}

KPIS_SQL = """select kpi, label, unit, current_value, previous_value, comparison, period_start, period_end
from marts.rpt_loyalty_kpis
order by sort_order"""
TIER_MIX_SQL = """select loyalty_tier, tier_rank, customers, customer_share, net_revenue_12m, revenue_share,
    upgrade_candidates, downgrade_risks, stable
from marts.rpt_tier_mix
order by tier_rank, loyalty_tier"""
TIER_MOVEMENT_SQL = """select loyalty_tier, tier_rank, predicted_tier, movement, customers, net_revenue_12m,
    expected_spend_12m
from marts.rpt_tier_movement
order by tier_rank, loyalty_tier, predicted_tier"""
COHORTS_SHOWN = 24
MONTHS_SHOWN = 24
# The latest cohorts, months 1 to MONTHS_SHOWN after the first purchase (month 0 is every cohort's 100%).
COHORTS_SQL = """select
    strftime(cohort_month, '%Y-%m') as cohort,
    months_since_first_purchase,
    cohort_customers,
    active_customers,
    retention_rate
from marts.mart_cohort_retention
where
    cohort_month in (
        select distinct cohort_month from marts.mart_cohort_retention order by cohort_month desc limit ?
    )
    and months_since_first_purchase between 1 and ?
order by cohort_month, months_since_first_purchase"""
CONCENTRATION_SQL = """select customer_percentile, customers, net_revenue, cumulative_customer_share,
    cumulative_revenue_share
from marts.mart_revenue_concentration
order by customer_percentile"""
TRENDS_SQL = """select month_start, month_label, is_partial_month, active_customers, new_customers,
    returning_customers, orders, net_revenue, average_order_value
from marts.rpt_monthly_trends
order by month_start"""

REBUILD = "Run `crm run` again to publish a snapshot that has it."

page = start(PAGE)
formats = page.formats


def _value(unit: str, value: object) -> str:
    if unit == "share":
        return formats.share(value)
    if unit == "currency":
        return formats.money(value)
    return formats.count(value)


def _change(unit: str, current: object, previous: object) -> str | None:
    """A share changes in percentage points, a count or an amount in per cent of its previous value."""
    if unit == "share":
        return None if current is None or previous is None else formats.points(current - previous)
    change = relative_change(current, previous)
    if change is None:
        return None
    return ("+" if change >= 0 else "") + formats.share(change)


def _compared(period: str, figures: list[tuple[str, str, bool]]) -> str:
    """What the changes of the figures of one period are against, in words, naming any figure without one."""
    against = list(dict.fromkeys(comparison for _, comparison, compared in figures if compared))
    without = [(label, comparison) for label, comparison, compared in figures if not compared]
    if not against:
        return f"{period}: {' / '.join(dict.fromkeys(comparison for _, comparison in without))}."
    words = f"{period}; changes against {' / '.join(against)}"
    if without:
        words += f" ({'; '.join(f'{label.lower()}: {comparison}' for label, comparison in without)})"
    return words + "."


def _missing(value: object) -> object:
    return None if value is None or value != value else value  # NaN from a null double


# --- headline figures ------------------------------------------------------------------------------------------
if not page.has("marts.rpt_loyalty_kpis"):
    empty(f"This snapshot has no loyalty figures (marts.rpt_loyalty_kpis). {REBUILD}")
else:
    kpis = page.query(KPIS_SQL)
    tiles = st.columns(3)
    said = {}  # what the changes are against, in words: activity figures, then scores
    for index, row in enumerate(kpis.itertuples(index=False)):
        current, previous = _missing(row.current_value), _missing(row.previous_value)
        if pd.notna(row.period_start):  # an activity figure
            period = f"Orders from {row.period_start:%Y-%m-%d} to {row.period_end:%Y-%m-%d}"
        else:
            period = f"This run's scores (as of {page.as_of:%Y-%m-%d})"
        compared = f"compared with {row.comparison}" if previous is not None else f"no comparison: {row.comparison}"
        said.setdefault(period, []).append((row.label, row.comparison, previous is not None))
        kpi(
            tiles[index % 3],
            row.label,
            _value(row.unit, current),
            _change(row.unit, current, previous),
            help=f"{period}; {compared}.",
            inverse=row.kpi == "revenue_at_risk",
        )
    units = " Shares change in percentage points (pp), the others in per cent."
    compared = any(has_previous for figures in said.values() for *_, has_previous in figures)
    st.caption(" ".join(_compared(period, figures) for period, figures in said.items()) + (units if compared else ""))

# --- tiers -----------------------------------------------------------------------------------------------------
st.subheader("Loyalty tiers")
tiers = page.query(TIER_MIX_SQL) if page.has("marts.rpt_tier_mix") else None
if tiers is None or tiers.empty:
    empty(
        "No customer has a loyalty tier in this snapshot (marts.rpt_tier_mix is "
        f"{'empty' if tiers is not None else 'missing'}): tiers need customers with orders. "
        + ("" if tiers is not None else REBUILD)
    )
else:
    order = list(tiers["loyalty_tier"])
    colours = colour_scale(TIER_COLOURS, order)
    left, right = st.columns(2)
    for column, (field, title, kind) in zip(
        (left, right),
        (("customers", "Customers", ",.0f"), ("net_revenue_12m", f"Net revenue, last 12 months ({formats.currency})",
                                               ",.0f")),
        strict=True,
    ):  # fmt: skip
        bars = (
            alt.Chart(tiers, title=f"{title} by tier")
            .mark_bar()
            .encode(
                x=alt.X(f"{field}:Q", title=title),
                y=alt.Y("loyalty_tier:N", title="Loyalty tier", sort=order),
                color=alt.Color("loyalty_tier:N", scale=colours, legend=None),
                tooltip=[
                    alt.Tooltip("loyalty_tier:N", title="Loyalty tier"),
                    alt.Tooltip(f"{field}:Q", title=title, format=kind),
                    alt.Tooltip("customer_share:Q", title="Share of customers", format=".1%"),
                    alt.Tooltip("revenue_share:Q", title="Share of revenue", format=".1%"),
                ],
            )
            .properties(height=200)
        )
        with column:
            chart(bars)
    table(
        tiers,
        {
            "loyalty_tier": ("Loyalty tier", "text"),
            "customers": ("Customers", "count"),
            "customer_share": ("Share of customers", "share"),
            "net_revenue_12m": ("Net revenue, last 12 months", "money"),
            "revenue_share": ("Share of revenue", "share"),
            "upgrade_candidates": ("Upgrade candidates", "count"),
            "downgrade_risks": ("Downgrade risks", "count"),
            "stable": ("Stable", "count"),
        },
        formats,
        "Tier mix",
    )
    st.caption(
        "Upgrade candidates and downgrade risks: customers whose predicted spend over the next 12 months would put "
        "them in a higher or lower tier (the tier-movement model); customers it did not score count in neither."
    )

st.subheader("Where the tiers are going")
movement = page.query(TIER_MOVEMENT_SQL) if page.has("marts.rpt_tier_movement") else None
if movement is None or movement.empty:
    empty(
        "No tier-movement scores this run: the model predicts each tier from the lifetime-value model's expected "
        "spend, and that model did not score customers (see Model quality for why). "
        + ("" if movement is not None else REBUILD)
    )
else:
    tiers_present = set(movement["loyalty_tier"]) | set(movement["predicted_tier"])
    order = [tier for tier in TIER_COLOURS if tier in tiers_present] + sorted(tiers_present - set(TIER_COLOURS))
    tooltip = [
        alt.Tooltip("loyalty_tier:N", title="Current tier"),
        alt.Tooltip("predicted_tier:N", title="Predicted tier"),
        alt.Tooltip("movement:N", title="Movement"),
        alt.Tooltip("customers:Q", title="Customers", format=",.0f"),
        alt.Tooltip("net_revenue_12m:Q", title="Net revenue, last 12 months", format=",.0f"),
        alt.Tooltip("expected_spend_12m:Q", title="Expected spend, next 12 months", format=",.0f"),
    ]
    moves = [value for value in MOVEMENT_COLOURS if value in set(movement["movement"])]
    # each current tier's customers split (as shares) by predicted tier, and by the movement that makes
    split_by = {
        "predicted_tier": ("Predicted tier in 12 months", colour_scale(TIER_COLOURS, order)),
        "movement": ("Movement", colour_scale(MOVEMENT_COLOURS, moves)),
    }
    for column, (field, (legend, scale)) in zip(st.columns(2), split_by.items(), strict=True):
        bars = (
            alt.Chart(movement, title=f"Each tier's customers by {legend.lower()}")
            .mark_bar()
            .encode(
                x=alt.X("customers:Q", title="Share of the tier's customers", stack="normalize",
                        axis=alt.Axis(format="%")),
                y=alt.Y("loyalty_tier:N", title="Current tier", sort=order),
                color=alt.Color(f"{field}:N", title=legend, scale=scale),
                tooltip=tooltip,
            )
            .properties(height=220)
        )  # fmt: skip
        with column:
            chart(bars)
    table(
        movement,
        {
            "loyalty_tier": ("Current tier", "text"),
            "predicted_tier": ("Predicted tier", "text"),
            "movement": ("Movement", "text"),
            "customers": ("Customers", "count"),
            "net_revenue_12m": ("Net revenue, last 12 months", "money"),
            "expected_spend_12m": ("Expected spend, next 12 months", "money"),
        },
        formats,
        "Tier movement",
    )

# --- cohorts ---------------------------------------------------------------------------------------------------
st.subheader("Cohort retention")
cohorts = page.query(COHORTS_SQL, (COHORTS_SHOWN, MONTHS_SHOWN)) if page.has("marts.mart_cohort_retention") else None
if cohorts is None or cohorts.empty:
    empty(
        "No cohort has a month after its first purchase yet: retention needs at least two months of orders. "
        + ("" if cohorts is not None else REBUILD)
    )
else:
    st.caption(
        f"The share of each cohort (customers by the month of their first order) who ordered again 1, 2, ... "
        f"months later. The latest {COHORTS_SHOWN} cohorts and the first {MONTHS_SHOWN} months are shown, for "
        "legibility; month 0 (the first order, 100% by definition) is left out. The latest month may be partial."
    )
    chart(
        heatmap(
            cohorts,
            "months_since_first_purchase",
            "cohort",
            "retention_rate",
            x_title="Months since the first order",
            y_title="Cohort (month of the first order)",
            value_title="Share who ordered",
            value_format=".0%",
        ).properties(height=max(200, 22 * cohorts["cohort"].nunique()))
    )

# --- concentration ---------------------------------------------------------------------------------------------
st.subheader("Revenue concentration")
pareto = page.query(CONCENTRATION_SQL) if page.has("marts.mart_revenue_concentration") else None
if pareto is None or pareto.empty:
    empty("No customer has net revenue yet, so there is nothing to rank. " + ("" if pareto is not None else REBUILD))
else:
    top = st.slider("Top N% of customers", min_value=1, max_value=100, value=20, format="%d%%")
    # with fewer than 100 customers some percentiles hold nobody: read the last one up to N
    reached = pareto[pareto["customer_percentile"] <= top]
    row = (reached if not reached.empty else pareto).iloc[-1 if not reached.empty else 0]
    st.markdown(
        f"#### The top {formats.share(row['cumulative_customer_share'], 0)} of customers bring "
        f"{formats.share(row['cumulative_revenue_share'], 0)} of net revenue"
    )
    st.caption("Customers ranked by lifetime net revenue, from the highest; the grey line is an even spread.")
    curve = alt.Chart(pareto).mark_line().encode(
        x=alt.X("cumulative_customer_share:Q", title="Share of customers (highest revenue first)",
                axis=alt.Axis(format="%")),
        y=alt.Y("cumulative_revenue_share:Q", title="Share of net revenue", axis=alt.Axis(format="%")),
        tooltip=[alt.Tooltip("cumulative_customer_share:Q", title="Top share of customers", format=".0%"),
                 alt.Tooltip("cumulative_revenue_share:Q", title="Their share of net revenue", format=".1%"),
                 alt.Tooltip("net_revenue:Q", title="Net revenue of this percentile", format=",.0f")],
    )  # fmt: skip
    even = (
        alt.Chart(pareto)
        .mark_line(strokeDash=[4, 4], color="#9AA5B1")
        .encode(x="cumulative_customer_share:Q", y="cumulative_customer_share:Q")
    )
    marked = (
        alt.Chart(pareto[pareto["customer_percentile"] == row["customer_percentile"]])
        .mark_point(size=90, filled=True)
        .encode(x="cumulative_customer_share:Q", y="cumulative_revenue_share:Q")
    )
    chart((even + curve + marked).properties(height=300))

# --- trends ----------------------------------------------------------------------------------------------------
st.subheader("Trends by month")
trends = page.query(TRENDS_SQL) if page.has("marts.rpt_monthly_trends") else None
if trends is None or trends.empty:
    empty("No orders in this snapshot, so no month to show. " + ("" if trends is not None else REBUILD))
else:
    partial = trends[trends["is_partial_month"]]
    if not partial.empty:
        st.caption(
            f"{partial['month_label'].iloc[0]} is partial: it holds the orders up to the as-of date "
            f"({page.as_of:%Y-%m-%d}) only, and is drawn lighter."
        )
    opacity = alt.condition("datum.is_partial_month", alt.value(0.4), alt.value(1.0))
    revenue = (
        alt.Chart(trends, title=f"Net revenue by month ({formats.currency})")
        .mark_bar()
        .encode(
            x=alt.X("month_label:O", title="Month"),
            y=alt.Y("net_revenue:Q", title=f"Net revenue ({formats.currency})"),
            opacity=opacity,
            tooltip=[
                alt.Tooltip("month_label:O", title="Month"),
                alt.Tooltip("net_revenue:Q", title="Net revenue", format=",.0f"),
                alt.Tooltip("orders:Q", title="Orders", format=",.0f"),
                alt.Tooltip("average_order_value:Q", title="Average order value", format=",.2f"),
                alt.Tooltip("is_partial_month:N", title="Partial month"),
            ],
        )
        .properties(height=260)
    )
    customers = (
        alt.Chart(trends, title="Active customers by month: new and returning")
        .transform_fold(["returning_customers", "new_customers"], as_=["kind", "customers"])
        .transform_calculate(kind="datum.kind == 'new_customers' ? 'new' : 'returning'")
        .mark_bar()
        .encode(
            x=alt.X("month_label:O", title="Month"),
            y=alt.Y("customers:Q", title="Active customers", stack="zero"),
            color=alt.Color("kind:N", title="Customers", sort=["returning", "new"]),
            order=alt.Order("kind:N", sort="descending"),
            opacity=opacity,
            tooltip=[
                alt.Tooltip("month_label:O", title="Month"),
                alt.Tooltip("kind:N", title="Customers"),
                alt.Tooltip("customers:Q", title="Count", format=",.0f"),
                alt.Tooltip("active_customers:Q", title="Active customers", format=",.0f"),
            ],
        )
        .properties(height=260)
    )
    chart(revenue)
    chart(customers)
    with st.expander("Figures by month"):
        table(
            trends.sort_values("month_start", ascending=False),
            {
                "month_label": ("Month", "text"),
                "active_customers": ("Active customers", "count"),
                "new_customers": ("New customers", "count"),
                "returning_customers": ("Returning customers", "count"),
                "orders": ("Orders", "count"),
                "net_revenue": ("Net revenue", "money"),
                "average_order_value": ("Average order value", "money"),
                "is_partial_month": ("Partial month", "text"),
            },
            formats,
            "Trends by month",
        )
