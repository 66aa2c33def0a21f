"""The pivot of the Segments page: a slice of marts.rpt_sales_lines by rows, optional columns, one measure, filters.

The user picks names from lists; only names found in the constants below reach the SQL text, as the SQL those
constants hold, and anything else is refused with a ValueError before any SQL is written. Filter values and dates
are bound parameters. Totals come from the same query (grouping sets), because the distinct counts (orders,
customers) and the average order value cannot be added up from the cells.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

import pandas as pd

SOURCE = "marts.rpt_sales_lines"

# Dimension id -> its column in marts.rpt_sales_lines.
DIMENSIONS = {
    "year": "year_label",
    "quarter": "quarter_label",
    "month": "month_label",
    "region": "region_name",
    "country": "country_code",
    "category": "category_name",
    "channel": "sales_channel",
    "tier": "loyalty_tier",
    "segment": "rfm_segment",
}
DIMENSION_LABELS = {
    "year": "Year",
    "quarter": "Quarter",
    "month": "Month",
    "region": "Region",
    "country": "Country",
    "category": "Category",
    "channel": "Sales channel",
    "tier": "Loyalty tier",
    "segment": "RFM segment",
}
# What the user chooses first, then the level to drill to (the first level is the default).
HIERARCHIES = {
    "Date": ("year", "quarter", "month"),
    "Geography": ("region", "country"),
    "Category": ("category",),
    "Sales channel": ("channel",),
    "Loyalty tier": ("tier",),
    "RFM segment": ("segment",),
}
DATE_LEVELS = frozenset(HIERARCHIES["Date"])

# Measure id -> its SQL aggregate over marts.rpt_sales_lines.
MEASURES = {
    "net_revenue": "sum(net_revenue)",
    "margin": "sum(margin)",
    "units": "sum(units)",
    "orders": "count(distinct order_id)",
    "customers": "count(distinct customer_id)",
    "average_order_value": "sum(net_revenue) / nullif(count(distinct order_id), 0)",
}
MEASURE_LABELS = {
    "net_revenue": "Net revenue",
    "margin": "Margin",
    "units": "Units",
    "orders": "Orders",
    "customers": "Customers",
    "average_order_value": "Average order value",
}
# How each measure is written (a dashboards.theme.Formats method).
MEASURE_KINDS = {
    "net_revenue": "money",
    "margin": "money",
    "units": "count",
    "orders": "count",
    "customers": "count",
    "average_order_value": "money",
}
TOTAL = "Total"


def _dimension(name: object) -> str:
    if not isinstance(name, str) or name not in DIMENSIONS:
        raise ValueError(f"{name!r} is not a pivot dimension (choose from {', '.join(DIMENSIONS)})")
    return DIMENSIONS[name]


def _measure(name: object) -> str:
    if not isinstance(name, str) or name not in MEASURES:
        raise ValueError(f"{name!r} is not a pivot measure (choose from {', '.join(MEASURES)})")
    return MEASURES[name]


def _conditions(
    filters: Mapping[str, Iterable[str]], date_range: tuple[date, date] | None
) -> tuple[list[str], list[object]]:
    """The where-clause conditions (text from the whitelist and ``?``) and the values they bind."""
    conditions: list[str] = []
    parameters: list[object] = []
    for name, chosen in filters.items():
        column = _dimension(name)
        values = list(chosen)
        if not values:  # nothing chosen: no filter on this dimension
            continue
        if not all(isinstance(value, str) for value in values):
            raise ValueError(f"the values of the filter {name!r} must be text")
        placeholders = ", ".join("?" for _ in values)
        conditions.append(f"{column} in ({placeholders})")
        parameters.extend(values)
    if date_range is not None:
        first, last = date_range
        if not (isinstance(first, date) and isinstance(last, date)):
            raise ValueError("the date range must be two dates")
        conditions.append("order_date between ? and ?")
        parameters.extend([first, last])
    return conditions, parameters


def pivot_sql(
    rows: str,
    measure: str,
    columns: str | None = None,
    filters: Mapping[str, Iterable[str]] | None = None,
    date_range: tuple[date, date] | None = None,
) -> tuple[str, tuple]:
    """The SQL of one pivot and its bound parameters.

    The result has one row per cell and per total: ``row_value``, ``column_value`` (null without columns),
    ``is_row_total`` (true on the total over all rows: its ``row_value`` is null), ``is_column_total`` (the same
    over all columns; without columns only the grand total has it), ``value``.
    """
    row_column = _dimension(rows)
    aggregate = _measure(measure)
    conditions, parameters = _conditions(filters or {}, date_range)
    where = f"where {' and '.join(conditions)}" if conditions else ""
    if columns is None:
        sql = f"""
select
    {row_column} as row_value,
    cast(null as varchar) as column_value,
    grouping({row_column}) = 1 as is_row_total,
    grouping({row_column}) = 1 as is_column_total,
    {aggregate} as value
from {SOURCE}
{where}
group by grouping sets (({row_column}), ())
"""
        return sql, tuple(parameters)
    if columns == rows:
        raise ValueError("rows and columns must be different dimensions")
    column_column = _dimension(columns)
    sql = f"""
select
    {row_column} as row_value,
    {column_column} as column_value,
    grouping({row_column}) = 1 as is_row_total,
    grouping({column_column}) = 1 as is_column_total,
    {aggregate} as value
from {SOURCE}
{where}
group by grouping sets (({row_column}, {column_column}), ({row_column}), ({column_column}), ())
"""
    return sql, tuple(parameters)


def values_sql(dimension: str) -> str:
    """The SQL listing the values of ``dimension`` (for a filter's choices)."""
    column = _dimension(dimension)
    return f"select distinct {column} as value from {SOURCE} where {column} is not null order by value"


def cells(result: pd.DataFrame) -> pd.DataFrame:
    """The cells of a pivot result without its totals (what a chart shows)."""
    return result[~result["is_row_total"] & ~result["is_column_total"]]


def wide(result: pd.DataFrame, rows: str, columns: str | None = None) -> pd.DataFrame:
    """A pivot result reshaped for reading: one row per row value and a last ``Total`` row; one column per column
    value and a last ``Total`` column (only the total without columns). Nothing is added up here: each total is the
    query's own. Dates run in time order, other values from the largest total down.

    Columns: ``row``, then ``c:<column value>`` for each column value, then ``total``."""
    is_total = result["is_column_total"] | (columns is None)  # without columns, a row's figure is its total
    frame = result.assign(
        row=result["row_value"].fillna("Unknown").where(~result["is_row_total"], TOTAL),
        column=("c:" + result["column_value"].fillna("Unknown").astype("string")).where(~is_total, "total"),
    )
    table = frame.pivot(index="row", columns="column", values="value")
    body = _ordered(table.drop(index=TOTAL, errors="ignore"), "total", rows)
    order = [name for name in table.columns if name != "total"]
    if TOTAL in table.index:
        body = pd.concat([body, table.loc[[TOTAL]]])
        order = list(_ordered(table.loc[TOTAL, order].to_frame("total"), "total", columns).index)
    return body[[*order, "total"]].reset_index()


def _ordered(frame: pd.DataFrame, by: str, dimension: str | None) -> pd.DataFrame:
    if dimension in DATE_LEVELS:
        return frame.sort_index()
    return frame.sort_values(by, ascending=False, na_position="last", kind="stable")
