"""Churn: who will not buy again in the next N days, with the reasons for each customer.

A gradient-boosted tree classifier (scikit-learn's ``HistGradientBoostingClassifier``, after Friedman, "Greedy
function approximation: a gradient boosting machine", Annals of Statistics 2001, with LightGBM-style histograms) is
trained on customers' features as of an earlier cutoff with the label "no purchase in the N days after it", and
judged out of time on a later cutoff against a recency-only baseline (a logistic regression on the log of the days
since the last order); at a cutoff with many customers the trees learn from a seeded sample of them
(:func:`training_sample`, the setting churn_training_customers), and are judged on every one. The figures kept are
the ones a marketer asks for: AUC, lift in the top decile (how many times the average churn rate the riskiest 10%
have), calibration (Brier score and observed against predicted rate per decile), the ROC curve and the cumulative
gains (the share of churners in the riskiest 10%, 20%, ...), and the drivers (permutation importance, Breiman 2001:
how much the AUC drops when a feature is shuffled). A customer's own reasons are the features whose replacement by
the population's typical value lowers their predicted churn probability most (an occlusion explanation: what about
this customer raises the risk).

The run (:func:`run_churn`) builds each cutoff's frame from what pipelines/ml/features.py loads: the behaviour
features, the purchase model's P(alive) and expected purchases in the window (Fader, Hardie & Lee 2005, the BG/NBD
or the model the lifetime-value run chose), and the label. Revenue at risk (churn probability x lifetime value) is
a dbt model over the two runs' scores (marts.customer_revenue_at_risk).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

import numpy as np
import polars as pl
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

from models_ml.clv import ClvFit, ClvFitError, fit_clv, predict_purchases
from models_ml.protocol import (
    BASELINE_PUBLISHED,
    ModelOutput,
    StoredFit,
    Verdict,
    compare,
    fingerprint,
    refuse,
    refusing,
    scored_with,
)
from models_ml.validation import KEY, InsufficientDataError, validate_columns

LABEL = "churned"
RECENCY_FEATURE = "recency_days"
RISK_BANDS = ((0.7, "high"), (0.4, "medium"), (0.0, "low"))
# Early stopping holds out a fifth of the training customers; below this many of the rarer outcome the held-out
# fifth would have too few of them to stop on (or none), so the trees are grown without it.
_EARLY_STOPPING_MINIMUM_MINORITY = 10
# The ROC curve is published as at most this many points: enough to draw it, small enough for a JSON metrics field.
ROC_POINTS = 51


@dataclass(frozen=True)
class ChurnModel:
    """A fitted churn classifier, the features it reads, each feature's typical value (the median), and how many
    customers the trees learnt from (of how many at the cutoff)."""

    estimator: object
    features: tuple[str, ...]
    typical: dict[str, float]
    seed: int
    trained_on: int = 0
    customers: int = 0

    def predict(self, customers: pl.DataFrame) -> np.ndarray:
        """The churn probability of each customer: ``predict_proba``'s very numbers, from the trees' codes
        (``_occlusion_raises`` occluding nothing), a fraction of its time at a million customers."""
        return _occlusion_raises(self, _matrix(customers, self.features), ())[0]


@dataclass(frozen=True)
class RecencyBaseline:
    """Churn probability from the days since the last order alone (logistic on log1p of recency)."""

    estimator: LogisticRegression
    recency_feature: str

    def predict(self, customers: pl.DataFrame) -> np.ndarray:
        return self.estimator.predict_proba(_recency_matrix(customers, self.recency_feature))[:, 1]


def _validate(customers: pl.DataFrame, columns: Sequence[str], who: str) -> None:
    validate_columns(customers, columns, f"churn: {who}", numeric=columns)
    if customers.height == 0:
        raise InsufficientDataError(f"churn: {who} has no customers")


def _known(customers: pl.DataFrame, feature: str) -> int:
    """How many customers have a value (not null, not NaN) for ``feature``."""
    values = customers[feature].cast(pl.Float64)
    return values.len() - values.fill_nan(None).null_count()


def _matrix(customers: pl.DataFrame, features: Sequence[str]) -> np.ndarray:
    return customers.select(pl.col(feature).cast(pl.Float64) for feature in features).to_numpy()


def _recency_matrix(customers: pl.DataFrame, recency_feature: str) -> np.ndarray:
    return np.log1p(customers[recency_feature].cast(pl.Float64).fill_null(0).clip(0).to_numpy()).reshape(-1, 1)


def training_sample(customers: pl.DataFrame, size: int | None, *, label: str = LABEL, seed: int = 0) -> pl.DataFrame:
    """The customers of a labelled cutoff the trees learn from: all of them when they are no more than ``size``
    (or ``size`` is None), else a seeded random ``size`` of them in the cutoff's shares of churners and stayers
    (each outcome's count rounded, at least one of each), in the cutoff's order."""
    if size is None or customers.height <= size:
        return customers
    if size < 2:
        raise ValueError(f"churn: a training sample needs at least 2 customers, not {size!r}")
    churned = customers[label].cast(pl.Boolean).fill_null(False).to_numpy()
    rows = np.arange(customers.height)
    churners, stayers = rows[churned], rows[~churned]
    rng = np.random.default_rng(seed)
    if not len(churners) or not len(stayers):
        kept = rng.choice(rows, size=size, replace=False)
    else:
        share = round(size * len(churners) / customers.height)
        take = min(max(share, 1, size - len(stayers)), len(churners), size - 1)
        kept = np.concatenate([rng.choice(churners, size=take, replace=False),
                               rng.choice(stayers, size=size - take, replace=False)])  # fmt: skip
    return customers[np.sort(kept)]


def train_churn_model(
    customers: pl.DataFrame,
    features: Sequence[str],
    *,
    label: str = LABEL,
    seed: int = 0,
    sample: int | None = None,
) -> ChurnModel:
    """Fit the gradient-boosted classifier on one cutoff's features and labels.

    Parameters
    ----------
    customers
        One row per customer: ``customer_id``, the features (nulls allowed: the trees route them) and the label
        (true when the customer made no purchase in the N days after the cutoff).
    features
        The feature columns, in the order the model reads them.
    sample
        The trees learn from at most this many of the customers (:func:`training_sample`; None: all of them);
        the features' typical values are every customer's.
    """
    _validate(customers, [*features, label], "training data")
    labels = customers[label].cast(pl.Int8).to_numpy()
    if len(np.unique(labels)) < 2:
        raise InsufficientDataError(f"churn: the training label {label!r} has one class only; cannot learn")
    missing = [feature for feature in features if _known(customers, feature) == 0]
    if missing:
        # the trees' binning cannot place a feature with no value at all (sklearn fails with "window shape")
        raise InsufficientDataError(f"churn: feature(s) {', '.join(missing)} have no value for any customer")
    everyone, customers = customers, training_sample(customers, sample, label=label, seed=seed)
    if any(_known(customers, feature) == 0 for feature in features):
        # a feature a few customers have can miss the sample altogether: then everyone is learnt from
        customers = everyone
    labels = customers[label].cast(pl.Int8).to_numpy()
    # Small trees and early stopping on an inner validation split (a fifth of the training cutoff's customers):
    # the number of trees is chosen on data the trees did not see, never on the test cutoff.
    minority = int(min(labels.sum(), len(labels) - labels.sum()))
    estimator = HistGradientBoostingClassifier(
        learning_rate=0.05, max_iter=500, max_leaf_nodes=8, min_samples_leaf=100, l2_regularization=1.0,
        early_stopping=minority >= _EARLY_STOPPING_MINIMUM_MINORITY, validation_fraction=0.2, n_iter_no_change=20,
        random_state=seed,
    )  # fmt: skip
    estimator.fit(_matrix(customers, features), labels)
    typical = {feature: float(everyone[feature].cast(pl.Float64).median() or 0.0) for feature in features}
    return ChurnModel(estimator, tuple(features), typical, seed, customers.height, everyone.height)


def train_recency_baseline(
    customers: pl.DataFrame, recency_feature: str = "recency_days", *, label: str = LABEL
) -> RecencyBaseline:
    """Fit the recency-only baseline on the same training data as the model."""
    _validate(customers, [recency_feature, label], "training data")
    if customers[label].n_unique() < 2:
        raise InsufficientDataError(f"churn: the training label {label!r} has one class only; cannot learn")
    estimator = LogisticRegression()
    estimator.fit(_recency_matrix(customers, recency_feature), customers[label].cast(pl.Int8).to_numpy())
    return RecencyBaseline(estimator, recency_feature)


def classification_figures(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, object]:
    """AUC, top-decile lift, Brier score, a ten-bin calibration table (predicted against observed rate), the ROC
    curve and the cumulative gains, for the pages that draw them.

    ``roc`` is sklearn's ``roc_curve`` (false and true positive rates as the threshold falls), thinned evenly to at
    most ``ROC_POINTS`` points, from (0, 0) to (1, 1). ``gains`` says, for the riskiest 10%, 20%, ... 100% of
    customers by probability, what share of all churners they hold (a random list holds as many as it contacts).
    """
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
        "roc": _roc_points(labels, probabilities),
        "gains": _gains(labels[order]),
        "customers": len(labels),
    }


def _roc_points(labels: np.ndarray, probabilities: np.ndarray) -> list[dict[str, float]]:
    """The ROC curve, every point kept when there are few, else ``ROC_POINTS`` spread evenly along it, the first
    (0, 0) and the last (1, 1) always among them."""
    fpr, tpr, _ = roc_curve(labels, probabilities)
    kept = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), ROC_POINTS)).round().astype(int))
    return [{"fpr": float(fpr[index]), "tpr": float(tpr[index])} for index in kept]


def _gains(ranked_labels: np.ndarray) -> list[dict[str, float]]:
    """Cumulative gains: the share of all churners among the first tenth, two tenths, ... of ``ranked_labels``
    (labels sorted by falling probability); the first k tenths of n customers are the first k * n // 10."""
    n, churners = len(ranked_labels), ranked_labels.sum()
    found = np.concatenate([[0.0], np.cumsum(ranked_labels)])
    return [
        {
            "share_contacted": tenths / 10,
            "share_of_churners": float(found[tenths * n // 10] / churners) if churners else float("nan"),
        }
        for tenths in range(1, 11)
    ]


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
    drops = _permutation_auc_drops(
        model, _matrix(sample, model.features), sample[label].cast(pl.Int8).to_numpy(), n_repeats=3
    )
    words = labels_in_words or {}
    ranked = sorted(zip(model.features, drops.mean(axis=1), strict=True), key=lambda pair: -pair[1])
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


class _Trees:
    """A fitted HistGradientBoostingClassifier's trees (binary, numeric features) as tables, to score rows again
    with one feature changed without walking a tree again.

    A row's way through a tree is which of the tree's splits send it left: a *code* of one bit per split (the model
    grows at most 8 leaves: 7 splits). A split reads one feature's bin (the estimator's own bins, ``binned``: every
    split point is the edge of a bin), so each tree keeps, for each feature it splits on, the bits that each bin of
    that feature sets (``bits``), and the value of the leaf each code reaches (``leaves``). A row's output is a
    lookup of its code; with one feature changed only that feature's bits of the code change, in only the trees
    that split on it. The raw score adds the trees' outputs one by one in the estimator's own order, so it is the
    very number ``decision_function`` gives (the unit tests compare the probabilities with ``predict_proba`` bit for
    bit). Codes and tables are ``intp``: numpy looks up an ``intp`` index several times faster than a byte."""

    _MOST_SPLITS = 8  # a tree's table of leaves has 2 ** splits entries

    def __init__(self, estimator: HistGradientBoostingClassifier) -> None:
        self.estimator = estimator
        bins = np.arange(256)  # every value a bin (uint8) can take
        missing = bins == estimator._bin_mapper.missing_values_bin_idx_
        self.leaves: list[np.ndarray] = []
        self.bits: list[dict[int, np.ndarray]] = []
        self.kept: list[dict[int, np.intp]] = []
        for predictors in estimator._predictors:
            nodes = predictors[0].nodes
            splits = np.flatnonzero(nodes["is_leaf"] == 0)
            if splits.size > self._MOST_SPLITS or nodes["is_categorical"][splits].any():
                raise ValueError(f"churn: cannot code a tree of {splits.size} splits, or one with a categorical split")
            bit = np.zeros(len(nodes), dtype=np.intp)
            bit[splits] = np.left_shift(1, np.arange(splits.size))
            # the leaf each code reaches: from the root, left where the code has the split's bit
            codes, node = np.arange(1 << splits.size), np.zeros(1 << splits.size, dtype=np.intp)
            for _ in range(int(nodes["depth"].max())):
                onward = np.where(codes & bit[node], nodes["left"][node], nodes["right"][node])
                node = np.where(nodes["is_leaf"][node] == 1, node, onward)
            self.leaves.append(nodes["value"][node])
            bits: dict[int, np.ndarray] = {}
            kept: dict[int, np.intp] = {}
            for split in splits:
                left = np.where(
                    missing, bool(nodes["missing_go_to_left"][split]), bins <= nodes["bin_threshold"][split]
                )
                feature = int(nodes["feature_idx"][split])
                bits[feature] = bits.get(feature, np.zeros(256, dtype=np.intp)) | np.where(left, bit[split], 0)
                kept[feature] = kept.get(feature, ~np.intp(0)) & ~bit[split]
            self.bits.append(bits)
            self.kept.append(kept)

    def binned(self, matrix: np.ndarray) -> np.ndarray:
        """The bins of a feature matrix (the estimator's checks first, as ``decision_function`` makes them)."""
        return self.estimator._bin_mapper.transform(self.estimator._preprocess_X(matrix, reset=False))

    def codes(self, rows: np.ndarray) -> np.ndarray:
        """Each row's code in each tree (trees x rows) for binned ``rows`` (:meth:`binned`)."""
        columns = np.ascontiguousarray(rows.T, dtype=np.intp)
        codes = np.zeros((len(self.leaves), rows.shape[0]), dtype=np.intp)
        for code, bits in zip(codes, self.bits, strict=True):
            for feature, table in bits.items():
                code |= np.take(table, columns[feature])
        return codes

    def raw(self, codes: np.ndarray, changed: int = -1, bins: np.ndarray | int | None = None) -> np.ndarray:
        """The raw score (``decision_function``) of the rows of ``codes`` (:meth:`codes`), with feature ``changed``
        (if any) in ``bins`` instead (one bin per row, or one for all): the trees that split on it look up the
        changed code, the others the row's own, added tree by tree in the estimator's own order."""
        estimator = self.estimator
        raw = np.zeros((codes.shape[1], 1), dtype=estimator._baseline_prediction.dtype, order="F")
        raw += estimator._baseline_prediction
        for code, leaves, bits, kept in zip(codes, self.leaves, self.bits, self.kept, strict=True):
            if changed in bits:
                code = (code & kept[changed]) | np.take(bits[changed], bins)
            raw[:, 0] += np.take(leaves, code)
        return raw


def _permutation_auc_drops(model: ChurnModel, matrix: np.ndarray, labels: np.ndarray, n_repeats: int) -> np.ndarray:
    """Each feature's drop in AUC when its column is shuffled, per repeat (features x repeats): scikit-learn's
    ``permutation_importance(estimator, matrix, labels, scoring="roc_auc", n_repeats, random_state=model.seed)``,
    number for number (the same seeds and shuffles; tests/unit/test_churn_and_tiers.py compares them), with only the
    shuffled feature's bits of the rows' codes changing, in the trees that split on it (``_Trees.raw``)."""
    trees = _Trees(model.estimator)
    rows = trees.binned(matrix)
    codes = trees.codes(rows)
    baseline = roc_auc_score(labels, trees.raw(codes)[:, 0])
    seed = np.random.RandomState(model.seed).randint(np.iinfo(np.int32).max + 1)
    drops = np.empty((rows.shape[1], n_repeats))
    for column in range(rows.shape[1]):
        shuffles, permuted = np.random.RandomState(seed), rows[:, column].astype(np.intp)
        order = np.arange(rows.shape[0])
        for repeat in range(n_repeats):
            shuffles.shuffle(order)
            permuted = permuted[order]
            drops[column, repeat] = baseline - roc_auc_score(labels, trees.raw(codes, column, permuted)[:, 0])
    return drops


# Customers whose codes are kept at once while their reasons are sought: 25,000 rows x 500 trees of intp is 100 MB.
_OCCLUSION_ROWS = 25_000


def _occlusion_raises(model: ChurnModel, matrix: np.ndarray, tried: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's churn probability, and how much each tried feature raises it: the probability less the one
    with that feature set to its typical value.

    Each customer's way through every tree is coded once (``_Trees``), which gives the probability itself; with a
    feature occluded only that feature's bits of the code change, in the trees that split on it, so no tree is
    walked again, and a customer whose value is in the typical value's bin already keeps the very same code (a
    raise of 0). The raw score is summed tree by tree in the estimator's own order, so both are the very numbers
    ``predict_proba`` gives (tests/unit/test_churn_and_tiers.py compares them bit for bit).
    """
    estimator, trees = model.estimator, _Trees(model.estimator)
    typical = trees.binned(np.array([[model.typical[feature] for feature in model.features]]))[0]
    probability = np.empty(matrix.shape[0])
    raises = np.empty((matrix.shape[0], len(tried)))

    def occlude(start: int) -> None:
        codes = trees.codes(trees.binned(matrix[start : start + _OCCLUSION_ROWS]))
        chunk = slice(start, start + codes.shape[1])
        probability[chunk] = estimator._loss.predict_proba(trees.raw(codes))[:, 1]
        for position, index in enumerate(tried):
            occluded = estimator._loss.predict_proba(trees.raw(codes, index, int(typical[index])))[:, 1]
            raises[chunk, position] = probability[chunk] - occluded

    # numpy lets go of the interpreter while it looks up and adds: a thread per core, each a chunk of customers
    with ThreadPoolExecutor(_openmp_effective_n_threads()) as pool:
        list(pool.map(occlude, range(0, matrix.shape[0], _OCCLUSION_ROWS)))
    return probability, raises


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
    words = labels_in_words or {}
    if isinstance(model, RecencyBaseline):
        scored = pl.DataFrame({"customer_id": customers["customer_id"], "churn_probability": model.predict(customers)})
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
    # the occlusion predicts every tree for every customer anyway: the probability comes from those predictions
    probability, raises = _occlusion_raises(model, matrix, tried)
    scored = pl.DataFrame({"customer_id": customers["customer_id"], "churn_probability": probability})
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


@dataclass(frozen=True)
class ChurnRun:
    """What the churn run publishes and why.

    Attributes
    ----------
    scores
        One row per customer to score: ``customer_id``, ``churn_probability``, ``risk_band``, ``churn_reasons``,
        ``baseline_churn_probability`` and ``score_source``.
    verdict
        Score source, out-of-time figures of the model and of the baseline, and the notes.
    features
        The features the model was trained on.
    dropped_features
        Feature -> why it was left out (no value for any customer at a cutoff, or one value for all).
    model, baseline, drivers
        What scored: the model refitted on the latest cutoff (None when the baseline's scores are published), the
        recency baseline fitted there, and the features a customer's reasons are sought among (the model's
        drivers; None without a model).
    """

    scores: pl.DataFrame
    verdict: Verdict
    features: tuple[str, ...]
    dropped_features: Mapping[str, str] = field(default_factory=dict)
    model: ChurnModel | None = None
    baseline: RecencyBaseline | None = None
    drivers: tuple[str, ...] | None = None


def usable_features(labelled: Mapping[str, pl.DataFrame], features: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The features a model can learn from, and why each other one is left out.

    A feature is left out when some labelled cutoff lacks it or has no value for any customer (its source sent
    nothing: no CRM, marketing or web data), or when it takes one value for every customer at every cutoff
    (nothing to learn). ``labelled`` maps the cutoff's name ("training", "test") to its frame.
    """
    kept, dropped = [], {}
    for feature in features:
        empty = [
            name for name, frame in labelled.items() if feature not in frame.columns or _known(frame, feature) == 0
        ]
        if empty:
            cutoffs = "cutoffs" if len(empty) > 1 else "cutoff"
            dropped[feature] = f"no value for any customer at the {' and '.join(empty)} {cutoffs}"
            continue
        # a feature known for some customers only still tells the trees something: who has a value
        known = pl.concat([frame[feature].cast(pl.Float64).fill_nan(None) for frame in labelled.values()])
        if known.null_count() == 0 and known.n_unique() == 1:
            dropped[feature] = f"{known[0]:g} for every customer"
            continue
        kept.append(feature)
    return kept, dropped


def no_churn_scores(customers: pl.DataFrame) -> pl.DataFrame:
    """The rows of a run that publishes no churn scores: every customer, with every score null."""
    return customers.select(KEY).with_columns(
        churn_probability=pl.lit(None, dtype=pl.Float64),
        risk_band=pl.lit(None, dtype=pl.String),
        churn_reasons=pl.lit(None, dtype=pl.List(pl.String)),
        baseline_churn_probability=pl.lit(None, dtype=pl.Float64),
        score_source=pl.lit("none"),
    )


def _outcomes(frame: pl.DataFrame, name: str, label: str) -> str | None:
    """Why a labelled cutoff cannot train or test a classifier, in plain words; None if it can."""
    if frame.height == 0:
        return f"the {name} cutoff has no customers (the history is shorter than the churn windows it needs)"
    churned = int(frame[label].cast(pl.Int64).sum())
    if churned in (0, frame.height):
        outcome = "made no purchase" if churned else "bought again"
        who = "the one customer" if frame.height == 1 else f"all {frame.height:,} customers"
        return (
            f"at the {name} cutoff {who} {outcome} in the window after it, so there is nothing to tell churners"
            " from stayers (are the exports up to date?)"
        )
    return None


def choose_churn(
    train: pl.DataFrame,
    test: pl.DataFrame,
    current: pl.DataFrame,
    features: Sequence[str] | None = None,
    *,
    label: str = LABEL,
    recency_feature: str = RECENCY_FEATURE,
    labels_in_words: Mapping[str, str] | None = None,
    exclude: Collection[str] = (),
    seed: int = 0,
    sample: int | None = None,
) -> ChurnRun:
    """Train at one cutoff, test out of time at a later one against the recency baseline, choose, refit, score.

    The protocol: features no cutoff can fill or that never vary are left out (``usable_features``); the
    gradient-boosted model and the recency baseline are trained on ``train`` and judged on ``test`` by AUC
    (``evaluate_churn``); the model's scores are published only if its AUC is above the baseline's, else the
    baseline's. The published scorer is refitted on ``test``, the latest labelled cutoff, and scores ``current``
    with each customer's reasons (``score_churn``, among the model's drivers). When a cutoff has one outcome only,
    the model cannot be judged and the baseline fitted on the cutoff that has both is published.

    Parameters
    ----------
    train, test
        One row per customer at the training and test cutoffs: ``customer_id``, the features and ``label``.
    current
        One row per customer to score, with the features (a feature it lacks counts as unknown, null).
    features
        Candidate features; by default every column of ``train`` and ``test`` but the key and the label.
    exclude
        Features left out of the candidates, e.g. a feature group, to measure what it adds.
    recency_feature
        The baseline's one feature, days since the last order.
    labels_in_words
        Feature -> words, for drivers, reasons and notes.
    seed
        Seeds the model, its training sample and the permutation importance.
    sample
        The trees learn from at most this many customers of a cutoff (a seeded sample in its shares of churners
        and stayers, :func:`training_sample`; None: all of them). They are judged on every customer of the test
        cutoff, and the baselines learn from every customer.

    Returns
    -------
    ChurnRun

    Raises
    ------
    InsufficientDataError
        When neither cutoff has both outcomes (nothing, not even the baseline, can be trained) or there is nobody
        to score; the reason is in plain words.
    ValueError
        When a frame breaks its contract, naming the column.
    """
    words = labels_in_words or {}
    if features is None:
        features = [column for column in dict.fromkeys([*train.columns, *test.columns]) if column not in (KEY, label)]
    features = [feature for feature in features if feature not in exclude]
    for frame, name in ((train, "training data"), (test, "test data"), (current, "customers to score")):
        present = [feature for feature in features if feature in frame.columns]
        required = (recency_feature, label) if frame is not current else (recency_feature,)
        validate_columns(frame, required, f"churn: {name}", numeric=list(dict.fromkeys([recency_feature, *present])))
    if current.height == 0:
        raise InsufficientDataError("no customer has ordered before the cutoff, so there is nobody to score")
    problems = {name: _outcomes(frame, name, label) for name, frame in (("training", train), ("test", test))}
    if all(problems.values()):
        raise InsufficientDataError(f"{problems['training']}; and {problems['test']}")
    kept, dropped = usable_features({"training": train, "test": test}, features)
    notes = [
        f"Left out of the model: {', '.join(f'{words.get(f, f)} ({why})' for f, why in dropped.items())}."
    ] if dropped else []  # fmt: skip
    current = current.with_columns(pl.lit(None, dtype=pl.Float64).alias(f) for f in kept if f not in current.columns)

    if any(problems.values()):
        usable = test if problems["training"] else train
        name = "test" if problems["training"] else "training"
        reason = next(problem for problem in problems.values() if problem)
        notes += [f"{reason[:1].upper()}{reason[1:]}: the model cannot be trained and tested out of time.",
                  f"The recency baseline, fitted on the {name} cutoff, is published."]  # fmt: skip
        verdict = Verdict("baseline", False, {}, None, tuple(notes))
        return _scored(train_recency_baseline(usable, recency_feature, label=label), None, current, verdict,
                       kept, dropped, words)  # fmt: skip
    if not kept:
        notes += ["No feature has values that vary between customers, so the model cannot be trained.",
                  BASELINE_PUBLISHED]  # fmt: skip
        baseline = train_recency_baseline(train, recency_feature, label=label)
        figures = classification_figures(test[label].cast(pl.Int8).to_numpy(), baseline.predict(test))
        verdict = Verdict("baseline", False, {}, figures, tuple(notes))
        return _scored(train_recency_baseline(test, recency_feature, label=label), None, current, verdict, kept,
                       dropped, words)  # fmt: skip

    model = train_churn_model(train, kept, label=label, seed=seed, sample=sample)
    baseline = train_recency_baseline(train, recency_feature, label=label)
    figures = evaluate_churn(model, baseline, test, label=label, labels_in_words=words)
    comparison = compare(figures["model"], figures["baseline"], "auc", lower_is_better=False, label="out-of-time AUC")
    notes.append(comparison.sentence)
    if not comparison.beats:
        notes.append(BASELINE_PUBLISHED)
    # the published scores come from a refit on the latest labelled cutoff (the test cutoff)
    scorer = train_churn_model(test, kept, label=label, seed=seed, sample=sample) if comparison.beats else None
    sampled = [fit for fit in (model, scorer) if fit is not None and fit.trained_on < fit.customers]
    if sampled:
        notes.append(_sample_note(sampled))
    source = "model" if comparison.beats else "baseline"
    verdict = Verdict(source, comparison.beats, figures["model"], figures["baseline"], tuple(notes))
    drivers = [driver["feature"] for driver in figures["model"]["drivers"]]
    latest_baseline = train_recency_baseline(test, recency_feature, label=label)
    return _scored(latest_baseline, scorer, current, verdict, kept, dropped, words, drivers)


def _sample_note(sampled: Sequence[ChurnModel]) -> str:
    """What the trees learnt from when they learnt from a sample, in words."""
    cutoffs = " and ".join(f"{fit.trained_on:,} of the {fit.customers:,} customers" for fit in sampled)
    return (
        f"The trees learnt from a random sample ({cutoffs} at the {'cutoffs' if len(sampled) > 1 else 'cutoff'}"
        " they were fitted at, in the same shares of churners and stayers; setting churn_training_customers); the"
        " AUC is measured on every customer of the test cutoff."
    )


def _scored(
    baseline: RecencyBaseline,
    model: ChurnModel | None,
    current: pl.DataFrame,
    verdict: Verdict,
    features: Sequence[str],
    dropped: Mapping[str, str],
    words: Mapping[str, str],
    drivers: Sequence[str] | None = None,
) -> ChurnRun:
    # a customer's reasons are sought among the model's drivers: each feature tried costs a prediction of everyone
    scorer = model if model is not None else baseline
    drivers = tuple(drivers) if model is not None and drivers is not None else None
    scores = score_churn(scorer, current, labels_in_words=words, candidates=drivers)
    scores = scores.with_columns(
        baseline_churn_probability=pl.Series(baseline.predict(current)),
        score_source=pl.lit(verdict.score_source),
    )
    return ChurnRun(scores, verdict, tuple(features), dict(dropped), model, baseline, drivers)


# --- The run: cutoffs, each cutoff's frame, the protocol -------------------------------------------------------------


@dataclass(frozen=True)
class ChurnCutoffs:
    """Where a churn run learns (``train``), is judged out of time (``test``, one window later) and what both step
    back from (``anchor``, one window after ``test``)."""

    train: date
    test: date
    anchor: date


def churn_cutoffs(as_of: date, last_order_date: date | None, window_days: int) -> ChurnCutoffs:
    """The training and test cutoffs of a run as of ``as_of``, two and one churn windows before the anchor.

    Labels need the window after a cutoff to have happened, so the cutoffs step back from the day after the last
    order before ``as_of`` (``last_order_date``), not from ``as_of``: exports that stop early shift the training
    window instead of labelling everyone a churner. Without any order the anchor is ``as_of``.
    """
    if window_days < 1:
        raise ValueError(f"churn: window_days must be at least 1, not {window_days!r}")
    anchor = min(as_of, last_order_date + timedelta(days=1)) if last_order_date else as_of
    return ChurnCutoffs(anchor - timedelta(days=2 * window_days), anchor - timedelta(days=window_days), anchor)


@dataclass(frozen=True)
class CutoffHistory:
    """What one cutoff's churn frame is built from (pipelines/ml/features.py loads it).

    Attributes
    ----------
    cutoff
        The date everything is as of.
    behaviour
        One row per customer who ordered before the cutoff: ``customer_id`` and the behaviour features.
    summary
        The purchase summary as of the cutoff (``fit_clv``'s contract), for P(alive) and expected purchases.
    bought
        The customers who bought in the churn window after the cutoff, or None when that window has not happened
        yet (the customers to score).
    """

    cutoff: date
    behaviour: pl.DataFrame
    summary: pl.DataFrame
    bought: pl.Series | None = None


@dataclass(frozen=True)
class ChurnInputs:
    """Everything a churn run reads: its cutoffs, each cutoff's history, and the purchase model the lifetime-value
    run published at the run's cutoff (None when it published the baseline's scores or none). ``train`` and
    ``test`` are None when only the customers to score were loaded, for a night that scores with a stored fit."""

    cutoffs: ChurnCutoffs
    train: CutoffHistory | None
    test: CutoffHistory | None
    current: CutoffHistory
    published_fit: ClvFit | None = None


# Bumped when what a stored churn fit holds, or how it scores, changes: a fit stored by other code is never reused.
CHURN_FIT_FORMAT = 1


@dataclass(frozen=True)
class ChurnFit:
    """What a later night needs to score with this run's fit instead of fitting again: the scorers, the features
    they read, and the run's verdict and facts (the figures that chose the model are the fit's, not a new test's).
    """

    run: ChurnRun
    parameters: Mapping
    rows_used: int
    training_from: date
    training_to: date


def churn_fit_key(
    current: CutoffHistory, window_days: int, exclude: Collection[str] = (), seed: int = 0, sample: int | None = None
) -> str:
    """The fingerprint of what a churn fit depends on besides the data: the churn window, the features the
    customers to score carry (a source that appears or goes changes them), the features left out, the seed, the
    training sample's size, the format of the stored fit and the versions of the libraries that fitted it. A stored
    fit is reused only under the same key."""
    return fingerprint(
        format=CHURN_FIT_FORMAT,
        window_days=window_days,
        columns=sorted(current.behaviour.columns),
        exclude=sorted(exclude),
        seed=seed,
        sample=sample,
        versions={"scikit-learn": sklearn.__version__, "numpy": np.__version__},
    )


def churn_frame(
    history: CutoffHistory, window_days: int, *, fit: ClvFit | None = None, purchase_model: str = "BG/NBD"
) -> pl.DataFrame:
    """One cutoff's features: the behaviour, the purchase model's ``p_alive`` and ``expected_purchases_in_window``
    (null for everyone when no purchase model can be fitted), and ``churned`` when the window after it is known.

    The purchase model is ``fit`` when the lifetime-value run made it at this cutoff, else ``purchase_model``
    fitted here on the cutoff's summary (without the spend model, which these features do not use).
    """
    features = history.behaviour
    try:
        fit = fit or fit_clv(history.summary, spend=False, purchase_model=purchase_model)
        purchases = predict_purchases(fit, history.summary, window_days).select(
            KEY, "p_alive", expected_purchases_in_window="expected_purchases"
        )
        features = features.join(purchases, on=KEY, how="left")
    except ClvFitError:
        features = features.with_columns(
            p_alive=pl.lit(None, dtype=pl.Float64), expected_purchases_in_window=pl.lit(None, dtype=pl.Float64)
        )
    if history.bought is None:
        return features
    return features.with_columns(pl.col(KEY).is_in(history.bought.implode()).not_().alias(LABEL))


def run_churn(
    inputs: ChurnInputs,
    *,
    window_days: int,
    exclude: Collection[str] = (),
    feature_label: Callable[[str], str] = str,
    seed: int = 0,
    sample: int | None = None,
    stored: StoredFit | None = None,
) -> ModelOutput:
    """The churn run (``ml.churn_scores``): each cutoff's frame (:func:`churn_frame`), then :func:`choose_churn`;
    or, given an earlier night's fit (``stored``), the customers to score with it (:func:`rescore_churn`).

    The training and test cutoffs' purchase models are the model the lifetime-value run chose (BG/NBD when it
    chose none), fitted at each cutoff; the customers to score read the published fit itself. When no cutoff can
    train even the baseline, or nobody can be scored, every customer gets null scores and the verdict says why.
    A run that fits returns its fit (``ModelOutput.fit``, under :func:`churn_fit_key`) for later nights to reuse.

    Parameters
    ----------
    inputs
        The cutoffs and what each one's frame is built from.
    window_days
        The churn window: no purchase in these days after a cutoff is churn.
    exclude
        Features left out (e.g. the engagement features, to measure what they add); recorded in the parameters.
    feature_label
        A feature's words, for drivers, reasons and notes.
    seed, sample
        As for :func:`choose_churn` (the sample's size is recorded in the parameters).
    stored
        An earlier night's fit under this run's key (the caller checks the key and that it is due no refit).
    """
    cutoffs, published = inputs.cutoffs, inputs.published_fit
    if stored is not None:
        return rescore_churn(stored, inputs.current, window_days=window_days, published_fit=published,
                             feature_label=feature_label)  # fmt: skip
    if inputs.train is None or inputs.test is None:
        raise ValueError("churn: a run without a stored fit needs the training and test cutoffs' histories")
    purchase_model = published.purchase_model if published else "BG/NBD"
    train = churn_frame(inputs.train, window_days, purchase_model=purchase_model)
    test = churn_frame(inputs.test, window_days, purchase_model=purchase_model)
    current = churn_frame(inputs.current, window_days, fit=published)
    candidates = [column for column in dict.fromkeys([*train.columns, *test.columns]) if column not in (KEY, LABEL)]
    features = [feature for feature in candidates if feature not in exclude]
    excluded = [feature for feature in candidates if feature in exclude]
    parameters = {
        "churn_window_days": window_days,
        "train_cutoff": cutoffs.train,
        "test_cutoff": cutoffs.test,
        "features": features,
        **({"excluded_features": excluded} if excluded else {}),
        "estimator": "HistGradientBoostingClassifier",
        "training_sample": sample,
        "baseline": "logistic regression on log(1 + days since the last order)",
    }
    facts = {"rows_used": train.height + test.height, "training_from": cutoffs.train, "training_to": cutoffs.anchor}

    def attempt() -> ModelOutput:
        churn = choose_churn(
            train, test, current, features, labels_in_words={f: feature_label(f) for f in features}, seed=seed,
            sample=sample,
        )  # fmt: skip
        chosen = parameters | {"features": list(churn.features), "dropped_features": dict(churn.dropped_features)}
        fit = ChurnFit(replace(churn, scores=churn.scores.clear()), chosen, **facts)
        key = churn_fit_key(inputs.current, window_days, exclude, seed, sample)
        return ModelOutput({"churn_scores": churn.scores}, churn.verdict, chosen, **facts, fit=fit, fit_key=key)

    return refusing(attempt, ModelOutput({"churn_scores": no_churn_scores(current)}, parameters=parameters, **facts))


def rescore_churn(
    stored: StoredFit,
    current: CutoffHistory,
    *,
    window_days: int,
    published_fit: ClvFit | None = None,
    feature_label: Callable[[str], str] = str,
) -> ModelOutput:
    """Score the customers of ``current`` with an earlier night's fit: the same scoring as the night that fitted
    (:func:`score_churn` with its model, drivers and baseline), on tonight's features; the verdict, figures and
    facts are the fit's, with a note saying when it was made and when the next refit is due."""
    fit: ChurnFit = stored.fit
    run = fit.run
    frame = churn_frame(current, window_days, fit=published_fit)
    frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias(f) for f in run.features if f not in frame.columns)
    if frame.height == 0:
        verdict = refuse("no customer has ordered before the cutoff, so there is nobody to score", baseline=False)
        return ModelOutput({"churn_scores": no_churn_scores(frame)}, verdict, fit.parameters)
    words = {feature: feature_label(feature) for feature in run.features}
    scored = _scored(run.baseline, run.model, frame, run.verdict, run.features, run.dropped_features, words,
                     run.drivers)  # fmt: skip
    return ModelOutput(
        {"churn_scores": scored.scores}, scored_with(stored, run.verdict), fit.parameters, fit.rows_used,
        fit.training_from, fit.training_to, fitted_as_of=stored.fitted_as_of,
    )  # fmt: skip
