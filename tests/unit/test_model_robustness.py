"""A model never fails the night: every scoring model either returns scores or raises the one documented
``InsufficientDataError`` with a plain-words reason, which its asset turns into a model run that publishes the
baseline (or no scores) and says why, on the inputs real companies send: features missing for everyone,
constant features, one outcome only, a single customer, no repeat buyers, less history than the window."""

from datetime import date, timedelta

import dagster as dg
import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from models_ml import (
    TIERS,
    InsufficientDataError,
    choose_churn,
    choose_clv,
    compare,
    refuse,
    run_rfm,
    score_clv,
    segment_customers,
    tier_movement,
    train_churn_model,
    validate_columns,
)
from models_ml.rfm import SEGMENTS
from pipelines.ml.assets import build_ml_assets
from pipelines.ml.features import available_inputs, describe_inputs
from pipelines.resources import AS_OF_TAG, Warehouse
from pipelines.settings import load_settings
from tests.conftest import open_warehouse

PROPERTY = settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None
)

# --- The reported failure: churn on sales only ---------------------------------------------------------------------


def churn_cutoff(n: int, seed: int) -> pl.DataFrame:
    """Churn features as the SQL builds them when only sales exist: CRM, marketing and web features are 0 (counts,
    coalesced) or null (rates and averages) for every customer."""
    rng = np.random.default_rng(seed)
    recency = rng.exponential(120, n).round()
    return pl.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "recency_days": recency,
            "orders_365d": rng.poisson(2, n),
            "support_cases_365d": np.zeros(n, dtype=np.int64),
            "average_satisfaction": pl.Series([None] * n, dtype=pl.Float64),
            "campaign_response_rate": pl.Series([None] * n, dtype=pl.Float64),
            "days_since_web_session": pl.Series([None] * n, dtype=pl.Int64),
            "churned": rng.random(n) < 1 / (1 + np.exp(1.5 - recency / 100)),
        }
    )


def test_churn_on_sales_only_leaves_out_the_empty_features_and_scores_everyone():
    # Reported: ValueError "window shape cannot be larger than input array shape" from the trees' binning of a
    # feature no customer has, and nothing published.
    train, test, current = churn_cutoff(2000, 1), churn_cutoff(2000, 2), churn_cutoff(500, 3).drop("churned")
    run = choose_churn(train, test, current)
    assert run.scores.height == current.height
    assert run.scores["churn_probability"].is_between(0, 1).all()
    assert run.verdict.score_source in ("model", "baseline")
    assert set(run.dropped_features) == {
        "support_cases_365d",
        "average_satisfaction",
        "campaign_response_rate",
        "days_since_web_session",
    }
    assert run.dropped_features["average_satisfaction"] == "no value for any customer at the training and test cutoffs"
    assert run.dropped_features["support_cases_365d"] == "0 for every customer"
    assert set(run.features) == {"recency_days", "orders_365d"}
    assert run.verdict.notes[0].startswith("Left out of the model: support_cases_365d (0 for every customer)")


def test_training_on_a_feature_no_customer_has_names_it_instead_of_failing_in_the_trees():
    with pytest.raises(InsufficientDataError, match="average_satisfaction.* no value for any customer"):
        train_churn_model(churn_cutoff(300, 1), ["recency_days", "average_satisfaction"])


# --- Property tests: degenerate inputs for every model -------------------------------------------------------------

# sizes from nobody to a few dozen customers; flags for the degenerate cases
sizes = st.integers(min_value=0, max_value=40)
seeds = st.integers(min_value=0, max_value=2**16)


def rfm_frame(n: int, seed: int, missing: bool, constant: bool) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "days_since_last_order": np.full(n, 30) if constant else rng.integers(0, 800, n),
            "frequency": pl.Series([None] * n, dtype=pl.Int64) if missing else pl.Series(rng.integers(0, 4, n)),
            "monetary": pl.Series([None] * n, dtype=pl.Float64) if missing else pl.Series(rng.gamma(2, 40, n)),
        }
    )


@PROPERTY
@given(n=sizes, seed=seeds, missing=st.booleans(), constant=st.booleans())
@example(n=1, seed=0, missing=False, constant=False)  # a single customer
@example(n=25, seed=0, missing=True, constant=True)  # every feature missing or the same
def test_rfm_scores_every_customer_whatever_the_data(n, seed, missing, constant):
    customers = rfm_frame(n, seed, missing, constant)
    output = run_rfm(customers, as_of=AS_OF, window_days=730)
    scored = output.tables["rfm_scores"]
    assert scored.height == n
    assert scored["segment"].is_in(list(SEGMENTS)).all()
    for score in ("recency_score", "frequency_score", "monetary_score"):
        assert scored[score].is_between(1, 5).all()
    assert output.verdict.metrics["segments"] == scored["segment"].n_unique() <= min(n, len(SEGMENTS))


CLV_SCORE_COLUMNS = [
    "customer_id", "frequency", "recency", "T", "monetary_value", "p_alive", "expected_purchases",
    "expected_spend_per_purchase", "expected_spend", "clv", "expected_purchases_6m", "expected_spend_6m",
    "expected_spend_12m", "baseline_expected_spend_6m", "baseline_clv", "score_source",
]  # fmt: skip


def clv_history(n: int, seed: int, *, repeat: bool, age_days: int) -> pl.DataFrame:
    """A purchase summary in days: customers first bought up to ``age_days`` ago; without ``repeat`` nobody came
    back."""
    rng = np.random.default_rng(seed)
    age = rng.integers(0, age_days + 1, n).astype(float)
    frequency = rng.poisson(age / 60) if repeat else np.zeros(n, dtype=np.int64)
    recency = np.where(frequency > 0, np.floor(age * rng.uniform(0.2, 1, n)), 0.0)
    spend = rng.gamma(3, 20, n)
    return pl.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "frequency": frequency.astype(np.int64),
            "recency": recency,
            "T": age,
            "monetary_value": pl.Series(np.where(frequency > 0, spend, np.nan)).fill_nan(None),
            "average_order_value": spend * rng.uniform(0.8, 1.2, n),
        }
    )


@PROPERTY
@given(n=sizes, seed=seeds, repeat=st.booleans(), history=st.sampled_from([0, 20, 120, 700]))
@example(n=1, seed=0, repeat=True, history=700)  # a single customer
@example(n=30, seed=0, repeat=False, history=700)  # no repeat buyers
@example(n=30, seed=0, repeat=True, history=20)  # less history than the 6-month holdout
@example(n=0, seed=0, repeat=True, history=700)  # nobody
def test_clv_publishes_model_or_baseline_scores_or_says_why_not(n, seed, repeat, history):
    holdout_days = round(6 * 365.25 / 12)
    current = clv_history(n, seed, repeat=repeat, age_days=history)
    # the calibration cutoff is the holdout earlier: customers who had not bought yet drop out
    calibration = (
        current.filter(pl.col("T") >= holdout_days)
        .with_columns(pl.col("T") - holdout_days)
        .with_columns(
            # what happened after the calibration cutoff is not known at it: drop those repeat purchases
            frequency=pl.when(pl.col("recency") <= pl.col("T")).then("frequency").otherwise(0),
            recency=pl.when(pl.col("recency") <= pl.col("T")).then("recency").otherwise(0.0),
        )
        .with_columns(monetary_value=pl.when(pl.col("frequency") > 0).then("monetary_value"))
    )
    holdout = current.select("customer_id", purchases=pl.col("frequency") // 2, spend=pl.col("frequency") * 10.0)
    try:
        choice = choose_clv(
            calibration, holdout, current, holdout_months=6, horizon_months=12, annual_discount_rate=0.1
        )
    except InsufficientDataError as error:
        assert n == 0 and "nobody to score" in error.reason
        # what the asset then writes: no rows, the columns of the scores
        assert score_clv(None, current, 12, 0.1).columns == CLV_SCORE_COLUMNS
        return
    scores = choice.scores
    assert scores.columns == CLV_SCORE_COLUMNS
    assert scores.height == n and scores["customer_id"].to_list() == current["customer_id"].to_list()
    assert choice.verdict.score_source in ("model", "baseline")
    assert (scores["score_source"] == choice.verdict.score_source).all()
    assert (choice.fit is None) == (choice.verdict.score_source == "baseline")
    for column in ("expected_purchases", "expected_spend", "clv", "expected_spend_12m", "baseline_clv"):
        assert scores[column].is_finite().all() and (scores[column] >= 0).all(), column
    assert scores["p_alive"].is_between(0, 1).all()
    if choice.verdict.score_source == "baseline":
        assert choice.verdict.notes and choice.verdict.notes[-1] == "The baseline's scores are published."
    if calibration.is_empty():
        assert "the history is shorter than the holdout" in choice.verdict.notes[0]


def churn_frames(n: int, seed: int, one_class: bool, constant: bool):
    frames = []
    for offset in range(3):
        frame = churn_cutoff(n, seed + offset).with_columns(
            orders_365d=pl.lit(1) if constant else pl.col("orders_365d"),
            recency_days=pl.lit(40.0) if constant else pl.col("recency_days"),
        )
        frames.append(frame.with_columns(churned=pl.lit(True)) if one_class else frame)
    return frames[0], frames[1], frames[2].drop("churned")


@PROPERTY
@given(n=st.integers(min_value=0, max_value=60), seed=seeds, one_class=st.booleans(), constant=st.booleans())
@example(n=1, seed=0, one_class=False, constant=False)  # a single customer
@example(n=40, seed=0, one_class=True, constant=False)  # one outcome only
@example(n=40, seed=0, one_class=False, constant=True)  # constant features, the others missing for everyone
@example(n=0, seed=0, one_class=False, constant=False)  # less history than the churn windows: nobody
def test_churn_publishes_model_or_baseline_scores_or_says_why_not(n, seed, one_class, constant):
    train, test, current = churn_frames(n, seed, one_class, constant)
    try:
        run = choose_churn(train, test, current)
    except InsufficientDataError as error:
        assert error.reason
        assert n == 0 or one_class or train["churned"].n_unique() < 2 or test["churned"].n_unique() < 2
        return
    assert run.scores.height == n
    assert run.scores["churn_probability"].is_between(0, 1).all()
    assert run.scores["risk_band"].is_in(["low", "medium", "high"]).all()
    assert run.verdict.score_source in ("model", "baseline")
    assert (run.scores["score_source"] == run.verdict.score_source).all()


@PROPERTY
@given(n=sizes, seed=seeds, missing=st.booleans(), constant=st.booleans())
@example(n=1, seed=0, missing=False, constant=False)
@example(n=20, seed=0, missing=True, constant=False)  # no lifetime-value scores at all
@example(n=20, seed=0, missing=False, constant=True)
def test_tier_movement_classifies_everyone_or_says_why_not(n, seed, missing, constant):
    rng = np.random.default_rng(seed)
    customers = pl.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "loyalty_tier": pl.Series(rng.choice(TIERS, n).tolist(), dtype=pl.String),
            "trailing_12m_net_revenue": np.full(n, 500.0) if constant else rng.gamma(1, 800, n),
            "expected_spend_12m": pl.Series([None] * n, dtype=pl.Float64)
            if missing
            else pl.Series(np.full(n, 500.0) if constant else rng.gamma(1, 800, n)),
        }
    )
    thresholds = {"silver": 250, "gold": 1000, "platinum": 3000}
    try:
        moved = tier_movement(customers, thresholds)
    except InsufficientDataError as error:
        assert missing and n > 0 and "no customer has a predicted 12-month spend" in error.reason
        return
    assert moved.height == n
    assert moved["movement"].is_in(["upgrade candidate", "downgrade risk", "stable"]).all()


@PROPERTY
@given(n=sizes, seed=seeds, constant=st.booleans(), missing=st.booleans())
@example(n=1, seed=0, constant=False, missing=False)
@example(n=30, seed=0, constant=True, missing=True)  # every feature the same for everyone
@example(n=30, seed=0, constant=False, missing=True)  # the CRM, marketing and web features filled with 0
def test_segments_assign_everyone_or_say_why_not(n, seed, constant, missing):
    rng = np.random.default_rng(seed)
    features = ["recency_days", "orders_365d", "web_sessions_90d", "support_cases_365d"]
    customers = pl.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "recency_days": np.full(n, 10.0) if constant else rng.exponential(100, n),
            "orders_365d": np.ones(n) if constant else rng.poisson(3, n).astype(float),
            # the asset fills a missing source's features with 0
            "web_sessions_90d": np.zeros(n) if missing else rng.poisson(2, n).astype(float),
            "support_cases_365d": np.zeros(n) if missing else rng.poisson(1, n).astype(float),
        }
    )
    try:
        result = segment_customers(customers, features, k_range=range(2, 5), n_init=2)
    except InsufficientDataError as error:
        assert error.reason.startswith("segments: ")
        return
    assert result.assignments.height == n
    assert result.profiles["customers"].sum() == n


# --- The protocol ---------------------------------------------------------------------------------------------


def test_compare_needs_a_strict_win_on_a_finite_figure():
    assert compare({"mae": 1.10}, {"mae": 1.27}, "mae", lower_is_better=True, label="MAE").beats
    tie = compare({"auc": 0.7}, {"auc": 0.7}, "auc", lower_is_better=False, label="AUC", model="churn")
    assert not tie.beats and tie.sentence == "The AUC of churn, 0.700, is not above the baseline's 0.700."
    missing = compare({"auc": float("nan")}, {"auc": 0.6}, "auc", lower_is_better=False, label="AUC")
    assert not missing.beats and "could not be computed for the model's scores" in missing.sentence


def test_a_refusal_says_why_and_what_is_published():
    verdict = refuse("every customer bought once.", baseline=True, baseline_metrics={"mae_spend": 3.0})
    assert (verdict.score_source, verdict.beats_baseline) == ("baseline", False)
    assert verdict.notes == ("Every customer bought once.", "The baseline's scores are published.")
    nothing = refuse("there is nobody to score", baseline=False)
    assert (nothing.score_source, nothing.beats_baseline) == ("none", None)
    assert nothing.notes[-1] == "No scores are published this run."


def test_one_shared_validator_names_the_problem():
    frame = pl.DataFrame({"customer_id": ["a", "a"], "x": ["1", "2"]})
    with pytest.raises(ValueError, match="lacks column.*y"):
        validate_columns(frame, ["y"], "model")
    with pytest.raises(ValueError, match=r"unique; duplicated: \['a'\]"):
        validate_columns(frame, ["x"], "model")
    with pytest.raises(ValueError, match="x is String, not numeric"):
        validate_columns(frame.head(1), ["x"], "model", numeric=["x"])
    assert issubclass(InsufficientDataError, ValueError)


def test_describe_inputs_says_which_sources_fed_a_model():
    only_sales = dict.fromkeys(("returns", "crm", "marketing", "web", "callcenter"), 0) | {"sales": 10}
    assert describe_inputs("churn", only_sales) == (
        ["sales"],
        "churn ran on sales only: no returns, crm, marketing, web or callcenter data before the cutoff.",
    )
    everything = dict.fromkeys(("sales", "returns", "crm", "marketing", "web", "callcenter"), 3)
    assert describe_inputs("clv", everything) == (["sales", "returns"], None)


# --- The assets on a tiny warehouse -------------------------------------------------------------------------------

AS_OF = date(2026, 6, 30)


def sales_only_warehouse(path, customers: int, seed: int, *, history_days: int) -> None:
    """marts as dbt builds them when only the sales export exists: orders, their lines and products, the order
    touches in fct_interactions, no support cases, no returns. Customers buy at their own Poisson rate and some
    stop buying after a while."""
    rng = np.random.default_rng(seed)
    rows = []
    for number in range(customers):
        first = int(rng.integers(1, history_days + 1))  # days before the cutoff
        lifetime = first if rng.random() < 0.5 else int(rng.integers(0, first + 1))
        repeats = rng.uniform(0, lifetime, rng.poisson(rng.gamma(1.5, 1 / 60) * lifetime))
        for order, days_ago in enumerate(sorted({first} | {first - int(day) for day in repeats}, reverse=True)):
            rows.append((f"C{number:04d}", f"O{number:04d}-{order}", AS_OF - timedelta(days=days_ago)))
    schema = {"customer_id": pl.String, "order_id": pl.String, "order_date": pl.Date}
    orders = pl.DataFrame(rows, schema=schema, orient="row").with_columns(
        net_revenue=pl.Series(rng.gamma(3, 20, len(rows))).round(2),
        refund_amount=pl.lit(0.0),
        sales_channel=pl.lit("web"),
    )
    orders = orders.with_columns(gross_revenue=pl.col("net_revenue"), gross_amount=pl.col("net_revenue"))
    with open_warehouse(path, read_only=False) as connection:
        connection.register("orders", orders.to_arrow())
        connection.execute("create table marts.fct_orders as select * from orders")
        connection.execute(
            """create table marts.fct_order_lines as
            select customer_id, order_id, 'P1' as product_id, order_date, net_revenue::decimal(18, 2) as net_revenue
            from orders"""
        )
        connection.execute("create table marts.dim_products as select 'P1' as product_id, 'Music' as department_name")
        connection.execute(
            """create table marts.fct_interactions as
            select customer_id, 'order' as interaction_type, 'web' as channel_id, order_date as occurred_date
            from orders"""
        )
        connection.execute(
            """create table marts.fct_support_cases (customer_id varchar, satisfaction_score integer,
            closed_at timestamp, opened_date date)"""
        )
        connection.execute(
            """create table marts.dim_customers as
            select
                customer_id,
                'customer' as customer_type,
                date_diff('day', max(order_date), $as_of::date) as days_since_last_order,
                count(*) filter (where order_date >= $as_of::date - 730) as rfm_window_orders,
                coalesce(sum(net_revenue) filter (where order_date >= $as_of::date - 730), 0)
                    as rfm_window_net_revenue,
                coalesce(sum(net_revenue) filter (where order_date >= $as_of::date - 365), 0)
                    as trailing_12m_net_revenue,
                case when trailing_12m_net_revenue >= 250 then 'silver' else 'bronze' end as loyalty_tier,
                true as has_purchased
            from orders group by customer_id""",
            {"as_of": AS_OF},
        )


def materialise(tmp_path, **warehouse) -> tuple[dg.ExecuteInProcessResult, dict]:
    path = tmp_path / "crm.duckdb"
    sales_only_warehouse(path, **warehouse)
    result = dg.materialize(
        build_ml_assets(load_settings({})),
        resources={"warehouse": Warehouse(path=str(path), landing_dir=str(tmp_path), published_dir=str(tmp_path))},
        tags={AS_OF_TAG: AS_OF.isoformat()},
        raise_on_error=False,
    )
    with open_warehouse(path) as connection:
        runs = {
            row[0]: dict(zip(("score_source", "beats_baseline", "notes", "inputs"), row[1:], strict=True))
            for row in connection.execute(
                "select model, score_source, beats_baseline, notes, inputs::varchar from ml.model_runs"
            ).fetchall()
        }
        counts = {
            table: connection.execute(f"select count(*) from ml.{table}").fetchall()[0][0]
            for table in ("rfm_scores", "clv_scores", "churn_scores", "tier_movement", "behaviour_segments")
        }
    return result, {"runs": runs, "counts": counts}


def test_every_model_runs_on_sales_only_and_says_so(tmp_path):
    result, written = materialise(tmp_path, customers=600, seed=11, history_days=900)
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    runs = written["runs"]
    assert set(runs) == {"rfm", "clv", "churn", "tier_movement", "behaviour_segments"}
    assert runs["churn"]["inputs"] == '["sales"]'
    assert "churn ran on sales only: no returns, crm, marketing, web or callcenter data" in runs["churn"]["notes"]
    assert runs["churn"]["score_source"] in ("model", "baseline")
    assert "Left out of the model: " in runs["churn"]["notes"]
    assert runs["clv"]["score_source"] in ("model", "baseline")
    assert written["counts"]["churn_scores"] == written["counts"]["rfm_scores"] == 600
    assert written["counts"]["behaviour_segments"] == 600


def test_less_history_than_the_windows_publishes_the_baseline_or_nothing_and_says_why(tmp_path):
    # every customer first bought in the last 60 days: shorter than the 6-month CLV holdout and the churn windows
    result, written = materialise(tmp_path, customers=80, seed=12, history_days=60)
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    runs = written["runs"]
    assert runs["clv"]["score_source"] == "baseline"
    assert "the history is shorter than the holdout" in runs["clv"]["notes"]
    assert runs["churn"]["score_source"] == "none"
    assert "No scores are published this run." in runs["churn"]["notes"]
    assert written["counts"]["clv_scores"] == 80


def test_a_single_customer_is_scored_but_not_segmented(tmp_path):
    result, written = materialise(tmp_path, customers=1, seed=13, history_days=900)
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    runs = written["runs"]
    assert runs["behaviour_segments"]["score_source"] == "none"
    assert "too few to segment" in runs["behaviour_segments"]["notes"]
    assert runs["clv"]["score_source"] in ("model", "baseline")
    assert written["counts"]["rfm_scores"] == written["counts"]["clv_scores"] == 1


def test_available_inputs_count_each_source(tmp_path):
    path = tmp_path / "crm.duckdb"
    sales_only_warehouse(path, customers=5, seed=1, history_days=100)
    with open_warehouse(path, read_only=False) as connection:
        connection.execute(
            """insert into marts.fct_interactions values ('C0000', 'web_session', 'web_session', date '2026-06-01'),
            ('C0001', 'click', 'email', date '2026-06-01'), (null, 'call', 'call', date '2026-06-01')"""
        )
        counts = available_inputs(connection, AS_OF)
    assert counts["web"] == counts["marketing"] == 1
    assert counts["callcenter"] == 0, "a call nobody could be matched to feeds no customer's features"
    assert counts["returns"] == counts["crm"] == 0 and counts["sales"] >= 5


def test_no_order_before_the_cutoff_fails_no_step_and_every_run_says_why(tmp_path):
    result, written = materialise(tmp_path, customers=0, seed=1, history_days=900)
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    assert set(written["counts"].values()) == {0}, "every table exists, with no rows for this cutoff"
    runs = written["runs"]
    assert {model: run["inputs"] for model, run in runs.items()} == dict.fromkeys(runs, "[]")
    assert (runs["clv"]["score_source"], runs["churn"]["score_source"]) == ("none", "none")
    assert "so there is nobody to score. No scores are published this run." in runs["clv"]["notes"]
    assert "clv ran on no data: no sales or returns data before the cutoff." in runs["clv"]["notes"]
