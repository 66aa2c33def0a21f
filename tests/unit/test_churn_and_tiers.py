"""Churn model and tier movement on data drawn from known rules."""

import numpy as np
import polars as pl
import pytest

from models_ml import (
    classification_figures,
    evaluate_churn,
    score_churn,
    tier_movement,
    train_churn_model,
    train_recency_baseline,
    training_sample,
)

FEATURES = ["recency_days", "bad_experiences_365d", "orders_365d"]


def _customers(n: int, seed: int) -> pl.DataFrame:
    """Churn rises with recency and, independently, with bad support experiences; orders carry no signal."""
    rng = np.random.default_rng(seed)
    recency = rng.exponential(150, n)
    bad = rng.binomial(1, 0.15, n) * rng.integers(1, 3, n)
    orders = rng.poisson(2, n)
    logit = -1.5 + recency / 120 + 1.8 * bad
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pl.DataFrame(
        {
            "customer_id": [f"C{i:06d}" for i in range(n)],
            "recency_days": recency,
            "bad_experiences_365d": bad,
            "orders_365d": orders,
            "churned": churned,
        }
    )


def test_the_model_beats_recency_alone_when_churn_has_another_cause():
    train, test = _customers(6000, 1), _customers(4000, 2)
    model = train_churn_model(train, FEATURES, seed=0)
    baseline = train_recency_baseline(train)
    figures = evaluate_churn(model, baseline, test)
    assert figures["model"]["auc"] > figures["baseline"]["auc"] + 0.03
    assert figures["model"]["top_decile_lift"] > 1.3
    drivers = [driver["feature"] for driver in figures["model"]["drivers"]]
    assert set(drivers[:2]) == {"recency_days", "bad_experiences_365d"}, "the two causes lead the drivers"
    assert [driver["feature"] for driver in figures["baseline"]["drivers"]] == ["recency_days"]
    assert figures["baseline"]["drivers"][0]["auc_drop"] > 0.1
    calibration = figures["model"]["calibration"]
    assert len(calibration) == 10 and sum(row["customers"] for row in calibration) == test.height
    assert all(abs(row["predicted"] - row["observed"]) < 0.12 for row in calibration), "the model is calibrated"


def test_a_customers_reasons_name_what_raises_their_risk():
    train = _customers(6000, 3)
    model = train_churn_model(train, FEATURES, seed=0)
    unhappy = pl.DataFrame(
        {
            "customer_id": ["A", "B"],
            "recency_days": [30.0, 600.0],
            "bad_experiences_365d": [2, 0],
            "orders_365d": [2, 2],
        }
    )
    scored = score_churn(model, unhappy, labels_in_words={"bad_experiences_365d": "cases rated 1 or 2"})
    reasons = dict(zip(scored["customer_id"], scored["churn_reasons"].to_list(), strict=True))
    assert reasons["A"][0].startswith("cases rated 1 or 2: 2")
    assert reasons["B"][0].startswith("recency_days: 600")
    assert scored.filter(pl.col("customer_id") == "B")["risk_band"][0] == "high"


def test_occluding_only_the_trees_that_split_on_a_feature_gives_predict_probas_very_numbers(monkeypatch):
    from models_ml import churn

    train = _customers(6000, 5).with_columns(
        missing_often=pl.when(pl.col("orders_365d") > 2).then(pl.col("orders_365d"))
    )
    features = [*FEATURES, "missing_often"]
    model = train_churn_model(train, features, seed=0)
    scored = _customers(2500, 6).with_columns(missing_often=pl.lit(None, dtype=pl.Float64))
    matrix = scored.select(pl.col(feature).cast(pl.Float64) for feature in features).to_numpy()
    probability = model.estimator.predict_proba(matrix)[:, 1]
    expected = np.empty((matrix.shape[0], len(features)))
    for index, feature in enumerate(features):  # every tree predicts every occluded row: what the shortcut avoids
        occluded = matrix.copy()
        occluded[:, index] = model.typical[feature]
        expected[:, index] = probability - model.estimator.predict_proba(occluded)[:, 1]
    trees = churn._Trees(model.estimator)
    at_typical = trees.binned(matrix) == trees.binned(np.array([[model.typical[name] for name in features]]))
    assert (at_typical.any(axis=0) & ~at_typical.all(axis=0)).sum() >= 2, "customers in and out of the typical bin"
    monkeypatch.setattr(churn, "_OCCLUSION_ROWS", 1000)  # three chunks, the last one short
    predicted, raises = churn._occlusion_raises(model, matrix, list(range(len(features))))
    assert np.array_equal(predicted, probability)
    assert np.array_equal(model.predict(scored), probability)
    assert np.array_equal(raises, expected)
    assert (np.abs(raises) > 0.01).any(axis=0)[:2].all(), "the two causes move the probability"


def test_the_drivers_are_sklearns_permutation_importance_number_for_number():
    from sklearn.inspection import permutation_importance

    from models_ml import churn

    train, test = _customers(6000, 7), _customers(3000, 8)
    features = [*FEATURES, "noise"]
    train, test = (frame.with_columns(noise=pl.Series(np.random.default_rng(9).normal(size=frame.height)))
                   for frame in (train, test))  # fmt: skip
    model = train_churn_model(train, features, seed=3)
    matrix = test.select(pl.col(feature).cast(pl.Float64) for feature in features).to_numpy()
    labels = test["churned"].cast(pl.Int8).to_numpy()
    expected = permutation_importance(model.estimator, matrix, labels, scoring="roc_auc", n_repeats=3, random_state=3)
    drops = churn._permutation_auc_drops(model, matrix, labels, n_repeats=3)
    assert np.array_equal(drops, expected.importances)
    assert drops[:2].mean() > 0.01 and abs(drops[3].mean()) < 0.01, "the causes matter, the noise does not"


def test_reasons_are_sought_only_among_the_candidate_features():
    train = _customers(6000, 3)
    model = train_churn_model(train, FEATURES, seed=0)
    scored = score_churn(model, train.head(200), candidates=["bad_experiences_365d"])
    reasons = [reason for row in scored["churn_reasons"].to_list() for reason in row]
    assert reasons and all(reason.startswith("bad_experiences_365d: ") for reason in reasons)
    with pytest.raises(ValueError, match="not_a_feature are not features of the model"):
        score_churn(model, train.head(5), candidates=["not_a_feature"])


def test_the_baseline_scores_with_recency_as_its_one_reason():
    train = _customers(3000, 4)
    baseline = train_recency_baseline(train)
    scored = score_churn(baseline, train.head(5))
    assert scored["churn_reasons"].list.len().to_list() == [1] * 5
    older = scored.sort("churn_probability")["customer_id"].to_list()
    assert older == train.head(5).sort("recency_days")["customer_id"].to_list()


def test_classification_figures_on_a_hand_made_example():
    figures = classification_figures(np.array([1, 0, 1, 0] * 5), np.array([0.9, 0.1, 0.8, 0.2] * 5))
    assert figures["auc"] == 1.0 and figures["churn_rate"] == 0.5
    assert figures["top_decile_lift"] == 2.0


def test_churn_training_needs_both_classes_and_its_columns():
    data = _customers(100, 5)
    with pytest.raises(ValueError, match="orders_90d"):
        train_churn_model(data, ["orders_90d"])
    with pytest.raises(ValueError, match="one class"):
        train_churn_model(data.with_columns(churned=pl.lit(True)), FEATURES)


def test_the_training_sample_keeps_the_cutoffs_shares_of_churners_and_stayers():
    customers = _customers(10_000, 11)
    churners = int(customers["churned"].sum())
    sample = training_sample(customers, 2_000, seed=4)
    assert sample.height == 2_000 and sample["customer_id"].n_unique() == 2_000
    assert int(sample["churned"].sum()) == round(2_000 * churners / customers.height)
    assert sample["customer_id"].is_in(customers["customer_id"].implode()).all()
    assert sample["customer_id"].to_list() == sorted(sample["customer_id"].to_list()), "in the cutoff's order"
    assert sample.equals(training_sample(customers, 2_000, seed=4)), "the same sample each night"
    assert not sample.equals(training_sample(customers, 2_000, seed=5))
    assert training_sample(customers, 10_000) is customers and training_sample(customers, None) is customers
    # a rare outcome keeps at least one customer, so the sample can still be learnt from
    rare = customers.with_columns(churned=pl.col("customer_id") == "C000007")
    assert training_sample(rare, 100)["churned"].sum() == 1


def test_the_trees_learn_from_the_sample_and_take_typical_values_from_everyone():
    train, test = _customers(12_000, 12), _customers(4_000, 13)
    sampled = train_churn_model(train, FEATURES, seed=2, sample=3_000)
    assert (sampled.trained_on, sampled.customers) == (3_000, 12_000)
    alone = train_churn_model(training_sample(train, 3_000, seed=2), FEATURES, seed=2)
    assert np.array_equal(sampled.estimator.predict_proba(test.select(FEATURES).to_numpy()),
                          alone.estimator.predict_proba(test.select(FEATURES).to_numpy()))  # fmt: skip
    assert sampled.typical == train_churn_model(train, FEATURES, seed=2).typical != alone.typical
    # a feature only a few customers have may miss the sample: then the trees learn from everyone
    rare = train.with_columns(rare=pl.when(pl.col("customer_id") == "C000005").then(1.0))
    assert train_churn_model(rare, [*FEATURES, "rare"], seed=2, sample=3_000).trained_on == 12_000


THRESHOLDS = {"silver": 250, "gold": 1000, "platinum": 3000}


def test_tier_movement_finds_upgrades_and_downgrades():
    customers = pl.DataFrame(
        {
            "customer_id": ["close-and-growing", "close-but-slowing", "far", "slipping-gold", "top", "new"],
            "loyalty_tier": ["silver", "silver", "silver", "gold", "platinum", "bronze"],
            "trailing_12m_net_revenue": [900.0, 900.0, 300.0, 1200.0, 5000.0, 0.0],
            "expected_spend_12m": [1100.0, 600.0, 1500.0, 700.0, 4000.0, 300.0],
        }
    )
    moved = tier_movement(customers, THRESHOLDS, closeness=0.75)
    movement = dict(zip(moved["customer_id"], moved["movement"], strict=True))
    assert movement == {
        "close-and-growing": "upgrade candidate",
        "close-but-slowing": "stable",
        "far": "stable",  # predicted to reach gold, but not close to it yet
        "slipping-gold": "downgrade risk",
        "top": "stable",
        "new": "stable",  # 0 is not within 75% of silver's 250
    }
    row = moved.filter(pl.col("customer_id") == "close-and-growing").row(0, named=True)
    assert row["next_tier"] == "gold" and row["spend_to_next_tier"] == 100.0 and row["predicted_tier"] == "gold"
    assert "1100" in row["reason"]


def test_tier_movement_rejects_unknown_tiers():
    customers = pl.DataFrame(
        {
            "customer_id": ["a"],
            "loyalty_tier": ["diamond"],
            "trailing_12m_net_revenue": [1.0],
            "expected_spend_12m": [1.0],
        }
    )
    with pytest.raises(ValueError, match="diamond"):
        tier_movement(customers, THRESHOLDS)
