"""The protocol around every model, as pure functions: the cutoffs, the run functions (model or baseline, or no
scores and why), the beats_baseline check's content, what a model run records, and the one column validator."""

import pickle
from dataclasses import replace
from datetime import date, datetime

import numpy as np
import polars as pl
import pytest

from models_ml import (
    ChurnCutoffs,
    ChurnInputs,
    ClvInputs,
    CutoffHistory,
    InsufficientDataError,
    ModelOutput,
    StoredFit,
    Verdict,
    baseline_check,
    calibration_cutoff,
    choose_churn,
    churn_cutoffs,
    churn_fit_key,
    churn_frame,
    fit_clv,
    refuse,
    refusing,
    run_churn,
    run_clv,
    run_segments,
    run_tier_movement,
    validate_columns,
)
from models_ml.segments import PROFILE_COLUMNS
from pipelines.ml.model_runs import ModelRun

AS_OF = date(2026, 6, 30)

# --- Cutoffs -------------------------------------------------------------------------------------------------------


def test_churn_cutoffs_step_back_from_the_day_after_the_last_order_when_the_exports_stop_early():
    # the exports stop on 31 March: the last window with known outcomes ends on 1 April, not on the cutoff
    assert churn_cutoffs(AS_OF, date(2026, 3, 31), 90) == ChurnCutoffs(
        train=date(2025, 10, 3), test=date(2026, 1, 1), anchor=date(2026, 4, 1)
    )


def test_churn_cutoffs_of_up_to_date_exports_or_no_orders_step_back_from_the_cutoff():
    expected = ChurnCutoffs(train=date(2025, 12, 30), test=date(2026, 3, 31), anchor=AS_OF)
    assert churn_cutoffs(AS_OF, date(2026, 6, 29), 91) == expected
    assert churn_cutoffs(AS_OF, None, 91) == expected
    with pytest.raises(ValueError, match="window_days"):
        churn_cutoffs(AS_OF, None, 0)


def test_the_clv_holdout_is_the_months_in_days_before_the_cutoff():
    assert calibration_cutoff(AS_OF, 6) == (date(2025, 12, 29), 183)  # 6 x 365.25 / 12 = 182.6, rounded
    assert calibration_cutoff(AS_OF, 12) == (date(2025, 6, 30), 365)


# --- Refusing, the check, the model run --------------------------------------------------------------------------

NOTHING = ModelOutput({"scores": pl.DataFrame(schema={"customer_id": pl.String})}, rows_used=3)


def test_a_model_the_data_cannot_support_publishes_nothing_and_says_why():
    def attempt() -> ModelOutput:
        raise InsufficientDataError("every customer bought once")

    output = refusing(attempt, NOTHING)
    assert output.verdict == Verdict(
        "none", None, {}, None, ("Every customer bought once.", "No scores are published this run.")
    )
    assert output.tables is NOTHING.tables and output.rows_used == 3


def test_a_broken_contract_still_fails_loudly_and_a_model_that_fits_passes_through():
    def broken() -> ModelOutput:
        raise ValueError("rfm: input lacks column(s) monetary")

    with pytest.raises(ValueError, match="lacks column"):
        refusing(broken, NOTHING)
    fitted = ModelOutput({"scores": pl.DataFrame({"customer_id": ["A"]})}, Verdict("model", True))
    assert refusing(lambda: fitted, NOTHING) is fitted


def test_the_check_passes_only_when_the_model_won_and_its_scores_are_published():
    won = Verdict("model", True, {"auc": 0.8}, {"auc": 0.7}, ("The AUC of the model, 0.800, is above 0.700.",))
    check = baseline_check(won, "auc", lower_is_better=False)
    assert check.passed
    assert (
        check.description == "The model's auc on held-out data is higher than the baseline's; its scores are published."
    )
    assert check.metadata == {"model_auc": 0.8, "baseline_auc": 0.7, "score_source": "model"}

    lost = Verdict("baseline", False, {"rmse_spend": 12.0}, {"rmse_spend": 10.0}, ("Worse.", "Baseline published."))
    check = baseline_check(lost, "rmse_spend", lower_is_better=True)
    assert not check.passed and check.description == "Worse. Baseline published."
    assert check.metadata == {"model_rmse_spend": 12.0, "baseline_rmse_spend": 10.0, "score_source": "baseline"}

    check = baseline_check(refuse("nobody to score", baseline=False), "auc", lower_is_better=False)
    assert not check.passed and "No scores are published this run." in check.description
    assert check.metadata == {"model_auc": None, "baseline_auc": None, "score_source": "none"}


def test_a_model_run_records_what_the_run_function_reports_after_its_inputs_note():
    run = ModelRun("churn", AS_OF, "0123456789", datetime(2026, 7, 1, 2, 0))
    run.notes.append("churn ran on sales only: no web data before the cutoff.")
    verdict = Verdict("baseline", False, {"auc": 0.6}, {"auc": 0.7}, ("Not above.",))
    run.took(ModelOutput({}, verdict, {"window": 90}, 12, date(2025, 10, 3), date(2026, 4, 1)))
    assert run.verdict == Verdict(
        "baseline", False, {"auc": 0.6}, {"auc": 0.7},
        ("churn ran on sales only: no web data before the cutoff.", "Not above."),
    )  # fmt: skip
    assert (run.parameters, run.rows_used, run.training_from, run.training_to) == (
        {"window": 90}, 12, date(2025, 10, 3), date(2026, 4, 1),
    )  # fmt: skip


# --- The run functions -------------------------------------------------------------------------------------------

THRESHOLDS = {"silver": 250, "gold": 1000, "platinum": 3000}


def test_tier_movement_counts_each_movement_or_without_predicted_spend_publishes_nothing():
    customers = pl.DataFrame(
        {
            "customer_id": ["up", "down", "stays"],
            "loyalty_tier": ["bronze", "silver", "gold"],
            "trailing_12m_net_revenue": [240.0, 300.0, 1200.0],
            "expected_spend_12m": [300.0, 100.0, 1500.0],
        }
    )
    output = run_tier_movement(customers, THRESHOLDS, closeness=0.75, as_of=AS_OF)
    assert output.verdict.metrics == {"upgrade candidate": 1, "downgrade risk": 1, "stable": 1}
    assert output.parameters == {**THRESHOLDS, "closeness": 0.75}
    assert (output.rows_used, output.training_from, output.training_to) == (3, date(2025, 6, 30), AS_OF)

    unknown = customers.with_columns(expected_spend_12m=pl.lit(None, dtype=pl.Float64))
    refused = run_tier_movement(unknown, THRESHOLDS, closeness=0.75, as_of=AS_OF)
    assert refused.tables["tier_movement"].height == 0
    assert refused.tables["tier_movement"].columns == output.tables["tier_movement"].columns
    assert (
        refused.verdict.score_source == "none"
        and "no customer has a predicted 12-month spend" in (refused.verdict.notes[0])
    )
    assert refused.parameters == output.parameters and refused.rows_used == 3


def behaviour(n: int, seed: int) -> pl.DataFrame:
    """Behaviour as features.py builds it: two groups of customers apart on orders and web sessions, one category
    share, a column segmentation does not read, and a customer without web data (null)."""
    rng = np.random.default_rng(seed)
    group = np.arange(n) % 2
    return pl.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "recency_days": rng.exponential(60, n) + 200 * group,
            "orders_365d": rng.poisson(1 + 6 * (1 - group)).astype(float),
            "web_sessions_90d": pl.Series(rng.poisson(10 * (1 - group) + 1).astype(float)).scatter(0, None),
            "category_share__music": rng.uniform(0, 1, n),
            "lifetime_orders": rng.poisson(5, n),
        }
    )


def test_segments_cluster_on_the_behaviour_they_are_meant_for_and_fill_what_is_missing_with_0():
    output = run_segments(behaviour(60, 1), feature_label=lambda feature: feature.replace("_", " "))
    assert output.parameters["features"] == ["recency_days", "orders_365d", "web_sessions_90d", "category_share__music"]
    assert output.tables["behaviour_segments"].height == 60 and output.rows_used == 60
    profiles = output.tables["behaviour_segment_profiles"]
    assert tuple(profiles.columns) == PROFILE_COLUMNS and profiles["customers"].sum() == 60
    assert output.verdict.metrics["k"] == profiles.height >= 2


def test_too_few_customers_to_segment_publish_no_rows_and_say_why():
    output = run_segments(behaviour(3, 1))
    assert {name: table.height for name, table in output.tables.items()} == {
        "behaviour_segments": 0,
        "behaviour_segment_profiles": 0,
    }
    assert tuple(output.tables["behaviour_segment_profiles"].columns) == PROFILE_COLUMNS
    assert output.verdict.score_source == "none" and "too few to segment" in output.verdict.notes[0]


def test_clv_with_nobody_to_score_publishes_no_rows_and_says_why():
    summary = pl.DataFrame(
        schema={"customer_id": pl.String, "frequency": pl.Int64, "recency": pl.Float64, "T": pl.Float64,
                "monetary_value": pl.Float64, "average_order_value": pl.Float64}
    )  # fmt: skip
    holdout = pl.DataFrame(schema={"customer_id": pl.String, "purchases": pl.Int64, "spend": pl.Float64})
    output = run_clv(
        ClvInputs(AS_OF, summary, holdout, summary), holdout_months=6, horizon_months=12, annual_discount_rate=0.1
    )
    assert output.tables["clv_scores"].height == output.tables["clv_matrices"].height == 0
    assert {"clv", "p_alive", "score_source"} <= set(output.tables["clv_scores"].columns)
    assert output.verdict.score_source == "none" and "nobody to score" in output.verdict.notes[0]
    assert (output.rows_used, output.training_from, output.training_to) == (0, None, AS_OF)


# --- Churn: each cutoff's frame, the run, and the comparison without engagement ----------------------------------

ENGAGEMENT = ("web_sessions_30d", "email_opens_90d")


def churn_cutoff(n: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.Series]:
    """Behaviour, purchase summary and who bought after the cutoff, where churn follows engagement alone: a
    customer who browsed in the last 30 days buys again with probability 0.85, one who did not with 0.2; recency
    and orders carry no signal."""
    rng = np.random.default_rng(seed)
    browsing = rng.random(n) < 0.5
    ids = [f"C{i:04d}" for i in range(n)]
    age = rng.uniform(100, 700, n).round()
    frequency = rng.poisson(age / 150)
    frame = pl.DataFrame(
        {
            "customer_id": ids,
            "recency_days": rng.uniform(0, 300, n).round(),
            "orders_365d": rng.poisson(2, n),
            "web_sessions_30d": np.where(browsing, rng.poisson(4, n) + 1, 0),
            "email_opens_90d": np.where(browsing, rng.poisson(2, n), rng.poisson(0.3, n)),
        }
    )
    summary = pl.DataFrame(
        {
            "customer_id": ids,
            "frequency": frequency,
            "recency": np.where(frequency > 0, (age * rng.uniform(0.2, 1, n)).round(), 0.0),
            "T": age,
            "monetary_value": pl.Series(np.where(frequency > 0, 40.0, np.nan)).fill_nan(None),
        }
    )
    bought = rng.random(n) < np.where(browsing, 0.85, 0.2)
    return frame, summary, pl.Series("customer_id", ids).filter(bought)


@pytest.fixture(scope="module")
def inputs() -> ChurnInputs:
    cutoffs = churn_cutoffs(AS_OF, date(2026, 6, 29), 90)
    train, test, current = (churn_cutoff(n, seed) for n, seed in ((500, 1), (500, 2), (200, 3)))
    fit = fit_clv(current[1], spend=False)
    return ChurnInputs(
        cutoffs,
        CutoffHistory(cutoffs.train, *train),
        CutoffHistory(cutoffs.test, *test),
        CutoffHistory(AS_OF, current[0], current[1]),
        published_fit=fit,
    )


def test_a_cutoffs_frame_adds_the_purchase_model_and_the_label(inputs):
    frame = churn_frame(inputs.test, 90, fit=inputs.published_fit)
    bought = set(inputs.test.bought)
    assert frame.height == 500 and frame["churned"].to_list() == [c not in bought for c in frame["customer_id"]]
    assert frame["p_alive"].is_between(0, 1).all() and (frame["expected_purchases_in_window"] >= 0).all()
    unlabelled = churn_frame(inputs.current, 90, fit=inputs.published_fit)
    assert "churned" not in unlabelled.columns
    nobody = CutoffHistory(AS_OF, inputs.current.behaviour, inputs.current.summary.head(0))
    unknown = churn_frame(nobody, 90)  # no history to fit a purchase model on: P(alive) unknown, not a failure
    assert unknown["p_alive"].null_count() == unknown.height == 200


@pytest.fixture(scope="module")
def with_engagement(inputs) -> ModelOutput:
    return run_churn(inputs, window_days=90, feature_label=str.upper)


def test_the_churn_run_publishes_its_scores_and_records_its_cutoffs(inputs, with_engagement):
    output = with_engagement
    scores = output.tables["churn_scores"]
    assert scores.columns == [
        "customer_id", "churn_probability", "risk_band", "churn_reasons", "baseline_churn_probability", "score_source"
    ]  # fmt: skip
    assert scores.height == 200 and output.verdict.score_source == "model"
    assert output.verdict.metrics["auc"] > output.verdict.baseline_metrics["auc"] + 0.2
    assert (output.rows_used, output.training_from, output.training_to) == (
        1000, inputs.cutoffs.train, inputs.cutoffs.anchor,
    )  # fmt: skip
    assert output.parameters["test_cutoff"] == inputs.cutoffs.test and "excluded_features" not in output.parameters
    assert {"web_sessions_30d", "p_alive"} <= set(output.parameters["features"])
    assert output.verdict.metrics["drivers"][0]["label"] == "WEB_SESSIONS_30D", "the feature's words reach the run"


def test_without_engagement_the_model_cannot_see_what_drives_churn_here(inputs, with_engagement):
    train, test, current = (
        churn_frame(history, 90, fit=inputs.published_fit) for history in (inputs.train, inputs.test, inputs.current)
    )
    run = choose_churn(train, test, current, exclude=ENGAGEMENT)
    assert not set(ENGAGEMENT) & set(run.features) and "recency_days" in run.features
    # recency carries no signal in this world, so without engagement nothing beats a coin by much
    assert run.verdict.metrics["auc"] < 0.6 < 0.75 < with_engagement.verdict.metrics["auc"]


def test_a_churn_run_with_one_outcome_at_both_cutoffs_publishes_nothing_and_says_why(inputs):
    everyone = pl.Series("customer_id", [], dtype=pl.String)  # nobody bought after either cutoff
    one_outcome = ChurnInputs(
        inputs.cutoffs,
        CutoffHistory(inputs.cutoffs.train, inputs.train.behaviour, inputs.train.summary, everyone),
        CutoffHistory(inputs.cutoffs.test, inputs.test.behaviour, inputs.test.summary, everyone),
        inputs.current,
        inputs.published_fit,
    )
    output = run_churn(one_outcome, window_days=90, exclude=ENGAGEMENT)
    scores = output.tables["churn_scores"]
    assert scores.height == 200 and scores["churn_probability"].null_count() == 200
    assert (scores["score_source"] == "none").all() and output.verdict.score_source == "none"
    assert "nothing to tell churners from stayers" in output.verdict.notes[0]
    assert output.parameters["churn_window_days"] == 90
    assert output.parameters["excluded_features"] == list(ENGAGEMENT), "what was left out on request is recorded"
    assert not set(ENGAGEMENT) & set(output.parameters["features"])


# --- The one column validator --------------------------------------------------------------------------------------


def test_the_validator_names_the_frame_and_the_column_that_breaks_a_rule():
    frame = pl.DataFrame({"customer_id": ["a", "b"], "x": [1.0, float("nan")], "y": [-1.0, float("inf")]})
    with pytest.raises(ValueError, match="model: actual lacks column.*z"):
        validate_columns(frame, ["z"], "model", name="actual")
    with pytest.raises(ValueError, match="x has 1 null or NaN value.*; fill them"):
        validate_columns(frame, ["x"], "model", not_null=["x"], advice="fill them")
    with pytest.raises(ValueError, match="y has infinite values"):
        validate_columns(frame, [], "model", finite=["y"])
    with pytest.raises(ValueError, match="y has negative values"):
        validate_columns(frame, [], "model", non_negative=["y"])
    validate_columns(frame, [], "model", not_null=["y"], key=None)  # every rule off: nothing to refuse


# --- Churn: scoring with an earlier night's fit (model_refit_days) -------------------------------------------------


def test_a_night_scoring_with_the_stored_fit_gives_the_fitting_nights_very_scores(inputs, with_engagement):
    """The fit a run returns, through pickle as meta.model_fits keeps it, scores the same customers to the bit,
    with the fitting night's verdict and facts and a note saying whose fit it is."""
    fit = pickle.loads(pickle.dumps(with_engagement.fit))
    assert with_engagement.fit_key == churn_fit_key(inputs.current, 90) and with_engagement.fitted_as_of is None
    stored = StoredFit(date(2026, 6, 27), date(2026, 7, 4), fit)
    current_only = replace(inputs, train=None, test=None)
    output = run_churn(current_only, window_days=90, feature_label=str.upper, stored=stored)
    assert output.tables["churn_scores"].equals(with_engagement.tables["churn_scores"])
    assert output.fit is None and output.fit_key is None, "only a fitting night stores a fit"
    assert output.fitted_as_of == date(2026, 6, 27)
    assert output.verdict.metrics == with_engagement.verdict.metrics
    assert output.verdict.notes[:-1] == with_engagement.verdict.notes
    assert (
        "fit made on the night of 2026-06-27" in output.verdict.notes[-1] and "2026-07-04" in output.verdict.notes[-1]
    )
    assert (output.parameters, output.rows_used, output.training_to) == (
        with_engagement.parameters, with_engagement.rows_used, with_engagement.training_to,
    )  # fmt: skip
    with pytest.raises(ValueError, match="training and test"):
        run_churn(current_only, window_days=90)


def test_the_churn_fit_key_changes_with_what_the_fit_depends_on(inputs):
    key = churn_fit_key(inputs.current, 90)
    fewer = CutoffHistory(AS_OF, inputs.current.behaviour.drop("email_opens_90d"), inputs.current.summary)
    assert key == churn_fit_key(inputs.current, 90, (), 0)
    others = [
        churn_fit_key(inputs.current, 30),
        churn_fit_key(fewer, 90),
        churn_fit_key(inputs.current, 90, ENGAGEMENT),
        churn_fit_key(inputs.current, 90, seed=1),
        churn_fit_key(inputs.current, 90, sample=300),
    ]
    assert len({key, *others}) == 6


def test_a_churn_run_learning_from_a_sample_says_so_and_is_still_judged_on_everyone(inputs, with_engagement):
    sampled = run_churn(inputs, window_days=90, feature_label=str.upper, sample=300)
    assert sampled.parameters["training_sample"] == 300 and with_engagement.parameters["training_sample"] is None
    note = next(note for note in sampled.verdict.notes if "random sample" in note)
    assert "300 of the 500 customers and 300 of the 500 customers at the cutoffs" in note
    assert not any("random sample" in note for note in with_engagement.verdict.notes)
    assert sampled.verdict.metrics["customers"] == with_engagement.verdict.metrics["customers"] == 500
    assert sampled.verdict.metrics["auc"] != with_engagement.verdict.metrics["auc"], "other trees"
    assert sampled.verdict.score_source == "model" and sampled.tables["churn_scores"].height == 200
    assert sampled.fit_key == churn_fit_key(inputs.current, 90, sample=300) != with_engagement.fit_key
