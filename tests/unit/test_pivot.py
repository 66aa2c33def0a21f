"""The pivot's SQL: only whitelisted names reach it, values are bound, and its figures equal a plain group-by."""

import random
from datetime import date, timedelta

import duckdb
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboards import pivot

REGIONS = {"ES": "Southern Europe", "IT": "Southern Europe", "FR": "Western Europe", "DE": "Western Europe"}
SEGMENTS = ["champions", "can't lose them", "lost", "unscored"]
MONTHS = 18


def _lines(seed: int = 11, orders: int = 120) -> pd.DataFrame:
    """Order lines shaped like marts.rpt_sales_lines: several lines an order, several orders a customer."""
    generator = random.Random(seed)
    rows = []
    for number in range(orders):
        day = date(2025, 1, 1) + timedelta(days=generator.randrange(MONTHS * 30))
        country = generator.choice(list(REGIONS))
        customer = f"C{generator.randrange(40):03d}"
        channel = generator.choice(["web", "store", "phone"])
        for _ in range(generator.randint(1, 3)):
            revenue = round(generator.uniform(-20, 200), 2)  # a line returned for more than it cost is negative
            rows.append(
                {
                    "order_date": day,
                    "year_label": f"{day.year}",
                    "quarter_label": f"{day.year}-Q{(day.month - 1) // 3 + 1}",
                    "month_label": f"{day.year}-{day.month:02d}",
                    "region_name": REGIONS[country],
                    "country_code": country,
                    "category_name": generator.choice(["Lighting", "Skincare", "Unknown"]),
                    "sales_channel": channel,
                    "loyalty_tier": generator.choice(["gold", "silver", "bronze"]),
                    "rfm_segment": generator.choice(SEGMENTS),
                    "order_id": f"SO{number:05d}",
                    "customer_id": customer,
                    "net_revenue": revenue,
                    "margin": round(revenue * generator.uniform(0.1, 0.5), 2),
                    "units": generator.randint(0, 4),
                }
            )
    return pd.DataFrame(rows)


LINES = _lines()


@pytest.fixture(scope="module")
def connection():
    with duckdb.connect() as connection:
        connection.execute("create schema marts")
        connection.register("lines", LINES)
        connection.execute(
            "create table marts.rpt_sales_lines as select * replace (cast(net_revenue as decimal(38, 2)) as "
            "net_revenue, cast(margin as decimal(38, 2)) as margin) from lines"
        )
        yield connection


def _run(connection, *args, **kwargs) -> pd.DataFrame:
    sql, parameters = pivot.pivot_sql(*args, **kwargs)
    return connection.execute(sql, list(parameters)).df()


def _expected(frame: pd.DataFrame, measure: str, keys: list[str]) -> pd.Series:
    """The measure by ``keys`` (every line when no key), computed by pandas from the lines themselves."""
    groups = frame.groupby(keys) if keys else frame.assign(everything=1).groupby("everything")
    figures = {
        "net_revenue": lambda: groups["net_revenue"].sum(),
        "margin": lambda: groups["margin"].sum(),
        "units": lambda: groups["units"].sum(),
        "orders": lambda: groups["order_id"].nunique(),
        "customers": lambda: groups["customer_id"].nunique(),
        "average_order_value": lambda: groups["net_revenue"].sum() / groups["order_id"].nunique(),
    }
    return figures[measure]().astype(float)


def _close(shown: pd.Series, expected: pd.Series) -> None:
    assert sorted(shown.index) == sorted(expected.index)
    for key, value in expected.items():
        assert shown[key] == pytest.approx(value, abs=1e-6), key


@pytest.mark.parametrize("measure", list(pivot.MEASURES))
@pytest.mark.parametrize(("rows", "columns"), [("year", "region"), ("month", None), ("segment", "tier"),
                                                ("country", "quarter"), ("channel", "category")])  # fmt: skip
def test_cells_and_totals_equal_a_group_by_of_the_lines(connection, rows, columns, measure):
    result = _run(connection, rows, measure, columns)
    row_column = pivot.DIMENSIONS[rows]
    cells = pivot.cells(result)
    if columns is None:
        _close(cells.set_index("row_value")["value"], _expected(LINES, measure, [row_column]))
    else:
        column_column = pivot.DIMENSIONS[columns]
        _close(
            cells.set_index(["row_value", "column_value"])["value"],
            _expected(LINES, measure, [row_column, column_column]),
        )
        column_totals = result[result["is_row_total"] & ~result["is_column_total"]]
        _close(column_totals.set_index("column_value")["value"], _expected(LINES, measure, [column_column]))
    row_totals = cells if columns is None else result[~result["is_row_total"] & result["is_column_total"]]
    _close(row_totals.set_index("row_value")["value"], _expected(LINES, measure, [row_column]))
    (grand_total,) = result[result["is_row_total"] & result["is_column_total"]]["value"]
    assert grand_total == pytest.approx(_expected(LINES, measure, []).iloc[0])


def test_distinct_counts_are_totalled_by_the_query_not_added_up(connection):
    result = _run(connection, "year", "customers", "region")
    (grand_total,) = result[result["is_row_total"] & result["is_column_total"]]["value"]
    assert grand_total == LINES["customer_id"].nunique()
    assert pivot.cells(result)["value"].sum() > grand_total  # customers buy in several years and regions


def test_filters_and_the_date_range_are_bound_and_keep_only_the_chosen_lines(connection):
    first, last = date(2025, 3, 1), date(2025, 9, 30)
    filters = {"segment": ["can't lose them", "lost"], "channel": ["web"], "tier": []}
    sql, parameters = pivot.pivot_sql("region", "net_revenue", "year", filters, (first, last))
    assert parameters == ("can't lose them", "lost", "web", first, last)
    assert "lost" not in sql and "web" not in sql and "2025" not in sql
    kept = LINES[
        LINES["rfm_segment"].isin(["can't lose them", "lost"])
        & (LINES["sales_channel"] == "web")
        & LINES["order_date"].between(first, last)
    ]
    result = connection.execute(sql, list(parameters)).df()
    _close(
        pivot.cells(result).set_index(["row_value", "column_value"])["value"],
        _expected(kept, "net_revenue", ["region_name", "year_label"]),
    )


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=40))
def test_any_filter_value_is_bound_never_written_into_the_sql(connection, value):
    sql, parameters = pivot.pivot_sql("tier", "orders", filters={"segment": [value]})
    assert sql == pivot.pivot_sql("tier", "orders", filters={"segment": ["champions"]})[0]
    assert parameters == (value,)
    result = connection.execute(sql, list(parameters)).df()
    expected = LINES[LINES["rfm_segment"] == value]
    assert pivot.cells(result)["value"].sum() == sum(expected.groupby("loyalty_tier")["order_id"].nunique())


NOT_A_DIMENSION = st.text(max_size=60).filter(lambda text: text not in pivot.DIMENSIONS)
NOT_A_MEASURE = st.text(max_size=60).filter(lambda text: text not in pivot.MEASURES)


@settings(max_examples=300, deadline=None)
@given(name=NOT_A_DIMENSION)
def test_a_dimension_not_in_the_whitelist_is_refused_before_any_sql(name):
    for call in (
        lambda: pivot.pivot_sql(name, "net_revenue"),
        lambda: pivot.pivot_sql("year", "net_revenue", name),
        lambda: pivot.pivot_sql("year", "net_revenue", filters={name: ["x"]}),
        lambda: pivot.values_sql(name),
    ):
        with pytest.raises(ValueError, match="not a pivot dimension"):
            call()


@settings(max_examples=300, deadline=None)
@given(name=NOT_A_MEASURE)
def test_a_measure_not_in_the_whitelist_is_refused_before_any_sql(name):
    with pytest.raises(ValueError, match="not a pivot measure"):
        pivot.pivot_sql("year", name)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"columns": "year"},  # the same dimension twice
        {"filters": {"segment": [1]}},  # a value that is not text
        {"date_range": ("2025-01-01", "2025-12-31")},  # dates must be dates, not text
    ],
)
def test_malformed_choices_are_refused(kwargs):
    with pytest.raises(ValueError):
        pivot.pivot_sql("year", "net_revenue", **kwargs)


def test_filter_choices_are_the_dimensions_values(connection):
    values = connection.execute(pivot.values_sql("segment")).df()["value"].tolist()
    assert values == sorted(set(LINES["rfm_segment"]))


def test_the_wide_table_puts_the_querys_own_totals_last(connection):
    result = _run(connection, "segment", "customers", "year")
    table = pivot.wide(result, "segment", "year")
    years = sorted(set(LINES["year_label"]))
    assert list(table.columns) == ["row", *[f"c:{year}" for year in years], "total"]
    assert table["row"].iloc[-1] == pivot.TOTAL
    assert table["total"].iloc[-1] == LINES["customer_id"].nunique()
    body = table.iloc[:-1]
    assert list(body["total"]) == sorted(body["total"], reverse=True)  # largest segment first
    by_segment_year = _expected(LINES, "customers", ["rfm_segment", "year_label"])
    for segment, shown in body.set_index("row").iterrows():
        for year in years:
            expected = by_segment_year.get((segment, year))
            assert (pd.isna(shown[f"c:{year}"]) and expected is None) or shown[f"c:{year}"] == expected


def test_without_columns_the_wide_table_is_one_total_column(connection):
    result = _run(connection, "month", "orders")
    table = pivot.wide(result, "month")
    assert list(table.columns) == ["row", "total"]
    assert list(table["row"]) == [*sorted(set(LINES["month_label"])), pivot.TOTAL]  # months in time order
    assert table["total"].iloc[-1] == LINES["order_id"].nunique()


def test_an_empty_selection_gives_no_cells(connection):
    result = _run(connection, "year", "net_revenue", filters={"segment": ["no such segment"]})
    assert pivot.cells(result).empty
    assert list(pivot.wide(result, "year")["row"]) == [pivot.TOTAL]
