"""Segments: for analysts and marketing, the RFM grid, the RFM and behavioural segments side by side, how customers
moved between segments since the previous run, and a pivot of sales by any two dimensions.

Figures are read from the reporting marts (dbt_project/models/marts/reporting/); the pivot's SQL is built by
dashboards/pivot.py from its whitelists only, with the chosen filter values bound as parameters.
"""

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import pivot
from dashboards.components import chart, empty, heatmap, table
from dashboards.page import start
from dashboards.theme import HEATMAP_SCHEME, INK, SEGMENT_COLOURS, TIER_COLOURS, colour_scale

PAGE = {
    "title": "Segments",
    "icon": ":material/donut_small:",
    "order": 20,
    "roles": ("analyst", "marketing", "admin"),
}

RFM_GRID_SQL = """select recency_score, frequency_score, customers, monetary, average_monetary, share_of_customers,
    share_of_monetary
from marts.rpt_rfm_grid
order by recency_score, frequency_score"""
PROFILES_SQL = """select segmentation, segment, customers, customer_share, average_recency_days, average_orders,
    average_monetary, net_revenue_12m, average_clv, average_p_alive, average_churn_probability, revenue_at_risk,
    description
from marts.rpt_segment_profiles
order by segmentation, sort_order"""
MIGRATION_SQL = """select from_segment, to_segment, customers, from_share, previous_as_of
from marts.rpt_segment_migration
order by from_segment, to_segment"""
DATE_BOUNDS_SQL = "select min(order_date) as first_date, max(order_date) as last_date from marts.rpt_sales_lines"

REBUILD = "Run `crm run` again to publish a snapshot that has it."
NOT_SCORED = "(not scored)"
SEGMENTATIONS = {"rfm": "RFM segments", "behaviour": "Behavioural segments"}
# What the segment bars can show: column -> (label, Altair number format).
BAR_MEASURES = {
    "customers": ("Customers", ",.0f"),
    "net_revenue_12m": ("Net revenue, last 12 months", ",.0f"),
    "revenue_at_risk": ("Revenue at risk", ",.0f"),
    "average_clv": ("Average lifetime value", ",.2f"),
}
MEANING_COLOURS = {"tier": TIER_COLOURS, "segment": SEGMENT_COLOURS}
PROFILE_COLUMNS = {
    "segment": ("Segment", "text"),
    "customers": ("Customers", "count"),
    "customer_share": ("Share of customers", "share"),
    "average_recency_days": ("Average days since last order", "number"),
    "average_orders": ("Average orders (RFM window)", "number"),
    "average_monetary": ("Average revenue (RFM window)", "money"),
    "net_revenue_12m": ("Revenue, last 12 months", "money"),
    "average_clv": ("Average lifetime value", "money"),
    "average_p_alive": ("Average P(alive)", "share"),
    "average_churn_probability": ("Average churn probability", "share"),
    "revenue_at_risk": ("Revenue at risk", "money"),
}

page = start(PAGE)
formats = page.formats


def _segment_order(values) -> list[str]:
    """Segments from the most to the least valuable (the theme's order), then any others, '(not scored)' first."""
    present = set(values)
    known = [segment for segment in [NOT_SCORED, *SEGMENT_COLOURS] if segment in present]
    return known + sorted(present - set(known))


# --- RFM grid --------------------------------------------------------------------------------------------------
st.subheader("RFM grid")
grid = page.query(RFM_GRID_SQL) if page.has("marts.rpt_rfm_grid") else None
if grid is None or (grid["customers"] == 0).all():  # the mart lists all 25 cells, empty ones with zero customers
    empty(
        "No customer has RFM scores in this snapshot: scoring needs customers with orders in the RFM window "
        "(see Model quality). " + ("" if grid is not None else REBUILD)
    )
else:
    st.caption(
        "Customers by recency score (5: ordered most recently) and frequency score (5: ordered most often), "
        "each from 1 to 5; monetary is their net revenue over the RFM window."
    )
    left, right = st.columns(2)
    with left:
        chart(
            heatmap(grid, "recency_score", "frequency_score", "customers", x_title="Recency score",
                    y_title="Frequency score", value_title="Customers", value_format=",.0f")
            .properties(title="Customers", height=300)
        )  # fmt: skip
    with right:
        chart(
            heatmap(grid, "recency_score", "frequency_score", "monetary", x_title="Recency score",
                    y_title="Frequency score", value_title=f"Monetary ({formats.currency})", value_format=",.0f")
            .properties(title=f"Monetary value ({formats.currency})", height=300)
        )  # fmt: skip
    with st.expander("Figures of the grid"):
        table(
            grid,
            {
                "recency_score": ("Recency score", "text"),
                "frequency_score": ("Frequency score", "text"),
                "customers": ("Customers", "count"),
                "share_of_customers": ("Share of customers", "share"),
                "monetary": ("Monetary", "money"),
                "share_of_monetary": ("Share of monetary", "share"),
                "average_monetary": ("Average monetary", "money"),
            },
            formats,
            "RFM grid",
        )

# --- segment profiles ------------------------------------------------------------------------------------------
st.subheader("Segment profiles")
profiles = page.query(PROFILES_SQL) if page.has("marts.rpt_segment_profiles") else None
if profiles is None or profiles.empty:
    empty(
        "No segment profiles in this snapshot: neither segmentation scored customers (see Model quality). "
        + ("" if profiles is not None else REBUILD)
    )
else:
    shown = st.segmented_control(
        "Bars show", list(BAR_MEASURES), format_func=lambda column: BAR_MEASURES[column][0], default="customers"
    )
    shown = shown or "customers"  # a click on the chosen option clears it
    measure, measure_format = BAR_MEASURES[shown]
    columns = st.columns(2)
    for column, (segmentation, title) in zip(columns, SEGMENTATIONS.items(), strict=True):
        rows = profiles[profiles["segmentation"] == segmentation]
        with column:
            if rows.empty:
                empty(f"No {title.lower()} this run (see Model quality for why).")
                continue
            order = list(rows["segment"])
            chart(
                alt.Chart(rows, title=title)
                .mark_bar()
                .encode(
                    x=alt.X(f"{shown}:Q", title=measure),
                    y=alt.Y("segment:N", title="Segment", sort=order, axis=alt.Axis(labelLimit=220)),
                    color=alt.Color("segment:N", scale=colour_scale(SEGMENT_COLOURS, order), legend=None),
                    tooltip=[
                        alt.Tooltip("segment:N", title="Segment"),
                        alt.Tooltip(f"{shown}:Q", title=measure, format=measure_format),
                        alt.Tooltip("customer_share:Q", title="Share of customers", format=".1%"),
                    ],
                )
                .properties(height=28 * len(rows) + 60)
            )
    for segmentation, title in SEGMENTATIONS.items():
        rows = profiles[profiles["segmentation"] == segmentation]
        if rows.empty:
            continue
        st.markdown(f"**{title}**")
        table(rows, PROFILE_COLUMNS, formats, title)
        described = rows[rows["description"].notna()]
        if not described.empty:
            st.markdown("\n".join(f"- **{row.segment}**: {row.description}" for row in described.itertuples()))

# --- migration -------------------------------------------------------------------------------------------------
st.subheader("Moves between RFM segments since the previous run")
migration = page.query(MIGRATION_SQL) if page.has("marts.rpt_segment_migration") else None
if migration is None or migration.empty:
    empty("No RFM segments this run, so no moves to show. " + ("" if migration is not None else REBUILD))
elif migration["previous_as_of"].isna().all():
    empty(
        "First run: no earlier run to compare. Every customer is new to the segments; the moves appear after the "
        "next run."
    )
else:
    previous = pd.Timestamp(migration["previous_as_of"].dropna().iloc[0])
    st.caption(
        f"From each customer's segment in the run as of {previous:%Y-%m-%d} to this run's ({page.as_of:%Y-%m-%d}); "
        f"each cell is the share of the 'from' segment's customers; {NOT_SCORED} is a customer one run did not score."
    )
    froms, tos = _segment_order(migration["from_segment"]), _segment_order(migration["to_segment"])
    base = alt.Chart(migration).encode(
        x=alt.X("to_segment:N", title=f"Segment as of {page.as_of:%Y-%m-%d}", sort=tos,
                axis=alt.Axis(labelAngle=-30, labelLimit=160)),
        y=alt.Y("from_segment:N", title=f"Segment as of {previous:%Y-%m-%d}", sort=froms),
    )  # fmt: skip
    cells = base.mark_rect().encode(
        color=alt.Color("from_share:Q", title="Share of the 'from' segment", scale=alt.Scale(scheme=HEATMAP_SCHEME),
                        legend=alt.Legend(format="%")),
        tooltip=[alt.Tooltip("from_segment:N", title="From"), alt.Tooltip("to_segment:N", title="To"),
                 alt.Tooltip("customers:Q", title="Customers", format=",.0f"),
                 alt.Tooltip("from_share:Q", title="Share of the 'from' segment", format=".1%")],
    )  # fmt: skip
    labels = base.mark_text(fontSize=11).encode(
        text=alt.Text("from_share:Q", format=".0%"),
        color=alt.condition("datum.from_share > 0.5", alt.value("white"), alt.value(INK)),
    )
    chart((cells + labels).properties(height=30 * len(froms) + 200))
    table(
        migration,
        {
            "from_segment": ("From segment", "text"),
            "to_segment": ("To segment", "text"),
            "customers": ("Customers", "count"),
            "from_share": ("Share of the 'from' segment", "share"),
        },
        formats,
        "Segment moves",
    )

# --- pivot -----------------------------------------------------------------------------------------------------
st.subheader("Sales pivot")
if not page.has(pivot.SOURCE):
    empty(f"This snapshot has no sales lines for the pivot ({pivot.SOURCE}). {REBUILD}")
    st.stop()


def _level(label: str, key: str, default: str, *, optional: bool = False) -> str | None:
    """A dimension chosen as a hierarchy, then the level to drill to when it has more than one."""
    choices = (["None"] if optional else []) + list(pivot.HIERARCHIES)
    hierarchy = st.selectbox(label, choices, key=f"{key}_hierarchy", index=choices.index(default))
    if hierarchy == "None":
        return None
    levels = pivot.HIERARCHIES[hierarchy]
    if len(levels) == 1:
        return levels[0]
    return st.selectbox(
        f"{label}: level", levels, key=f"{key}_level", format_func=lambda level: pivot.DIMENSION_LABELS[level]
    )


left, middle, right = st.columns(3)
with left:
    rows = _level("Rows", "pivot_rows", "Date")
with middle:
    columns = _level("Columns", "pivot_columns", "Geography", optional=True)
with right:
    measure = st.selectbox(
        "Measure", list(pivot.MEASURES), format_func=lambda name: pivot.MEASURE_LABELS[name], key="pivot_measure"
    )
if columns == rows:
    st.warning("Rows and columns are the same dimension: choose another for the columns.")
    columns = None

bounds = page.query(DATE_BOUNDS_SQL).iloc[0]
filters: dict[str, list[str]] = {}
date_range = None
with st.expander("Filters"):
    if pd.notna(bounds["first_date"]):
        first, last = bounds["first_date"].date(), bounds["last_date"].date()
        chosen = st.date_input("Order dates", (first, last), min_value=first, max_value=last, key="pivot_dates")
        # a range being typed has one end only; the whole range is no filter (lines without a date stay in)
        if isinstance(chosen, tuple) and len(chosen) == 2 and chosen != (first, last):
            date_range = (chosen[0], chosen[1])
    filter_columns = st.columns(3)
    for index, dimension in enumerate(("region", "country", "category", "channel", "tier", "segment")):
        choices = page.query(pivot.values_sql(dimension))["value"].tolist()
        with filter_columns[index % 3]:
            filters[dimension] = st.multiselect(
                pivot.DIMENSION_LABELS[dimension], choices, key=f"pivot_filter_{dimension}", placeholder="All"
            )

sql, parameters = pivot.pivot_sql(rows, measure, columns, filters, date_range)
result = page.query(sql, parameters)
kind = pivot.MEASURE_KINDS[measure]
measure_label = pivot.MEASURE_LABELS[measure]
if measure in ("net_revenue", "margin", "average_order_value"):
    measure_label = f"{measure_label} ({formats.currency})"
cells = pivot.cells(result)
if cells.empty:
    empty("No order line matches these filters: widen the dates or clear a filter.")
    st.stop()

wide = pivot.wide(result, rows, columns)
row_label = pivot.DIMENSION_LABELS[rows]
labels = {"row": (row_label, "text")}
labels |= {name: (name.removeprefix("c:"), kind) for name in wide.columns if name.startswith("c:")}
labels["total"] = (pivot.TOTAL if columns else measure_label, kind)
title = f"{pivot.MEASURE_LABELS[measure]} by {row_label.lower()}"
if columns:
    title += f" and {pivot.DIMENSION_LABELS[columns].lower()}"
table(wide, labels, formats, title)

row_order = [value for value in wide["row"] if value != pivot.TOTAL]
number_format = ",.2f" if measure == "average_order_value" else ",.0f"
if columns:
    column_order = [name.removeprefix("c:") for name in wide.columns if name.startswith("c:")]
    column_label = pivot.DIMENSION_LABELS[columns]
    base = alt.Chart(cells).encode(
        x=alt.X("column_value:N", title=column_label, sort=column_order, axis=alt.Axis(labelAngle=-40, labelLimit=140)),
        y=alt.Y("row_value:N", title=row_label, sort=row_order),
    )
    figure = base.mark_rect().encode(
        color=alt.Color("value:Q", title=measure_label, scale=alt.Scale(scheme=HEATMAP_SCHEME)),
        tooltip=[alt.Tooltip("row_value:N", title=row_label), alt.Tooltip("column_value:N", title=column_label),
                 alt.Tooltip("value:Q", title=measure_label, format=number_format)],
    )  # fmt: skip
    if len(row_order) <= 40 and len(column_order) <= 12:  # the numbers fit in their cells
        figure += base.mark_text(fontSize=10).encode(
            text=alt.Text("value:Q", format=number_format),
            color=alt.condition(alt.datum.value > float(cells["value"].max()) / 2, alt.value("white"), alt.value(INK)),
        )
    # Streamlit fits the whole chart, axes and legend included, into the height: leave them room
    chart(figure.properties(title=title, height=24 * len(row_order) + 220))
else:
    tooltip = [alt.Tooltip("row_value:N", title=row_label),
               alt.Tooltip("value:Q", title=measure_label, format=number_format)]  # fmt: skip
    if rows in pivot.DATE_LEVELS:
        figure = (
            alt.Chart(cells)
            .mark_bar()
            .encode(
                x=alt.X("row_value:O", title=row_label, sort=row_order),
                y=alt.Y("value:Q", title=measure_label),
                tooltip=tooltip,
            )
        )
    else:
        figure = (
            alt.Chart(cells)
            .mark_bar()
            .encode(
                x=alt.X("value:Q", title=measure_label),
                y=alt.Y("row_value:N", title=row_label, sort=row_order, axis=alt.Axis(labelLimit=200)),
                tooltip=tooltip,
            )
        )
        if rows in MEANING_COLOURS:  # a tier or a segment keeps its colour
            scale = colour_scale(MEANING_COLOURS[rows], row_order)
            figure = figure.encode(color=alt.Color("row_value:N", scale=scale, legend=None))
    chart(figure.properties(title=title, height=300 if rows in pivot.DATE_LEVELS else 24 * len(row_order) + 80))
