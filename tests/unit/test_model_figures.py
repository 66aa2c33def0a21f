"""The figures the Model quality page draws: churn ROC curve and gains, lifetime value predicted against actual by
decile, and that they reach ml.model_runs as JSON."""

import itertools
import json
import math
from datetime import UTC, date, datetime

import duckdb
import numpy as np
import polars as pl
import pytest

from models_ml import classification_figures, evaluate_holdout
from models_ml.churn import ROC_POINTS
from pipelines.ml.model_runs import ModelRun, record_model_run


def _scored(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from known probabilities, and those probabilities blurred: a fair but imperfect ranking."""
    rng = np.random.default_rng(seed)
    truth = 1 / (1 + np.exp(-rng.normal(-1.0, 1.5, n)))
    labels = (rng.random(n) < truth).astype(int)
    return labels, np.clip(truth + rng.normal(0, 0.1, n), 0, 1)


def _area(points: list[dict[str, float]]) -> float:
    fpr = np.array([point["fpr"] for point in points])
    tpr = np.array([point["tpr"] for point in points])
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def test_the_roc_curve_of_a_hand_made_example_keeps_every_corner():
    figures = classification_figures(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1]))
    # Lowering the threshold past 0.9, 0.8, 0.7 and 0.1 finds a churner, a stayer, a churner, a stayer.
    assert [(point["fpr"], point["tpr"]) for point in figures["roc"]] == [
        (0.0, 0.0),
        (0.0, 0.5),
        (0.5, 0.5),
        (0.5, 1.0),
        (1.0, 1.0),
    ]
    assert _area(figures["roc"]) == figures["auc"] == 0.75


def test_a_long_roc_curve_is_thinned_but_keeps_its_ends_its_order_and_its_area():
    labels, probabilities = _scored(4000, 1)
    figures = classification_figures(labels, probabilities)
    roc = figures["roc"]
    assert len(roc) == ROC_POINTS, "thousands of thresholds are thinned to the published number of points"
    assert (roc[0]["fpr"], roc[0]["tpr"]) == (0.0, 0.0) and (roc[-1]["fpr"], roc[-1]["tpr"]) == (1.0, 1.0)
    assert all(a["fpr"] <= b["fpr"] and a["tpr"] <= b["tpr"] for a, b in itertools.pairwise(roc))
    assert abs(_area(roc) - figures["auc"]) < 0.01, (_area(roc), figures["auc"])


@pytest.mark.parametrize(("churners", "reached_at"), [(230, 0.3), (300, 0.3), (45, 0.1), (910, 1.0)])
def test_gains_of_a_perfect_ranking_reach_every_churner_at_the_churn_rate_rounded_up_to_a_decile(churners, reached_at):
    n = 1000
    labels = np.zeros(n, dtype=int)
    labels[np.random.default_rng(2).choice(n, churners, replace=False)] = 1
    probabilities = 0.5 * labels + np.random.default_rng(3).uniform(0, 0.4, n)  # every churner above every stayer
    gains = classification_figures(labels, probabilities)["gains"]
    assert [row["share_contacted"] for row in gains] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    first_complete = next(row["share_contacted"] for row in gains if row["share_of_churners"] == 1.0)
    assert first_complete == reached_at
    # before that, every customer contacted is a churner
    before = [row for row in gains if row["share_contacted"] < reached_at]
    assert [row["share_of_churners"] for row in before] == pytest.approx(
        [row["share_contacted"] * n / churners for row in before]
    )


def test_gains_agree_with_the_top_decile_lift_and_a_blind_ranking_finds_churners_at_random():
    labels, probabilities = _scored(5000, 4)
    figures = classification_figures(labels, probabilities)
    gains = figures["gains"]
    assert all(a["share_of_churners"] <= b["share_of_churners"] for a, b in itertools.pairwise(gains))
    assert gains[-1]["share_of_churners"] == 1.0
    # the riskiest tenth holds lift x (its size / everyone) of the churners
    assert gains[0]["share_of_churners"] == pytest.approx(figures["top_decile_lift"] * 0.1)
    assert gains[0]["share_of_churners"] > 0.2, "a fair ranking finds more than its share of churners"
    blind = classification_figures(labels, np.random.default_rng(5).random(len(labels)))["gains"]
    assert all(abs(row["share_of_churners"] - row["share_contacted"]) < 0.05 for row in blind)


def _holdout(n: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Predictions for n customers and what they did: actual spend follows the prediction with noise; a fifth
    bought nothing (absent from ``actual``), and ``actual`` also holds customers nobody scored."""
    rng = np.random.default_rng(seed)
    expected_purchases = rng.gamma(1.0, 1.5, n)
    predicted = pl.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            "expected_purchases": expected_purchases,
            "expected_spend": expected_purchases * rng.gamma(4.0, 20.0, n),
        }
    )
    purchases = rng.poisson(expected_purchases)
    actual = pl.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)] + ["not scored"],
            "purchases": [*purchases.tolist(), 9],
            "spend": [*(purchases * rng.gamma(4.0, 20.0, n)).tolist(), 999.0],
        }
    ).filter(pl.col("purchases") > 0)
    return predicted, actual


def test_holdout_deciles_add_up_to_the_totals_by_predicted_spend():
    predicted, actual = _holdout(1003, 6)
    metrics = evaluate_holdout(predicted, actual)
    deciles = metrics["deciles"]
    assert [row["decile"] for row in deciles] == list(range(1, 11))
    assert sum(row["customers"] for row in deciles) == metrics["customers"] == 1003
    assert sum(row["customers"] * row["predicted"] for row in deciles) == pytest.approx(
        metrics["total_predicted_spend"]
    )
    assert sum(row["customers"] * row["observed"] for row in deciles) == pytest.approx(metrics["total_actual_spend"])
    assert [row["predicted"] for row in deciles] == sorted(row["predicted"] for row in deciles)
    top = predicted.sort("expected_spend", descending=True).head(deciles[-1]["customers"])
    assert deciles[-1]["predicted"] == pytest.approx(top["expected_spend"].mean()), "decile 10 is the highest spend"
    assert deciles[-1]["observed"] > deciles[0]["observed"], "who is predicted to spend more does"


def test_holdout_deciles_rank_by_purchases_when_there_is_no_spend():
    predicted, actual = _holdout(500, 7)
    metrics = evaluate_holdout(predicted.drop("expected_spend"), actual.drop("spend"))
    deciles = metrics["deciles"]
    assert sum(row["customers"] for row in deciles) == 500
    assert sum(row["customers"] * row["predicted"] for row in deciles) == pytest.approx(
        metrics["total_predicted_purchases"]
    )
    assert sum(row["customers"] * row["observed"] for row in deciles) == pytest.approx(
        metrics["total_actual_purchases"]
    )
    top = predicted.sort("expected_purchases", descending=True).head(50)
    assert deciles[-1]["predicted"] == pytest.approx(top["expected_purchases"].mean())


def test_with_fewer_than_ten_customers_the_highest_predicted_is_still_decile_ten():
    predicted = pl.DataFrame({"customer_id": ["a", "b", "c"], "expected_purchases": [2.0, 5.0, 1.0]})
    actual = pl.DataFrame({"customer_id": ["b"], "purchases": [3]})
    deciles = evaluate_holdout(predicted, actual)["deciles"]
    assert deciles == [
        {"decile": 8, "predicted": 1.0, "observed": 0.0, "customers": 1},
        {"decile": 9, "predicted": 2.0, "observed": 0.0, "customers": 1},
        {"decile": 10, "predicted": 5.0, "observed": 3.0, "customers": 1},
    ]
    assert evaluate_holdout(predicted.head(0), actual)["deciles"] == []


def test_the_new_figures_reach_ml_model_runs_as_valid_json():
    labels, probabilities = _scored(2000, 8)
    churn = classification_figures(labels, probabilities)
    predicted, actual = _holdout(300, 9)
    clv = evaluate_holdout(predicted, actual.head(0))  # nobody bought: the rank correlation is NaN
    assert math.isnan(clv["spearman_spend"])
    with duckdb.connect() as connection:
        for model, metrics in (("churn", churn), ("clv", clv)):
            run = ModelRun(model, date(2026, 6, 30), "0123456789abcdef", datetime.now(UTC), metrics=metrics)
            record_model_run(connection, run)
        stored = dict(connection.execute("select model, metrics from ml.model_runs").fetchall())
    churn_json, clv_json = json.loads(stored["churn"]), json.loads(stored["clv"])
    assert len(churn_json["roc"]) == ROC_POINTS and len(churn_json["gains"]) == 10
    assert churn_json["roc"][-1] == {"fpr": 1.0, "tpr": 1.0}
    assert sum(row["customers"] for row in clv_json["deciles"]) == 300
    assert clv_json["spearman_spend"] is None and all(row["observed"] == 0.0 for row in clv_json["deciles"])
