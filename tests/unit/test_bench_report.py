"""`crm bench`'s pure parts on hand-made samples, events and reports: stage windows and their figures, ratios,
agreement to 4 significant digits, the targets, the markdown between the markers; and the two CLV routes'
summaries of the same transactions."""

import sys
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipelines.bench.alone import model_seconds
from pipelines.bench.report import (
    BEGIN_MARKER,
    END_MARKER,
    GIB,
    agree,
    clv_comparison,
    finish,
    ratio,
    render_markdown,
    replace_generated,
    stage_growth,
    summary_lines,
    targets,
)
from pipelines.bench.routes import pandas_summary, route_transactions
from pipelines.bench.sampler import CLOCK_TICKS, Sample, parse_stat, run_sampled, tree_members
from pipelines.bench.stages import (
    INGEST,
    START_UP,
    WRAP_UP,
    cpu_at,
    dbt_model_windows,
    figures,
    peak_rss,
    phase_windows,
    step_windows,
)

SAMPLES = [
    Sample(100.0, 1 * GIB, 0.0),
    Sample(101.0, 2 * GIB, 1.0),
    Sample(102.0, 5 * GIB, 3.0),
    Sample(103.0, 3 * GIB, 2.9),  # a reaped child missed by one sample: CPU time never runs backwards
    Sample(104.0, 1 * GIB, 6.0),
]


def test_steps_are_windows_from_their_start_to_their_success_or_failure():
    events = [
        ("STEP_SUCCESS", "raw__erp__orders", 12.0),
        ("STEP_START", "raw__erp__orders", 10.0),
        ("STEP_START", "dbt_models", 12.5),
        ("STEP_FAILURE", "dbt_models", 20.0),
        ("STEP_START", "published_snapshot", 21.0),  # never closed: its process died
    ]
    windows = step_windows(events)
    assert [(window.name, window.start, window.end, window.failed) for window in windows] == [
        ("raw__erp__orders", 10.0, 12.0, False),
        ("dbt_models", 12.5, 20.0, True),
    ]


def test_dbt_models_are_windows_from_compile_start_to_execute_end_and_tests_are_left_out():
    results = {
        "results": [
            {
                "unique_id": "model.analytical_crm.fct_orders",
                "execution_time": 2.5,
                "timing": [
                    {"name": "compile", "started_at": "2026-06-30T10:00:00Z", "completed_at": "2026-06-30T10:00:00.5Z"},
                    {"name": "execute", "started_at": "2026-06-30T10:00:00.5Z", "completed_at": "2026-06-30T10:00:03Z"},
                ],
            },
            {"unique_id": "test.analytical_crm.unique_fct_orders", "execution_time": 9.0, "timing": [
                {"name": "execute", "started_at": "2026-06-30T10:00:03Z", "completed_at": "2026-06-30T10:00:12Z"}]},
            {"unique_id": "model.analytical_crm.skipped", "execution_time": 0.0, "timing": []},
        ]
    }  # fmt: skip
    (window,) = dbt_model_windows(results, "dbt_models")
    assert window.name == "dbt_models: fct_orders"
    assert window.end - window.start == pytest.approx(3.0)
    assert window.reported_seconds == 2.5
    assert window.start == pd.Timestamp("2026-06-30T10:00:00Z").timestamp()


def test_phases_cover_what_the_steps_leave_out_and_the_ingest_as_a_whole():
    steps = step_windows(
        [("STEP_START", "raw__a", 5.0), ("STEP_SUCCESS", "raw__a", 6.0), ("STEP_START", "raw__b", 6.0),
         ("STEP_SUCCESS", "raw__b", 8.0), ("STEP_START", "dbt_models", 8.0), ("STEP_SUCCESS", "dbt_models", 15.0)]
    )  # fmt: skip
    phases = {window.name: (window.start, window.end) for window in phase_windows(0.0, 17.0, steps)}
    assert phases == {START_UP: (0.0, 5.0), INGEST: (5.0, 8.0), WRAP_UP: (15.0, 17.0)}
    assert phase_windows(0.0, 17.0, []) == []


def test_cpu_is_interpolated_between_samples_and_never_runs_backwards():
    assert cpu_at(SAMPLES, 101.5) == pytest.approx(2.0)
    assert cpu_at(SAMPLES, 102.5) == pytest.approx(3.0)  # the dip to 2.9 reads as 3.0
    assert cpu_at(SAMPLES, 103.5) == pytest.approx(4.5)
    assert cpu_at(SAMPLES, 90.0) == 0.0 and cpu_at(SAMPLES, 200.0) == 6.0


def test_a_stage_has_its_wall_time_cpu_delta_and_the_peak_sampled_inside_it():
    steps = step_windows([("STEP_START", "dbt_models", 100.5), ("STEP_SUCCESS", "dbt_models", 103.0)])
    stage = figures(SAMPLES, steps[0])
    assert stage.wall_seconds == pytest.approx(2.5)
    assert stage.cpu_seconds == pytest.approx(3.0 - 0.5)
    assert stage.peak_rss_bytes == 5 * GIB
    # shorter than the sampling interval: the samples on either side
    assert peak_rss(SAMPLES, 103.2, 103.4) == 3 * GIB


def test_stat_is_read_after_the_command_name_and_the_tree_follows_parents():
    stat = "42 (my (odd) name) S 7 42 42 0 -1 0 0 0 0 0 150 50 30 20 20 0 1 0 99 0 0"
    parent, cpu = parse_stat(stat)
    assert parent == 7
    assert cpu == pytest.approx((150 + 50 + 30 + 20) / CLOCK_TICKS)  # utime, stime and the reaped children's
    assert sorted(tree_members(1, {2: 1, 3: 2, 4: 9, 5: 3})) == [1, 2, 3, 5]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_sampler_counts_a_grandchild_cpu_and_memory(tmp_path):
    grandchild = "import time; block = bytearray(200 * 2**20); end = time.time() + 0.6\nwhile time.time() < end: pass"
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}])"
    measured = run_sampled([sys.executable, "-c", child], {}, tmp_path / "out", tmp_path / "err", interval=0.05)
    assert measured.exit_code == 0
    assert measured.cpu_seconds >= 0.4  # the grandchild's busy loop, counted though it ended before its parent
    assert measured.peak_rss_bytes >= 200 * 2**20
    assert measured.wall_seconds >= 0.6


def test_ratio_and_agreement_to_four_significant_digits():
    assert ratio(10.0, 4.0) == 2.5
    assert ratio(None, 4.0) is None and ratio(1.0, 0.0) is None
    assert agree(1.2345, 1.2349)
    assert not agree(1.2340, 1.2346)
    assert agree(1.23449, 1.23451)  # either side of a rounding boundary, yet 0.00002 apart
    assert agree(117921.0, 117925.0) and not agree(117921.0, 117990.0)
    assert agree(0.0, 0.0)
    assert not agree(1.0, None) and not agree(float("nan"), 1.0)


def _size(customers: int, night: float, floor: float, peak_gib: float, stages: dict[str, float]) -> dict:
    return {
        "customers": customers,
        "generator": {"wall_seconds": night / 3, "cpu_seconds": night / 2, "peak_rss_bytes": GIB},
        "floor": {"duckdb_seconds": floor},
        "night": {
            "exit_code": 0,
            "wall_seconds": night,
            "cpu_seconds": night * 1.5,
            "peak_rss_bytes": peak_gib * GIB,
            "stages": [
                {"name": name, "kind": "dbt model" if ":" in name else "step", "start": index, "end": index + 1,
                 "wall_seconds": seconds, "cpu_seconds": seconds, "peak_rss_bytes": GIB,
                 "reported_seconds": seconds}
                for index, (name, seconds) in enumerate(stages.items())
            ],
        },
    }  # fmt: skip


def _clv(ours_seconds: float, lifetimes_seconds: float, alpha: float) -> dict:
    summary = {"customers": 900, "total_frequency": 2000, "repeat_buyers": 500}
    ours = {**summary, "seconds": ours_seconds, "summary_seconds": 0.5, "fit_seconds": ours_seconds - 0.5,
            "bgnbd": {"r": 1.0, "alpha": 100.0, "a": 1.5, "b": 4.0}, "gamma_gamma": {"p": 7.0, "q": 3.3, "v": 23.0},
            "method": {"bgnbd": "maximum likelihood", "gamma_gamma": "maximum likelihood"},
            "night_published": "Pareto/NBD"}  # fmt: skip
    theirs = {**summary, "seconds": lifetimes_seconds, "frame_seconds": 1.0, "summary_seconds": 5.0,
              "fit_seconds": lifetimes_seconds - 6.0, "summarised_by": "lifetimes", "errors": [],
              "bgnbd": {**ours["bgnbd"], "alpha": alpha}, "gamma_gamma": ours["gamma_gamma"]}  # fmt: skip
    return {"ours": ours, "lifetimes": theirs}


def _report() -> dict:
    small = _size(100_000, 20.0, 2.0, 1.0, {"dbt_models": 10.0, "dbt_models: fct_orders": 2.0, "ml__clv": 1.0})
    large = _size(1_000_000, 170.0, 2.0, 7.0, {"dbt_models": 95.0, "dbt_models: fct_orders": 30.0, "ml__clv": 9.0})
    large["clv"] = _clv(2.0, 12.0, 100.03)
    return {
        "generated_at": "2026-12-05T06:00:00+00:00",
        "options": {"customers": [100_000, 1_000_000], "as_of": "2026-06-30", "sales_shape": "tables"},
        "machine": {
            "cpus": 2,
            "cpu_model": "test",
            "memory_bytes": 8 * GIB,
            "load_average_1m": 0.9,
            "versions": {"duckdb": "2.0"},
            "git_commit": "abc1234",
            "git_dirty": False,
        },
        "sizes": [small, large],
        "incremental": {
            "customers": 1_000_000,
            "day": "2026-06-29",
            "new_orders": 2_700,
            "history_night": {"wall_seconds": 160.0},
            "night": {"wall_seconds": 75.0, "cpu_seconds": 90.0, "peak_rss_bytes": 2 * GIB, "stages": []},
        },
        "pages": None,
        "failures": [],
    }


def test_a_stage_above_linear_growth_is_flagged():
    report = _report()
    growth = {row["stage"]: row for row in stage_growth(report["sizes"], 100_000, 1_000_000, ["dbt_models",
              "dbt_models: fct_orders", "ml__clv"])}  # fmt: skip
    assert growth["dbt_models"]["ratio"] == pytest.approx(9.5) and not growth["dbt_models"]["above_linear"]
    assert growth["dbt_models: fct_orders"]["ratio"] == pytest.approx(15.0)
    assert growth["dbt_models: fct_orders"]["above_linear"]


def test_a_dbt_model_timed_alone_at_both_sizes_is_judged_by_that_growth():
    report = _report()
    names = ["dbt_models", "dbt_models: fct_orders", "ml__clv"]
    # in the night fct_orders grew 15x beside another model; alone it grew 9x
    report["sizes"][0]["models_alone"] = {"models": {"dbt_models: fct_orders": 1.5, "dbt_models: dim_date": 0.1}}
    report["sizes"][1]["models_alone"] = {"models": {"dbt_models: fct_orders": 13.5, "dbt_models: dim_date": 0.1}}
    growth = {row["stage"]: row for row in stage_growth(report["sizes"], 100_000, 1_000_000, names)}
    orders = growth["dbt_models: fct_orders"]
    assert orders["ratio"] == pytest.approx(15.0) and orders["alone_ratio"] == pytest.approx(9.0)
    assert orders["judged_ratio"] == pytest.approx(9.0) and not orders["above_linear"]
    # a stage not timed alone (a step, the whole dbt step) is judged by the night
    assert growth["ml__clv"]["alone_ratio"] is None and growth["ml__clv"]["judged_ratio"] == pytest.approx(9.0)
    status = {row["target"]: (row["figure"], row["status"]) for row in targets(report)}
    assert status["every stage at most 11x from 100k to 1M (dbt models timed alone)"] == ("none over", "met")
    assert "| dbt_models: fct_orders | 2.0 / 2.0 / 1.00 | 30.0 / 30.0 / 1.00 | 15.0x (alone 1.5 → 13.5 s: 9.0x) |" in (
        render_markdown(finish(report))
    )
    # alone it grew 12x: over, whatever the night says
    report["sizes"][1]["models_alone"]["models"]["dbt_models: fct_orders"] = 18.0
    status = {row["target"]: (row["figure"], row["status"]) for row in targets(report)}
    assert status["every stage at most 11x from 100k to 1M (dbt models timed alone)"][1] == "missed"


def test_the_models_timed_alone_are_named_as_the_night_names_its_stages():
    timing = [{"name": "execute", "started_at": "2026-06-30T10:00:00Z", "completed_at": "2026-06-30T10:00:02.5Z"}]
    results = {
        "results": [
            {"unique_id": "model.analytical_crm.fct_orders", "status": "success", "execution_time": 2.5,
             "timing": timing},
            {"unique_id": "test.analytical_crm.not_null_fct_orders_order_id.abc", "status": "pass",
             "execution_time": 0.4, "timing": timing},
            {"unique_id": "model.analytical_crm.dim_date", "status": "error", "execution_time": 0.1, "timing": []},
        ]
    }  # fmt: skip
    assert model_seconds(results, "dbt_score_models") == {"dbt_score_models: fct_orders": 2.5}
    (window,) = dbt_model_windows(results, "dbt_score_models")
    assert set(model_seconds(results, "dbt_score_models")) == {window.name}


def test_the_clv_routes_are_compared_parameter_by_parameter():
    comparison = clv_comparison(_clv(2.0, 12.0, 100.03))
    assert comparison["speedup"] == pytest.approx(6.0)
    assert comparison["same_summary"]
    assert comparison["all_agree"]  # 100.03 against 100.0: within half a unit of the fourth digit (0.05)
    differing = clv_comparison(_clv(2.0, 12.0, 100.2))
    assert not differing["all_agree"]
    assert [row["parameter"] for row in differing["parameters"] if not row["agree"]] == ["alpha"]
    assert clv_comparison({"ours": None, "lifetimes": {}}) is None


def test_each_target_is_met_missed_or_not_measured():
    status = {row["target"]: (row["figure"], row["status"]) for row in targets(_report())}
    assert status["1M: night under 180 s"] == ("170.0 s", "met")
    assert status["1M: night's peak memory under 6 GiB"] == ("7.00 GiB", "missed")
    assert status["1M: night / floor under 65x (the ratio before)"] == ("85.0x", "missed")
    assert status["1M: incremental night under 60 s"] == ("75.0 s", "missed")
    assert status["1M: CLV fit at least 5x faster than the lifetimes route"] == ("6.0x", "met")
    assert status["1M: CLV parameters agree with lifetimes' to 4 significant digits"][1] == "met"
    # fct_orders grew 15x, over the 11x allowed
    assert status["every stage at most 11x from 100k to 1M"] == ("1 over: dbt_models: fct_orders", "missed")
    assert status["10M: night under 30 min"] == ("-", "not measured")


def test_the_markdown_replaces_only_what_lies_between_the_markers():
    text = f"# Benchmarks\n\nBy hand.\n\n{BEGIN_MARKER}\nold table\n{END_MARKER}\n\nAfter, by hand.\n"
    replaced = replace_generated(text, "| new | table |\n")
    assert replaced == f"# Benchmarks\n\nBy hand.\n\n{BEGIN_MARKER}\n| new | table |\n{END_MARKER}\n\nAfter, by hand.\n"
    assert replace_generated(replaced, "| new | table |") == replaced
    with pytest.raises(ValueError, match="markers"):
        replace_generated("# no markers\n", "x")


def test_the_report_shows_each_size_the_growth_the_targets_and_warns_of_a_busy_machine():
    report = finish(_report())
    markdown = render_markdown(report)
    assert "| 1,000,000 | 56.7 | 85.0 | 1.00 | 2.0 | 170.0 | 255.0 | 7.00 | 85.0x |" in markdown
    assert "| dbt_models: fct_orders | 2.0 / 2.0 / 1.00 | 30.0 / 30.0 / 1.00 | 15.0x **above linear** |" in markdown
    assert "| 1M: night under 180 s | 170.0 s | met |" in markdown
    assert "| BG/NBD | alpha | 100 | 100.03 | yes |" in markdown
    assert "**Not a quiet machine:** the 1-minute load average was 0.90" in markdown
    lines = summary_lines(report)
    assert any("stages growing faster than the customers: dbt_models: fct_orders" in line for line in lines)
    assert lines[-1].startswith("WARNING: the 1-minute load average was 0.90")


@pytest.fixture
def warehouse():
    connection = duckdb.connect()
    connection.execute("create schema marts")
    connection.execute(
        """create table marts.fct_orders as select * from (values
            ('A', date '2026-01-01', 100.00),
            ('A', date '2026-01-01', 20.00),   -- same day: one purchase day worth 120
            ('A', date '2026-01-11', 50.00),
            ('A', date '2026-01-21', 0.00),    -- wholly refunded: not a purchase day
            ('A', date '2026-01-25', 30.00),
            ('A', date '2026-01-25', -30.00),  -- nor is a day whose refund cancels its order
            ('B', date '2026-01-30', 40.00),
            ('B', date '2026-02-10', 70.00),   -- after the cutoff
            ('C', date '2026-01-05', 10.00),
            ('C', date '2026-01-20', 25.00)
        ) as t(customer_id, order_date, net_revenue)"""
    )
    yield connection
    connection.close()


def test_both_clv_routes_summarise_the_same_purchase_days(warehouse):
    from lifetimes.utils import summary_data_from_transaction_data

    from pipelines.ml.features import clv_summary

    cutoff = date(2026, 1, 31)
    ours = clv_summary(warehouse, cutoff).to_pandas().set_index("customer_id")
    transactions = route_transactions(warehouse, cutoff)
    theirs = summary_data_from_transaction_data(
        transactions, "customer_id", "order_date", monetary_value_col="revenue", observation_period_end=cutoff
    )
    by_hand = pandas_summary(transactions, cutoff)
    expected = pd.DataFrame(
        {"frequency": [1.0, 0.0, 1.0], "recency": [10.0, 0.0, 15.0], "T": [30.0, 1.0, 26.0],
         "monetary_value": [50.0, 0.0, 25.0]},
        index=pd.Index(["A", "B", "C"], name="customer_id"),
    )  # fmt: skip
    for summary in (theirs, by_hand):
        pd.testing.assert_frame_equal(summary.sort_index(), expected, check_index_type=False)
    ours["monetary_value"] = ours["monetary_value"].fillna(0.0)
    pd.testing.assert_frame_equal(ours[expected.columns].astype(float), expected, check_index_type=False)


def test_sizes_may_be_repeated_or_listed_in_one_value():
    import click

    from pipelines.cli import _sizes

    assert _sizes(None, None, ("2000", "5000")) == (2000, 5000)
    assert _sizes(None, None, ("100000 1000000",)) == (100_000, 1_000_000)
    assert _sizes(None, None, ("100000,1000000",)) == (100_000, 1_000_000)
    with pytest.raises(click.BadParameter, match="whole numbers"):
        _sizes(None, None, ("1e6",))
    with pytest.raises(click.BadParameter, match="at least one size"):
        _sizes(None, None, ("0",))


def test_the_incremental_night_says_under_which_refit_cadence_it_ran():
    report = _report()
    assert "Every model fitted on both nights (model_refit_days 1)." in render_markdown(finish(report))
    report["incremental"]["model_refit_days"] = 7
    markdown, lines = render_markdown(finish(report)), summary_lines(finish(report))
    assert "Both nights with model_refit_days 7: the incremental night's churn, lifetime value and next best" in (
        markdown
    )
    assert any("incremental night at 1,000,000" in line and "model_refit_days 7" in line for line in lines)
