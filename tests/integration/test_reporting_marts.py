"""The reporting marts the dashboard pages read (schema marts, rpt_*) against independent queries of the published
snapshot's base marts, score tables and bookkeeping: every figure a page shows must add up to the facts.

Two worlds: the session's small world (one run, as of AS_OF), and a smaller one run twice, back-dated first with an
order whose date cannot be read, so that the door quarantines a row, the warehouse excludes rows, and the second
run has an earlier run to compare its scores with.
"""

import json
from collections import Counter, defaultdict
from datetime import date, timedelta

import duckdb
import pytest

from pipelines.publish.snapshot import current_snapshot
from tests.conftest import AS_OF, run_nightly, world_environ

pytestmark = pytest.mark.integration

REPORTING_MARTS = {
    "rpt_loyalty_kpis", "rpt_monthly_trends", "rpt_tier_mix", "rpt_tier_movement", "rpt_rfm_grid",
    "rpt_segment_profiles", "rpt_segment_migration", "rpt_sales_lines", "rpt_model_scorecard",
    "rpt_model_calibration", "rpt_churn_curves", "rpt_churn_drivers", "rpt_p_alive_matrix", "rpt_model_history",
    "rpt_file_health", "rpt_exclusion_reasons",
}  # fmt: skip
BACK_DATED = date(2026, 3, 31)


def months_before(day: date, months: int) -> date:
    """The same day ``months`` earlier (used with whole years and with first days of months, which always exist)."""
    month = day.year * 12 + day.month - 1 - months
    return day.replace(year=month // 12, month=month % 12 + 1)


def fetch(connection: duckdb.DuckDBPyConnection, query: str, params: list | None = None) -> list[tuple]:
    return connection.execute(query, params or []).fetchall()


def open_snapshot(path: str) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(path, read_only=True)


@pytest.fixture(scope="module")
def snapshot(pipeline_run):
    world, result = pipeline_run
    assert result.success
    connection = open_snapshot(current_snapshot(world.root / "published")["path"])
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory):
    """A small world whose first order's date cannot be read, run as of BACK_DATED, then again as of AS_OF on the same
    warehouse; the snapshot each run published."""
    from pipelines.demo_data import generate

    root = tmp_path_factory.mktemp("reporting_two_runs")
    generate(customers=300, seed=11, as_of=AS_OF, out=root / "landing", truth=root / "truth")
    orders_file = root / "landing" / "erp" / "orders.csv"
    lines = orders_file.read_text(encoding="utf-8").splitlines()
    header, first = lines[0].split(";"), lines[1].split(";")
    first[header.index("ordered_at")] = "the day before yesterday"
    lines[1] = ";".join(first)
    orders_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    snapshots = []
    for as_of in (BACK_DATED, AS_OF):
        result = run_nightly(world_environ(root), as_of)
        failed = [event.step_key for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
        assert not failed, f"the run as of {as_of} failed in {failed}"
        pointer = current_snapshot(root / "published")
        assert pointer and pointer["as_of"] == as_of.isoformat(), f"the run as of {as_of} published nothing"
        snapshots.append(pointer["path"])
    connections = [open_snapshot(path) for path in snapshots]
    yield connections
    for connection in connections:
        connection.close()


def test_every_reporting_mart_is_published(snapshot):
    tables = {row[0] for row in fetch(snapshot, "select table_name from duckdb_tables() where schema_name = 'marts'")}
    assert tables >= REPORTING_MARTS


# --- loyalty KPIs ---------------------------------------------------------------------------------------------------


def period_customers(connection, start: date, end: date) -> dict[str, int]:
    """Orders per customer with an order in [start, end)."""
    return dict(
        fetch(
            connection,
            "select customer_id, count(*) from marts.fct_orders where order_date >= ? and order_date < ? group by 1",
            [start, end],
        )
    )


def expected_kpis(connection, as_of: date) -> dict[str, tuple]:
    """(current, previous, comparison) of each KPI, computed here from fct_orders and the score tables."""
    starts = [months_before(as_of, 12 * n) for n in range(4)]  # as_of, -12, -24, -36 months
    periods = [period_customers(connection, starts[n + 1], starts[n]) for n in range(3)]
    first_order = fetch(connection, "select min(order_date) from marts.fct_orders")[0][0]
    # the current period always counts; an earlier one only when the orders cover all of it
    covered = [n == 0 or first_order <= starts[n + 1] for n in range(3)]
    revenue = [
        fetch(
            connection,
            "select coalesce(sum(net_revenue), 0) from marts.fct_orders where order_date >= ? and order_date < ?",
            [starts[n + 1], starts[n]],
        )[0][0]
        for n in range(2)
    ]

    def figure(n: int, value):
        return value if covered[n] else None

    def share(part: int, whole: int):
        return part / whole if whole else None

    def retention(n: int):
        # the share of period n + 1's customers active again in period n
        return share(len(periods[n].keys() & periods[n + 1].keys()), len(periods[n + 1])) if covered[n + 1] else None

    def compared(previous):
        return "the 12 months before" if previous is not None else "no data for the 12 months before"

    kpis = {}
    for kpi, values in {
        "active_customers": [figure(n, len(periods[n])) for n in range(2)],
        "net_revenue": [figure(n, float(revenue[n])) for n in range(2)],
        "repeat_purchase_rate": [
            figure(n, share(sum(orders >= 2 for orders in periods[n].values()), len(periods[n]))) for n in range(2)
        ],
        "retention_rate": [retention(n) for n in range(2)],
    }.items():
        kpis[kpi] = (values[0], values[1], compared(values[1]))
    average_clv, revenue_at_risk = fetch(
        connection, "select avg(clv), sum(revenue_at_risk) from marts.customer_scores"
    )[0]
    for kpi, table, aggregate, current in (
        ("average_clv", "clv_scores", "avg(clv)", average_clv),
        # revenue at risk: churn probability x the same run's lifetime value (0 without one)
        (
            "revenue_at_risk",
            "churn_scores",
            "sum(churn_probability * coalesce((select clv.clv from ml.clv_scores as clv "
            "where clv.customer_id = churn_scores.customer_id and clv.as_of = churn_scores.as_of), 0))",
            revenue_at_risk,
        ),
    ):
        earlier = fetch(connection, f"select max(as_of) from ml.{table} where as_of < ?", [as_of])[0][0]
        previous = (
            fetch(connection, f"select {aggregate} from ml.{table} where as_of = ?", [earlier])[0][0]
            if earlier
            else None
        )
        kpis[kpi] = (current, previous, f"the run as of {earlier.isoformat()}" if earlier else "no earlier run")
    return kpis


def assert_kpis(connection, as_of: date) -> dict[str, tuple]:
    rows = fetch(
        connection,
        "select kpi, current_value, previous_value, comparison, period_start, period_end "
        "from marts.rpt_loyalty_kpis order by sort_order",
    )
    expected = expected_kpis(connection, as_of)
    assert [row[0] for row in rows] == list(expected)
    for kpi, current, previous, comparison, period_start, period_end in rows:
        want_current, want_previous, want_comparison = expected[kpi]
        assert current == pytest.approx(want_current), kpi
        assert previous == pytest.approx(want_previous), kpi
        assert comparison == want_comparison, kpi
        if kpi in ("average_clv", "revenue_at_risk"):
            assert (period_start, period_end) == (None, None)
        else:
            assert (period_start, period_end) == (months_before(as_of, 12), as_of - timedelta(days=1))
    return expected


def test_loyalty_kpis_equal_the_orders_and_scores_of_the_period(snapshot):
    expected = assert_kpis(snapshot, AS_OF)
    # the small world has years of history: every activity KPI has its comparison, and there is no earlier run
    assert all(expected[kpi][1] is not None for kpi in ("active_customers", "net_revenue", "retention_rate"))
    assert expected["active_customers"][0] > 100
    assert expected["average_clv"][2] == "no earlier run"


# --- monthly trends -------------------------------------------------------------------------------------------------


def test_monthly_trends_list_every_month_and_add_up_to_the_orders(snapshot):
    trends = fetch(
        snapshot,
        "select month_start, month_label, is_partial_month, active_customers, new_customers, returning_customers, "
        "orders, net_revenue from marts.rpt_monthly_trends order by month_start",
    )
    by_month = {
        row[0]: row[1:]
        for row in fetch(
            snapshot,
            """select date_trunc('month', order_date)::date, count(distinct customer_id), count(*), sum(net_revenue)
            from marts.fct_orders group by 1""",
        )
    }
    firsts = Counter(
        row[0]
        for row in fetch(
            snapshot,
            "select date_trunc('month', min(order_date))::date from marts.fct_orders group by customer_id",
        )
    )
    first_month, last_month = min(by_month), AS_OF.replace(day=1)
    expected_months = []
    month = first_month
    while month <= last_month:
        expected_months.append(month)
        month = months_before(month, -1)
    assert [row[0] for row in trends] == expected_months
    for month_start, label, partial, active, new, returning, orders, revenue in trends:
        want_active, want_orders, want_revenue = by_month.get(month_start, (0, 0, 0))
        assert label == month_start.strftime("%Y-%m")
        assert partial == (month_start == last_month)
        assert (active, orders, revenue) == (want_active, want_orders, want_revenue), month_start
        assert (new, returning) == (firsts[month_start], active - firsts[month_start]), month_start
    assert sum(row[4] for row in trends) == sum(firsts.values())


# --- tiers ----------------------------------------------------------------------------------------------------------


def test_tier_mix_adds_up_to_the_customers_with_a_tier(snapshot):
    mix = {
        row[0]: row[1:]
        for row in fetch(
            snapshot,
            "select loyalty_tier, tier_rank, customers, customer_share, net_revenue_12m, revenue_share, "
            "upgrade_candidates, downgrade_risks, stable from marts.rpt_tier_mix",
        )
    }
    expected = {
        row[0]: row[1:]
        for row in fetch(
            snapshot,
            """select customers.loyalty_tier, count(*), sum(customers.trailing_12m_net_revenue),
                count(*) filter (where scores.tier_movement = 'upgrade candidate'),
                count(*) filter (where scores.tier_movement = 'downgrade risk'),
                count(*) filter (where scores.tier_movement = 'stable')
            from marts.dim_customers as customers
            left join marts.customer_scores as scores using (customer_id)
            where customers.loyalty_tier is not null
            group by 1""",
        )
    }
    assert set(mix) == set(expected) and "bronze" in mix
    total_customers = sum(values[0] for values in expected.values())
    total_revenue = sum(values[1] for values in expected.values())
    for tier, (rank, customers, customer_share, revenue, revenue_share, up, down, stable) in mix.items():
        want_customers, want_revenue, want_up, want_down, want_stable = expected[tier]
        assert rank == {"platinum": 1, "gold": 2, "silver": 3, "bronze": 4}[tier]
        assert (customers, revenue, up, down, stable) == (want_customers, want_revenue, want_up, want_down, want_stable)
        assert customer_share == pytest.approx(customers / total_customers)
        assert revenue_share == pytest.approx(float(revenue / total_revenue))
    assert (
        sum(values[1] for values in mix.values())
        == fetch(snapshot, "select count(*) from marts.dim_customers where loyalty_tier is not null")[0][0]
    )


def test_tier_movement_groups_the_models_scores(snapshot):
    movement = fetch(
        snapshot,
        "select loyalty_tier, predicted_tier, movement, customers, net_revenue_12m, expected_spend_12m "
        "from marts.rpt_tier_movement order by all",
    )
    expected = fetch(
        snapshot,
        """select loyalty_tier, predicted_tier, movement, count(*), sum(trailing_12m_net_revenue),
            sum(expected_spend_12m)
        from ml.tier_movement where as_of = ? group by all order by all""",
        [AS_OF],
    )
    assert len(movement) == len(expected) > 1
    for row, want in zip(movement, expected, strict=True):
        assert row[:4] == want[:4]
        assert row[4:] == pytest.approx(want[4:])


# --- RFM and segments -----------------------------------------------------------------------------------------------


def test_rfm_grid_adds_up_to_the_scored_customers(snapshot):
    grid = {
        (row[0], row[1]): row[2:]
        for row in fetch(
            snapshot,
            "select recency_score, frequency_score, customers, monetary, share_of_customers, share_of_monetary "
            "from marts.rpt_rfm_grid",
        )
    }
    assert set(grid) == {(recency, frequency) for recency in range(1, 6) for frequency in range(1, 6)}
    expected = {
        (row[0], row[1]): row[2:]
        for row in fetch(
            snapshot,
            """select scores.recency_score, scores.frequency_score, count(*), sum(rfm.monetary)
            from marts.customer_scores as scores
            join ml.rfm_scores as rfm on rfm.customer_id = scores.customer_id and rfm.as_of = scores.as_of_date
            group by 1, 2""",
        )
    }
    scored = fetch(snapshot, "select count(*) from marts.customer_scores")[0][0]
    total_monetary = sum(monetary for _, monetary in expected.values())
    for cell, (customers, monetary, customer_share, monetary_share) in grid.items():
        want_customers, want_monetary = expected.get(cell, (0, 0))
        assert (customers, monetary) == (want_customers, want_monetary), cell
        assert customer_share == pytest.approx(customers / scored)
        assert monetary_share == pytest.approx(float(monetary / total_monetary))
    assert sum(values[0] for values in grid.values()) == scored


def test_segment_profiles_add_up_per_segmentation(snapshot):
    profiles = fetch(
        snapshot,
        "select segmentation, segment, customers, average_monetary, net_revenue_12m, average_clv, revenue_at_risk, "
        "description, sort_order from marts.rpt_segment_profiles",
    )
    for segmentation, column in (("rfm", "rfm_segment"), ("behaviour", "behaviour_segment")):
        expected = {
            row[0]: row[1:]
            for row in fetch(
                snapshot,
                f"""select scores.{column}, count(*), avg(customers.rfm_window_net_revenue),
                    sum(customers.trailing_12m_net_revenue), avg(scores.clv), sum(scores.revenue_at_risk),
                    sum(customers.rfm_window_net_revenue)
                from marts.customer_scores as scores join marts.dim_customers as customers using (customer_id)
                where scores.{column} is not null group by 1""",
            )
        }
        rows = {row[1]: row[2:] for row in profiles if row[0] == segmentation}
        assert set(rows) == set(expected) and len(rows) > 1, segmentation
        for segment, (customers, average_monetary, revenue_12m, average_clv, at_risk, _, _) in rows.items():
            want = expected[segment]
            assert (customers, revenue_12m) == (want[0], want[2]), segment
            assert (average_monetary, average_clv, at_risk) == pytest.approx((float(want[1]), want[3], want[4])), (
                segment
            )
        by_monetary = sorted(expected, key=lambda segment: (-expected[segment][5], segment))
        assert sorted(rows, key=lambda segment: rows[segment][6]) == by_monetary
    descriptions = dict(
        fetch(snapshot, "select cluster_name, description from ml.behaviour_segment_profiles where as_of = ?", [AS_OF])
    )
    assert {row[1]: row[7] for row in profiles if row[0] == "behaviour"} == descriptions
    assert all(row[7] is None for row in profiles if row[0] == "rfm")


def test_segment_migration_of_a_first_run_comes_from_not_scored(snapshot):
    migration = fetch(
        snapshot,
        "select from_segment, to_segment, customers, from_share, previous_as_of from marts.rpt_segment_migration",
    )
    segments = dict(fetch(snapshot, "select rfm_segment, count(*) from marts.customer_scores group by 1"))
    assert {row[0] for row in migration} == {"(not scored)"}
    assert {row[1]: row[2] for row in migration} == segments
    assert sum(row[3] for row in migration) == pytest.approx(1)
    assert {row[4] for row in migration} == {None}


# --- sales pivot ----------------------------------------------------------------------------------------------------


def test_sales_lines_keep_every_order_line_and_its_figures(snapshot):
    lines = fetch(
        snapshot,
        "select count(*), sum(net_revenue), sum(margin), sum(units), count(distinct order_id) "
        "from marts.rpt_sales_lines",
    )[0]
    facts = fetch(
        snapshot,
        "select count(*), sum(net_revenue), sum(margin), sum(quantity - returned_quantity), count(distinct order_id) "
        "from marts.fct_order_lines",
    )[0]
    assert lines == facts
    by_quarter_and_category = fetch(
        snapshot,
        "select quarter_label, category_name, sum(net_revenue) from marts.rpt_sales_lines group by all order by all",
    )
    from_facts = fetch(
        snapshot,
        """select calendar.calendar_quarter, products.category_name, sum(lines.net_revenue)
        from marts.fct_order_lines as lines
        join marts.dim_date as calendar on lines.order_date = calendar.date_day
        join marts.dim_products as products using (product_id)
        group by all order by all""",
    )
    assert by_quarter_and_category == from_facts
    unlabelled = fetch(
        snapshot,
        """select count(*) from marts.rpt_sales_lines where year_label is null or quarter_label is null
        or month_label is null or region_name is null or country_code is null or category_name is null
        or sales_channel is null or loyalty_tier is null or rfm_segment is null""",
    )[0][0]
    assert unlabelled == 0


# --- models ---------------------------------------------------------------------------------------------------------

HEADLINES = {"clv": ("rmse_spend", True), "churn": ("auc", False), "next_best_offer": ("hit_rate_at_k", False)}


def rounded(rows: list[tuple]) -> list[tuple]:
    """Rows sorted, their floats to 9 decimals: figures read back from JSON by two parsers compare equal."""
    return sorted(tuple(round(value, 9) if isinstance(value, float) else value for value in row) for row in rows)


def published_runs(connection, as_of: date) -> dict[str, tuple]:
    """model -> (model_run_id, metrics, baseline_metrics, beats_baseline, score_source) of the snapshot's runs."""
    return {
        row[0]: (row[1], json.loads(row[2] or "null"), json.loads(row[3] or "null"), row[4], row[5])
        for row in fetch(
            connection,
            """select model, model_run_id, metrics, baseline_metrics, beats_baseline, score_source
            from ml.model_runs where as_of = ?""",
            [as_of],
        )
    }


def test_model_scorecard_states_each_published_run_and_its_verdict(snapshot):
    runs = published_runs(snapshot, AS_OF)
    scorecard = {
        row[0]: row[1:]
        for row in fetch(
            snapshot,
            "select model, model_run_id, headline_metric, model_value, baseline_value, beats_baseline, "
            "score_source, verdict, lower_is_better from marts.rpt_model_scorecard",
        )
    }
    assert (
        set(scorecard)
        == set(runs)
        == {
            "clv",
            "churn",
            "rfm",
            "behaviour_segments",
            "tier_movement",
            "basket_rules",
            "next_best_offer",
        }
    )
    for model, (run_id, metric, value, baseline, beats, source, verdict, lower) in scorecard.items():
        want_id, metrics, baseline_metrics, want_beats, want_source = runs[model]
        assert (run_id, beats, source) == (want_id, want_beats, want_source), model
        if model in HEADLINES:
            figure, lower_is_better = HEADLINES[model]
            assert (metric, lower) == (figure, lower_is_better)
            assert value == pytest.approx(metrics.get(figure))
            assert baseline == pytest.approx((baseline_metrics or {}).get(figure))
            if value is not None and baseline is not None and source != "none":
                assert beats == (value < baseline if lower_is_better else value > baseline), model
                assert f"{value:.3f}" in verdict and f"{baseline:.3f}" in verdict, verdict
                assert ("does not beat" in verdict) == (not beats), verdict
                published = "its scores are published" if source == "model" else "the baseline's scores are published"
                assert verdict.endswith(published + "."), verdict
        else:
            assert baseline is None and verdict == "No baseline: the model's scores are published.", model


def test_calibration_curves_and_drivers_are_the_published_runs_figures(snapshot):
    runs = published_runs(snapshot, AS_OF)
    expected_bins, expected_points, expected_drivers = [], [], []
    for model, key in (("churn", "calibration"), ("clv", "deciles")):
        _, metrics, baseline_metrics, _, _ = runs[model]
        for scorer, figures in (("model", metrics), ("baseline", baseline_metrics)):
            for number, point in enumerate((figures or {}).get(key) or [], start=1):
                bin_number = point["decile"] if key == "deciles" else number
                expected_bins.append(
                    (model, scorer, bin_number, point["predicted"], point["observed"], point["customers"])
                )
    _, metrics, baseline_metrics, _, _ = runs["churn"]
    for scorer, figures in (("model", metrics), ("baseline", baseline_metrics)):
        figures = figures or {}
        for curve, key, x, y in (
            ("roc", "roc", "fpr", "tpr"),
            ("gains", "gains", "share_contacted", "share_of_churners"),
        ):
            for number, point in enumerate(figures.get(key) or [], start=1):
                if point.get(x) is not None and point.get(y) is not None:
                    expected_points.append((scorer, curve, number, point[x], point[y]))
        ranked = sorted(figures.get("drivers") or [], key=lambda driver: (-driver["auc_drop"], driver["feature"]))
        for rank, driver in enumerate(ranked, start=1):
            expected_drivers.append((scorer, rank, driver["feature"], driver["label"], driver["auc_drop"]))
    bins = fetch(snapshot, "select model, scorer, bin, predicted, observed, customers from marts.rpt_model_calibration")
    points = fetch(snapshot, "select scorer, curve, point, x, y from marts.rpt_churn_curves")
    drivers = fetch(snapshot, "select scorer, rank, feature, label, auc_drop from marts.rpt_churn_drivers")
    assert rounded(bins) == rounded(expected_bins)
    assert rounded(points) == rounded(expected_points)
    assert rounded(drivers) == rounded(expected_drivers)
    assert any(row[0] == "churn" for row in bins) and drivers, "the small world's churn run has figures to show"


def test_p_alive_matrix_is_the_published_clv_runs_grid(snapshot):
    matrix = fetch(
        snapshot, "select frequency, recency, p_alive, expected_purchases from marts.rpt_p_alive_matrix order by 1, 2"
    )
    expected = fetch(
        snapshot,
        "select frequency, recency, p_alive, expected_purchases from ml.clv_matrices where as_of = ? order by 1, 2",
        [AS_OF],
    )
    assert matrix == expected


def test_model_history_lists_every_model_run(snapshot):
    history = fetch(
        snapshot, "select model_run_id, model, as_of, score_source, model_value from marts.rpt_model_history"
    )
    runs = fetch(snapshot, "select model_run_id, model, as_of, score_source from ml.model_runs")
    assert sorted(row[:4] for row in history) == sorted(runs)
    values = {row[0]: row[4] for row in history}
    for model, (run_id, metrics, _, _, _) in published_runs(snapshot, AS_OF).items():
        if model in HEADLINES:
            assert values[run_id] == pytest.approx(metrics.get(HEADLINES[model][0]))


# --- files and exclusions -------------------------------------------------------------------------------------------


def assert_file_health_and_exclusions(connection) -> tuple[dict, dict]:
    """rpt_file_health is the ledger with each file's exclusions; rpt_exclusion_reasons counts the quarantine and
    the exclusions by reason. Returns the exclusion reasons by stage."""
    health = fetch(
        connection,
        "select source_table, file, status, rows_read, rows_loaded, rows_quarantined, run_id, rows_excluded "
        "from marts.rpt_file_health",
    )
    ledger = fetch(
        connection,
        "select source_table, file, status, rows_read, rows_loaded, rows_quarantined, run_id from meta.load_ledger",
    )
    assert sorted(row[:7] for row in health) == sorted(ledger)
    excluded_by_file = dict(fetch(connection, "select source_file, count(*) from marts.fct_row_exclusions group by 1"))
    current = defaultdict(int)
    for row in health:
        if row[2] not in ("replaced", "unloaded"):
            current[row[1]] += row[7]
    assert {file: rows for file, rows in current.items() if rows} == excluded_by_file

    reasons = defaultdict(dict)
    for source_table, stage, reason, rows in fetch(
        connection, "select source_table, stage, reason, rows from marts.rpt_exclusion_reasons"
    ):
        reasons[stage][(source_table, reason)] = rows
    assert reasons["excluded in the warehouse"] == {
        (table, code): rows
        for table, code, rows in fetch(
            connection,
            "select source_table, exclusion_reason_code, count(*) from marts.fct_row_exclusions group by 1, 2",
        )
    }
    quarantined = defaultdict(set)
    for table, code, file, row_number in fetch(
        connection, "select source_table, reason_code, file, row_number from meta.quarantine"
    ):
        quarantined[(table, code)].add((file, row_number))
    assert reasons["quarantined at the door"] == {key: len(records) for key, records in quarantined.items()}
    return reasons, excluded_by_file


def test_file_health_and_exclusion_reasons_of_a_clean_run(snapshot):
    assert_file_health_and_exclusions(snapshot)
    assert fetch(snapshot, "select count(*) from marts.rpt_file_health where status = 'loaded'")[0][0] >= 10


def test_a_quarantined_row_and_the_rows_it_takes_with_it_are_counted(two_runs):
    back_dated, _ = two_runs
    reasons, excluded_by_file = assert_file_health_and_exclusions(back_dated)
    assert sum(rows for (table, _), rows in reasons["quarantined at the door"].items() if table == "erp__orders") == 1
    warehouse = reasons["excluded in the warehouse"]
    assert warehouse.get(("erp__order_lines", "order_missing"), 0) >= 1
    assert warehouse.get(("erp__orders", "after_as_of"), 0) > 0, "orders after the back-dated cutoff are excluded"
    orders_file = fetch(
        back_dated,
        "select rows_quarantined, rows_excluded from marts.rpt_file_health where file = 'erp/orders.csv'",
    )
    assert orders_file == [(1, excluded_by_file["erp/orders.csv"])]


# --- a second run -------------------------------------------------------------------------------------------------


def test_a_later_run_compares_with_the_earlier_run(two_runs):
    back_dated, later = two_runs
    assert_kpis(back_dated, BACK_DATED)
    expected = assert_kpis(later, AS_OF)
    assert expected["average_clv"][2] == f"the run as of {BACK_DATED.isoformat()}"
    assert expected["average_clv"][1] is not None
    migration = fetch(
        later, "select from_segment, to_segment, customers, previous_as_of, as_of from marts.rpt_segment_migration"
    )
    assert {(row[3], row[4]) for row in migration} == {(BACK_DATED, AS_OF)}
    now = dict(fetch(later, "select rfm_segment, count(*) from marts.customer_scores group by 1"))
    before = dict(fetch(later, "select segment, count(*) from ml.rfm_scores where as_of = ? group by 1", [BACK_DATED]))
    to_totals, from_totals = Counter(), Counter()
    for from_segment, to_segment, customers, _, _ in migration:
        to_totals[to_segment] += customers
        from_totals[from_segment] += customers
    assert {segment: n for segment, n in to_totals.items() if segment != "(not scored)"} == now
    assert {segment: n for segment, n in from_totals.items() if segment != "(not scored)"} == before
    history = fetch(later, "select distinct as_of from marts.rpt_model_history order by 1")
    assert history == [(BACK_DATED,), (AS_OF,)]
