"""Churn: who will not buy again in the next N days, with the reasons for each customer.

A gradient-boosted tree classifier (scikit-learn's ``HistGradientBoostingClassifier``, after Friedman, "Greedy
function approximation: a gradient boosting machine", Annals of Statistics 2001, with LightGBM-style histograms)
is trained on customers' features as of an earlier cutoff with the label "no purchase in the N days after it",
and judged out of time on a later cutoff against a recency-only baseline (a logistic regression on the log of the
days since the last order). The figures kept are the ones a marketer asks for: AUC, lift in the top decile (how
many times the average churn rate the riskiest 10% have), calibration (Brier score and observed against predicted
rate per decile), and the drivers (permutation importance, Breiman 2001: how much the AUC drops when a feature is
shuffled). A customer's own reasons are the features whose replacement by the population's typical value lowers
their predicted churn probability most (an occlusion explanation: what about this customer raises the risk).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score

LABEL = "churned"
RISK_BANDS = ((0.7, "high"), (0.4, "medium"), (0.0, "low"))


@dataclass(frozen=True)
class ChurnModel:
    """A fitted churn classifier, the features it reads, and each feature's typical value (the median)."""

    estimator: object
    features: tuple[str, ...]
    typical: dict[str, float]
    seed: int

    def predict(self, customers: pl.DataFrame) -> np.ndarray:
        return self.estimator.predict_proba(_matrix(customers, self.features))[:, 1]


@dataclass(frozen=True)
class RecencyBaseline:
    """Churn probability from the days since the last order alone (logistic on log1p of recency)."""

    estimator: LogisticRegression
    recency_feature: str

    def predict(self, customers: pl.DataFrame) -> np.ndarray:
        return self.estimator.predict_proba(_recency_matrix(customers, self.recency_feature))[:, 1]


def _validate(customers: pl.DataFrame, columns: Sequence[str], who: str) -> None:
    missing = [column for column in ("customer_id", *columns) if column not in customers.columns]
    if missing:
        raise ValueError(f"churn: {who} lacks column(s) {', '.join(missing)}")
    if customers["customer_id"].is_duplicated().any():
        raise ValueError(f"churn: {who} has duplicated customer_id values")
    if customers.height == 0:
        raise ValueError(f"churn: {who} has no rows")


def _matrix(customers: pl.DataFrame, features: Sequence[str]) -> np.ndarray:
    return customers.select(pl.col(feature).cast(pl.Float64) for feature in features).to_numpy()


def _recency_matrix(customers: pl.DataFrame, recency_feature: str) -> np.ndarray:
    return np.log1p(customers[recency_feature].cast(pl.Float64).fill_null(0).clip(0).to_numpy()).reshape(-1, 1)


def train_churn_model(
    customers: pl.DataFrame, features: Sequence[str], *, label: str = LABEL, seed: int = 0
) -> ChurnModel:
    """Fit the gradient-boosted classifier on one cutoff's features and labels.

    Parameters
    ----------
    customers
        One row per customer: ``customer_id``, the features (nulls allowed: the trees route them) and the label
        (true when the customer made no purchase in the N days after the cutoff).
    features
        The feature columns, in the order the model reads them.
    """
    _validate(customers, [*features, label], "training data")
    labels = customers[label].cast(pl.Int8).to_numpy()
    if len(np.unique(labels)) < 2:
        raise ValueError(f"churn: the training label {label!r} has one class only; cannot learn")
    # Small trees and early stopping on an inner validation split (a fifth of the training cutoff's customers):
    # the number of trees is chosen on data the trees did not see, never on the test cutoff.
    estimator = HistGradientBoostingClassifier(
        learning_rate=0.05, max_iter=500, max_leaf_nodes=8, min_samples_leaf=100, l2_regularization=1.0,
        early_stopping=True, validation_fraction=0.2, n_iter_no_change=20, random_state=seed,
    )  # fmt: skip
    estimator.fit(_matrix(customers, features), labels)
    typical = {feature: float(customers[feature].cast(pl.Float64).median() or 0.0) for feature in features}
    return ChurnModel(estimator, tuple(features), typical, seed)


def train_recency_baseline(
    customers: pl.DataFrame, recency_feature: str = "recency_days", *, label: str = LABEL
) -> RecencyBaseline:
    """Fit the recency-only baseline on the same training data as the model."""
    _validate(customers, [recency_feature, label], "training data")
    estimator = LogisticRegression()
    estimator.fit(_recency_matrix(customers, recency_feature), customers[label].cast(pl.Int8).to_numpy())
    return RecencyBaseline(estimator, recency_feature)


def classification_figures(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, object]:
    """AUC, top-decile lift, Brier score and a ten-bin calibration table (predicted against observed rate)."""
    labels = np.asarray(labels, dtype=float)
    order = np.argsort(-probabilities, kind="stable")
    top = order[: max(1, len(order) // 10)]
    base_rate = labels.mean()
    deciles = np.array_split(np.argsort(probabilities, kind="stable"), 10)
    calibration = [
        {"predicted": float(probabilities[part].mean()), "observed": float(labels[part].mean()), "customers": len(part)}
        for part in deciles
        if len(part)
    ]
    return {
        "auc": float(roc_auc_score(labels, probabilities)),
        "top_decile_lift": float(labels[top].mean() / base_rate) if base_rate else float("nan"),
        "brier": float(brier_score_loss(labels, probabilities)),
        "churn_rate": float(base_rate),
        "calibration": calibration,
        "customers": len(labels),
    }


def evaluate_churn(
    model: ChurnModel,
    baseline: RecencyBaseline,
    test: pl.DataFrame,
    *,
    label: str = LABEL,
    labels_in_words: Mapping[str, str] | None = None,
    importance_sample: int = 20_000,
    top_drivers: int = 8,
) -> dict[str, dict[str, object]]:
    """Judge the model and the baseline on a later cutoff neither was trained on (out of time).

    Returns ``{"model": figures, "baseline": figures}``; each carries ``drivers``: the features by permutation
    importance (drop in AUC when shuffled, mean of 3 repeats on a seeded sample); the baseline's one is recency.
    """
    _validate(test, [*model.features, label], "test data")
    labels = test[label].cast(pl.Int8).to_numpy()
    figures = {
        "model": classification_figures(labels, model.predict(test)),
        "baseline": classification_figures(labels, baseline.predict(test)),
    }
    sample = test.sample(min(importance_sample, test.height), seed=model.seed)
    importance = permutation_importance(
        model.estimator, _matrix(sample, model.features), sample[label].cast(pl.Int8).to_numpy(),
        scoring="roc_auc", n_repeats=3, random_state=model.seed,
    )  # fmt: skip
    words = labels_in_words or {}
    ranked = sorted(zip(model.features, importance.importances_mean, strict=True), key=lambda pair: -pair[1])
    figures["model"]["drivers"] = [
        {"feature": feature, "label": words.get(feature, feature), "auc_drop": float(drop)}
        for feature, drop in ranked[:top_drivers]
    ]
    recency = permutation_importance(
        baseline.estimator, _recency_matrix(sample, baseline.recency_feature), sample[label].cast(pl.Int8).to_numpy(),
        scoring="roc_auc", n_repeats=3, random_state=model.seed,
    )  # fmt: skip
    feature = baseline.recency_feature
    figures["baseline"]["drivers"] = [
        {"feature": feature, "label": words.get(feature, feature), "auc_drop": float(recency.importances_mean[0])}
    ]
    return figures


def risk_band(probability: pl.Expr) -> pl.Expr:
    """high (>= 0.7), medium (>= 0.4) or low."""
    expression = pl.lit("low")
    for threshold, band in reversed(RISK_BANDS[:-1]):
        expression = pl.when(probability >= threshold).then(pl.lit(band)).otherwise(expression)
    return expression


def _formatted(values: pl.Expr) -> pl.Expr:
    """Numbers as a person reads them: whole from 10 up, rounded to two decimals below, 'unknown' if missing."""
    return (
        pl.when(values.is_null() | values.is_nan())
        .then(pl.lit("unknown"))
        .when(values.abs() >= 10)
        .then(values.round(0).cast(pl.Int64).cast(pl.String))
        .otherwise(values.round(2).cast(pl.String))
    )


def _sentences(labels: np.ndarray, values: np.ndarray, typical: np.ndarray, keep: np.ndarray) -> pl.Series:
    """'<label>: <value> (typical <typical>)', null where ``keep`` is false."""
    parts = pl.DataFrame({"label": labels.astype(str), "value": values, "typical": typical, "keep": keep})
    return parts.select(
        pl.when(pl.col("keep")).then(
            pl.format("{}: {} (typical {})", "label", _formatted(pl.col("value")), _formatted(pl.col("typical")))
        )
    ).to_series()


def score_churn(
    model: ChurnModel | RecencyBaseline,
    customers: pl.DataFrame,
    *,
    labels_in_words: Mapping[str, str] | None = None,
    reasons: int = 3,
    candidates: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Churn probability, risk band and the top reasons of every customer.

    Returns ``customer_id, churn_probability, risk_band, churn_reasons`` (a list of plain sentences such as
    "days since the last order: 412 (typical 96)"). A baseline gives its one reason, recency. ``candidates``
    limits the features tried as reasons (e.g. the model's top drivers): each costs one prediction of every row.
    """
    probability = model.predict(customers)
    scored = pl.DataFrame({"customer_id": customers["customer_id"], "churn_probability": probability})
    words = labels_in_words or {}
    if isinstance(model, RecencyBaseline):
        feature = model.recency_feature
        value = customers[feature].cast(pl.Float64)
        sentence = pl.select(
            pl.when(value.is_not_null()).then(pl.format(f"{words.get(feature, feature)}: {{}}", _formatted(value)))
        ).to_series()
        return scored.with_columns(
            risk_band=risk_band(pl.col("churn_probability")),
            churn_reasons=pl.concat_list(sentence.alias("reason")).list.drop_nulls(),
        )
    unknown = sorted(set(candidates or ()) - set(model.features))
    if unknown:
        raise ValueError(f"churn: candidate reason(s) {', '.join(unknown)} are not features of the model")
    matrix = _matrix(customers, model.features)
    tried = [model.features.index(feature) for feature in (candidates or model.features)]
    raises = np.empty((matrix.shape[0], len(tried)))
    for position, index in enumerate(tried):
        occluded = matrix.copy()
        occluded[:, index] = model.typical[model.features[index]]
        raises[:, position] = probability - model.estimator.predict_proba(occluded)[:, 1]
    top = np.argsort(-raises, axis=1)[:, :reasons]
    rows = np.arange(matrix.shape[0])
    labels = np.array([words.get(model.features[index], model.features[index]) for index in tried])
    typical = np.array([model.typical[model.features[index]] for index in tried])
    columns = np.array(tried)
    ranked = [
        _sentences(labels[top[:, rank]], matrix[rows, columns[top[:, rank]]], typical[top[:, rank]],
                   raises[rows, top[:, rank]] > 0.01).alias(f"reason_{rank}")
        for rank in range(top.shape[1])
    ]  # fmt: skip
    return scored.with_columns(
        risk_band=risk_band(pl.col("churn_probability")),
        churn_reasons=pl.concat_list(ranked).list.drop_nulls(),
    )
