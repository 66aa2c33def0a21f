"""The Segments page, run by Streamlit's AppTest on the snapshots the real pipeline published: the RFM grid, the
segment profiles, the moves between runs and the pivot against independent queries of the snapshot's base marts
and score tables, read at the snapshot's own as-of date.
"""

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from dashboards.auth import User
from pipelines.publish.snapshot import current_snapshot
from pipelines.settings import PROJECT_ROOT
from tests.conftest import world_environ

pytestmark = pytest.mark.integration
SEGMENTS = str(PROJECT_ROOT / "dashboards" / "views" / "segments.py")
# The pivot's facts, joined to the dimensions as a user would: every order line, 'Unknown' where a label is missing.
LINES_SQL = """select
    coalesce(cast(dates.year_number as varchar), 'Unknown') as year_label,
    coalesce(dates.calendar_month, 'Unknown') as month_label,
    coalesce(geography.region_name, 'Unknown') as region_name,
    lines.sales_channel,
    lines.customer_id,
    lines.order_id,
    lines.net_revenue
from marts.fct_order_lines as lines
left join marts.dim_date as dates on lines.order_date = dates.date_day
left join marts.dim_customers as customers on lines.customer_id = customers.customer_id
left join marts.dim_geography as geography on customers.geography_id = geography.geography_id"""


def _point_at(monkeypatch, environ: dict[str, str]) -> dict:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return current_snapshot(Path(environ["CRM_PUBLISHED_DIR"]))


def _run(user: User | None = None) -> AppTest:
    app = AppTest.from_file(SEGMENTS, default_timeout=60)
    if user is not None:
        app.session_state["crm_user"] = user
    app.run()
    assert not app.exception, app.exception
    return app


def _tables(app: AppTest, first_column: str) -> list:
    return [element.value for element in app.dataframe if element.value.columns[0] == first_column]


def _fetch(path: str, sql: str, parameters: list | None = None) -> list[tuple]:
    with duckdb.connect(path, read_only=True) as connection:
        return connection.execute(sql, parameters or []).fetchall()


def test_grid_and_profiles_count_the_customers_each_model_scored_at_the_snapshots_date(pipeline_run, monkeypatch):
    world, result = pipeline_run
    assert result.success
    pointer = _point_at(monkeypatch, world.environ)
    as_of = date.fromisoformat(pointer["as_of"])
    grid = {
        (recency, frequency): (customers, float(monetary))
        for recency, frequency, customers, monetary in _fetch(
            pointer["path"],
            """select recency_score, frequency_score, count(*), sum(monetary) from ml.rfm_scores where as_of = ?
            group by all""",
            [as_of],
        )
    }
    rfm = {
        segment: (customers, float(at_risk))
        for segment, customers, at_risk in _fetch(
            pointer["path"],
            """select rfm.segment, count(*), sum(churn.churn_probability * coalesce(clv.clv, 0))
            from ml.rfm_scores as rfm
            left join ml.churn_scores as churn on rfm.customer_id = churn.customer_id and churn.as_of = rfm.as_of
            left join ml.clv_scores as clv on rfm.customer_id = clv.customer_id and clv.as_of = rfm.as_of
            where rfm.as_of = ? group by all""",
            [as_of],
        )
    }
    behaviour = dict(
        _fetch(
            pointer["path"],
            "select cluster_name, count(*) from ml.behaviour_segments where as_of = ? group by all",
            [as_of],
        )
    )

    app = _run()
    assert not app.error
    (shown_grid,) = _tables(app, "Recency score")
    assert len(shown_grid) == 25  # every cell, the empty ones too
    for row in shown_grid.itertuples(index=False):
        customers, monetary = grid.get((row[0], row[1]), (0, 0.0))
        assert (row.Customers, row.Monetary) == (customers, pytest.approx(monetary, abs=0.01))

    rfm_table, behaviour_table = _tables(app, "Segment")
    shown_rfm = rfm_table.set_index("Segment")
    assert set(shown_rfm.index) == set(rfm)
    for segment, (customers, at_risk) in rfm.items():
        assert shown_rfm.loc[segment, "Customers"] == customers
        assert shown_rfm.loc[segment, "Revenue at risk"] == pytest.approx(at_risk, rel=1e-9)
    assert dict(zip(behaviour_table["Segment"], behaviour_table["Customers"], strict=True)) == behaviour
    # a first run has nothing to compare with, and says so rather than showing everyone as new
    assert any("First run: no earlier run to compare" in element.value for element in app.info)


def test_the_pivot_of_year_by_region_equals_the_order_lines(pipeline_run, monkeypatch):
    world, _ = pipeline_run
    pointer = _point_at(monkeypatch, world.environ)
    cells = {
        (year, region): float(revenue)
        for year, region, revenue in _fetch(
            pointer["path"], f"select year_label, region_name, sum(net_revenue) from ({LINES_SQL}) group by all"
        )
    }
    app = _run()
    (pivot,) = _tables(app, "Year")  # the default: years by region, net revenue
    pivot = pivot.set_index("Year")
    years = sorted({year for year, _ in cells})
    regions = {region for _, region in cells}
    assert list(pivot.index) == [*years, "Total"]
    assert set(pivot.columns) == regions | {"Total"}
    for (year, region), revenue in cells.items():
        assert pivot.loc[year, region] == pytest.approx(revenue, abs=0.01)
    for region in regions:
        assert pivot.loc["Total", region] == pytest.approx(sum(v for (_, r), v in cells.items() if r == region))
    for year in years:
        assert pivot.loc[year, "Total"] == pytest.approx(sum(v for (y, _), v in cells.items() if y == year))
    assert pivot.loc["Total", "Total"] == pytest.approx(sum(cells.values()), abs=0.01)


def test_the_pivot_counts_distinct_customers_drills_to_months_and_binds_filters(pipeline_run, monkeypatch):
    world, _ = pipeline_run
    pointer = _point_at(monkeypatch, world.environ)
    ((customers, web_customers, web_orders),) = _fetch(
        pointer["path"],
        """select count(distinct customer_id), count(distinct customer_id) filter (where sales_channel = 'web'),
            count(distinct order_id) filter (where sales_channel = 'web')
        from marts.fct_order_lines""",
    )
    web_months = dict(
        _fetch(
            pointer["path"],
            f"select month_label, count(distinct order_id) from ({LINES_SQL}) where sales_channel = 'web' group by 1",
        )
    )
    app = _run()
    app.selectbox(key="pivot_measure").set_value("customers").run()
    (pivot,) = _tables(app, "Year")
    assert pivot.set_index("Year").loc["Total", "Total"] == customers  # counted once, not added up over cells

    app.selectbox(key="pivot_columns_hierarchy").set_value("None").run()
    app.selectbox(key="pivot_rows_level").set_value("month").run()
    app.selectbox(key="pivot_measure").set_value("orders").run()
    app.multiselect(key="pivot_filter_channel").set_value(["web"]).run()
    assert not app.exception, app.exception
    (pivot,) = _tables(app, "Month")
    shown = dict(zip(pivot["Month"], pivot.iloc[:, -1], strict=True))
    assert shown.pop("Total") == web_orders
    assert shown == web_months
    app.selectbox(key="pivot_measure").set_value("customers").run()
    (pivot,) = _tables(app, "Month")
    assert pivot.iloc[-1, -1] == web_customers


def test_a_later_snapshot_shows_the_moves_since_the_earlier_run(second_run_root, monkeypatch):
    pointer = _point_at(monkeypatch, world_environ(second_run_root))
    as_of = date.fromisoformat(pointer["as_of"])
    ((previous,),) = _fetch(pointer["path"], "select max(as_of) from ml.rfm_scores where as_of < ?", [as_of])
    moves = {
        (source, target): customers
        for source, target, customers in _fetch(
            pointer["path"],
            """select coalesce(earlier.segment, '(not scored)'), coalesce(later.segment, '(not scored)'), count(*)
            from (select * from ml.rfm_scores where as_of = ?) as earlier
            full join (select * from ml.rfm_scores where as_of = ?) as later
                on earlier.customer_id = later.customer_id
            group by all""",
            [previous, as_of],
        )
    }
    app = _run()
    assert not any("First run" in element.value for element in app.info)
    (shown,) = _tables(app, "From segment")
    assert {(row[0], row[1]): row[2] for row in shown.itertuples(index=False)} == moves
    assert any(f"in the run as of {previous:%Y-%m-%d}" in element.value for element in app.caption)


def test_roles_that_may_not_open_the_page_are_refused(pipeline_run, monkeypatch):
    world, _ = pipeline_run
    _point_at(monkeypatch, world.environ)
    executive = _run(User(username="eve", name="Eve", role="executive", contacts=False))
    assert "does not open the page Segments" in executive.error[0].value
    assert not executive.dataframe
    marketing = _run(User(username="max", name="Max", role="marketing", contacts=True))
    assert not marketing.error and marketing.dataframe


def test_a_snapshot_without_the_pages_marts_says_what_is_missing(tmp_path, monkeypatch):
    published = tmp_path / "published"
    published.mkdir()
    with duckdb.connect(str(published / "crm_old.duckdb")) as connection:
        connection.execute("create schema marts")
    pointer = {"snapshot": "crm_old.duckdb", "as_of": "2026-06-30", "run_id": "0123456789", "published_at": "now"}
    (published / "current.json").write_text(json.dumps(pointer), encoding="utf-8")
    monkeypatch.setenv("CRM_PUBLISHED_DIR", str(published))
    app = _run()
    said = " ".join(element.value for element in app.info)
    assert "No customer has RFM scores" in said and "No segment profiles" in said
    assert "no sales lines for the pivot (marts.rpt_sales_lines)" in said
    assert not app.dataframe and not app.error
