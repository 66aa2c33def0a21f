"""The Loyalty page, run by Streamlit's AppTest on the snapshots the real pipeline published: every figure it shows
against an independent query of the snapshot's base marts and score tables, read at the snapshot's own as-of date.
"""

import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from dashboards.auth import User
from dashboards.theme import Formats
from pipelines.publish.snapshot import current_snapshot
from pipelines.settings import PROJECT_ROOT, load_settings
from tests.conftest import world_environ

pytestmark = pytest.mark.integration
LOYALTY = str(PROJECT_ROOT / "dashboards" / "views" / "loyalty.py")


def months_before(day: date, months: int) -> date:
    month = day.year * 12 + day.month - 1 - months
    return day.replace(year=month // 12, month=month % 12 + 1)


def _point_at(monkeypatch, environ: dict[str, str]) -> tuple[dict, Formats]:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    return current_snapshot(Path(environ["CRM_PUBLISHED_DIR"])), Formats(settings.currency, settings.display_locale)


def _run(user: User | None = None) -> AppTest:
    app = AppTest.from_file(LOYALTY, default_timeout=60)
    if user is not None:
        app.session_state["crm_user"] = user
    app.run()
    assert not app.exception, app.exception
    return app


def _table(app: AppTest, first_column: str):
    (frame,) = [element.value for element in app.dataframe if element.value.columns[0] == first_column]
    return frame


def _activity(connection, start: date, end: date) -> dict[str, float]:
    """Customers, revenue and repeat buyers of the orders dated in [start, end), straight from fct_orders."""
    customers, revenue, repeat = connection.execute(
        """select count(*), sum(net_revenue), count(*) filter (where orders >= 2)
        from (select customer_id, count(*) as orders, sum(net_revenue) as net_revenue
              from marts.fct_orders where order_date >= ? and order_date < ? group by customer_id)""",
        [start, end],
    ).fetchone()
    return {"customers": customers, "revenue": float(revenue or 0), "repeat": repeat}


def _retained(connection, earlier: tuple[date, date], later: tuple[date, date]) -> int:
    (retained,) = connection.execute(
        """select count(*) from (
            select distinct customer_id from marts.fct_orders where order_date >= ? and order_date < ?
            intersect
            select distinct customer_id from marts.fct_orders where order_date >= ? and order_date < ?)""",
        [*earlier, *later],
    ).fetchone()
    return retained


def _relative(formats: Formats, current: float, previous: float) -> str:
    change = current / previous - 1
    return ("+" if change >= 0 else "") + formats.share(change)


def test_the_headline_tiles_are_the_activity_of_the_last_12_months_and_this_runs_scores(pipeline_run, monkeypatch):
    world, result = pipeline_run
    assert result.success
    pointer, formats = _point_at(monkeypatch, world.environ)
    as_of = date.fromisoformat(pointer["as_of"])
    current = (months_before(as_of, 12), as_of)
    previous = (months_before(as_of, 24), current[0])
    before = (months_before(as_of, 36), previous[0])
    with duckdb.connect(pointer["path"], read_only=True) as connection:
        now, then, earlier = (_activity(connection, *period) for period in (current, previous, before))
        retained_now = _retained(connection, previous, current)
        retained_then = _retained(connection, before, previous)
        (average_clv,) = connection.execute("select avg(clv) from ml.clv_scores where as_of = ?", [as_of]).fetchone()
        (at_risk,) = connection.execute(
            """select sum(churn.churn_probability * coalesce(clv.clv, 0)) from ml.churn_scores as churn
            left join ml.clv_scores as clv using (customer_id, as_of) where churn.as_of = ?""",
            [as_of],
        ).fetchone()

    app = _run()
    tiles = {metric.label: metric for metric in app.metric}
    assert tiles["Active customers"].value == formats.count(now["customers"])
    assert tiles["Active customers"].delta == _relative(formats, now["customers"], then["customers"])
    assert "compared with the 12 months before" in tiles["Active customers"].help
    assert tiles["Net revenue"].value == formats.money(now["revenue"])
    assert tiles["Net revenue"].delta == _relative(formats, now["revenue"], then["revenue"])
    repeat_now, repeat_then = now["repeat"] / now["customers"], then["repeat"] / then["customers"]
    assert tiles["Repeat purchase rate"].value == formats.share(repeat_now)
    assert tiles["Repeat purchase rate"].delta == formats.points(repeat_now - repeat_then)
    retention_now = retained_now / then["customers"]
    assert tiles["Retention rate"].value == formats.share(retention_now)
    if earlier["customers"]:
        assert tiles["Retention rate"].delta == formats.points(retention_now - retained_then / earlier["customers"])
    assert tiles["Average customer lifetime value"].value == formats.money(average_clv)
    assert tiles["Revenue at risk"].value == formats.money(at_risk)
    # the first run has no earlier one: no change is shown, and the help says why
    assert tiles["Revenue at risk"].delta in (None, "")
    assert "no earlier run" in tiles["Revenue at risk"].help
    period = f"{current[0]:%Y-%m-%d} to {as_of - timedelta(days=1):%Y-%m-%d}"
    assert period in tiles["Active customers"].help
    assert f"As of {pointer['as_of']}" in app.caption[0].value
    assert not app.error


def test_tier_mix_trends_and_concentration_add_up_to_the_base_marts(pipeline_run, monkeypatch):
    world, _ = pipeline_run
    pointer, formats = _point_at(monkeypatch, world.environ)
    as_of = date.fromisoformat(pointer["as_of"])
    with duckdb.connect(pointer["path"], read_only=True) as connection:
        tiers = {
            row[0]: row[1:]
            for row in connection.execute(
                """select customers.loyalty_tier, count(*), sum(customers.trailing_12m_net_revenue),
                    count(*) filter (where movement.movement = 'upgrade candidate'),
                    count(*) filter (where movement.movement = 'downgrade risk')
                from marts.dim_customers as customers
                left join ml.tier_movement as movement
                    on customers.customer_id = movement.customer_id and movement.as_of = ?
                where customers.loyalty_tier is not null
                group by customers.loyalty_tier""",
                [as_of],
            ).fetchall()
        }
        months = {
            row[0]: row[1:]
            for row in connection.execute(
                """select strftime(order_date, '%Y-%m'), count(distinct customer_id), count(*), sum(net_revenue)
                from marts.fct_orders group by 1"""
            ).fetchall()
        }
        new = dict(
            connection.execute(
                """select strftime(first_order, '%Y-%m'), count(*)
                from (select min(order_date) as first_order from marts.fct_orders group by customer_id) group by 1"""
            ).fetchall()
        )
        lifetime = [
            float(row[0])
            for row in connection.execute(
                """select lifetime_net_revenue from marts.dim_customers where lifetime_orders > 0
                order by lifetime_net_revenue desc"""
            ).fetchall()
        ]

    app = _run()
    shown = _table(app, "Loyalty tier").set_index("Loyalty tier")
    assert set(shown.index) == set(tiers)
    for tier, (customers, revenue, upgrades, downgrades) in tiers.items():
        assert shown.loc[tier, "Customers"] == customers
        assert shown.loc[tier, "Net revenue, last 12 months"] == pytest.approx(float(revenue), abs=0.01)
        assert shown.loc[tier, "Upgrade candidates"] == upgrades
        assert shown.loc[tier, "Downgrade risks"] == downgrades
    assert list(shown.index) == [tier for tier in ("platinum", "gold", "silver", "bronze") if tier in tiers]

    trends = _table(app, "Month").set_index("Month")
    for month, (customers, orders, revenue) in months.items():
        assert trends.loc[month, "Active customers"] == customers
        assert trends.loc[month, "Orders"] == orders
        assert trends.loc[month, "Net revenue"] == pytest.approx(float(revenue), abs=0.01)
        assert trends.loc[month, "New customers"] == new.get(month, 0)
    assert set(months) <= set(trends.index)
    assert (trends.drop(index=list(months))[["Orders", "Active customers"]] == 0).all().all()  # gaps read zero
    partial = f"{as_of:%Y-%m}" if as_of.day > 1 else None
    assert any(f"{partial} is partial" in caption.value for caption in app.caption) == (partial is not None)

    total = sum(lifetime)
    for top in (20, 50):
        app.slider[0].set_value(top).run()
        kept = lifetime[: len(lifetime) * top // 100]  # the ranks whose percentile is at most `top`
        headline = (
            f"#### The top {formats.share(len(kept) / len(lifetime), 0)} of customers bring "
            f"{formats.share(sum(kept) / total, 0)} of net revenue"
        )
        assert headline in [element.value for element in app.markdown]


def test_a_later_snapshot_shows_its_own_scores_compared_with_the_earlier_run(second_run_root, monkeypatch):
    pointer, formats = _point_at(monkeypatch, world_environ(second_run_root))
    as_of = date.fromisoformat(pointer["as_of"])
    with duckdb.connect(pointer["path"], read_only=True) as connection:
        runs = connection.execute("select as_of, avg(clv) from ml.clv_scores group by as_of order by as_of").fetchall()
        risk = dict(
            connection.execute(
                """select as_of, sum(churn.churn_probability * coalesce(clv.clv, 0)) from ml.churn_scores as churn
                left join ml.clv_scores as clv using (customer_id, as_of) group by as_of"""
            ).fetchall()
        )
    assert [day for day, _ in runs][-1] == as_of and len(runs) >= 2  # the snapshot keeps the earlier run's scores
    (earlier, earlier_clv), (_, average_clv) = runs[-2], runs[-1]

    app = _run()
    tiles = {metric.label: metric for metric in app.metric}
    assert tiles["Average customer lifetime value"].value == formats.money(average_clv)
    assert tiles["Average customer lifetime value"].delta == _relative(formats, average_clv, earlier_clv)
    assert f"compared with the run as of {earlier:%Y-%m-%d}" in tiles["Average customer lifetime value"].help
    assert tiles["Revenue at risk"].value == formats.money(risk[as_of])
    assert tiles["Revenue at risk"].delta == _relative(formats, risk[as_of], risk[earlier])


def test_roles_that_may_not_open_the_page_are_refused(pipeline_run, monkeypatch):
    world, _ = pipeline_run
    _point_at(monkeypatch, world.environ)
    service = _run(User(username="sam", name="Sam", role="service", contacts=True))
    assert "does not open the page Loyalty" in service.error[0].value
    assert not service.metric
    executive = _run(User(username="eve", name="Eve", role="executive", contacts=False))
    assert not executive.error and len(executive.metric) == 6


def test_nothing_published_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_PUBLISHED_DIR", str(tmp_path / "nothing"))
    app = _run()
    assert "make run" in app.info[0].value
    assert not app.metric


def test_a_snapshot_without_the_pages_marts_says_what_is_missing(tmp_path, monkeypatch):
    published = tmp_path / "published"
    published.mkdir()
    with duckdb.connect(str(published / "crm_old.duckdb")) as connection:
        connection.execute("create schema marts")
        connection.execute(
            """create table marts.mart_cohort_retention (cohort_month date, months_since_first_purchase bigint,
            cohort_customers bigint, active_customers bigint, retention_rate double)"""
        )
    pointer = {"snapshot": "crm_old.duckdb", "as_of": "2026-06-30", "run_id": "0123456789", "published_at": "now"}
    (published / "current.json").write_text(json.dumps(pointer), encoding="utf-8")
    monkeypatch.setenv("CRM_PUBLISHED_DIR", str(published))
    app = _run()
    said = " ".join(element.value for element in app.info)
    assert "no loyalty figures (marts.rpt_loyalty_kpis)" in said
    assert "No customer has a loyalty tier" in said and "No cohort has a month" in said
    assert "crm run" in said
    assert not app.metric and not app.error
