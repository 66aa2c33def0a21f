"""Behavioural segmentation: k-means on standardised behaviour, with segments described in words.

Customers are clustered with k-means (J. MacQueen, "Some methods for classification and analysis of multivariate
observations", *Proc. 5th Berkeley Symposium*, 1967), fitted with Lloyd's algorithm (S. P. Lloyd, "Least squares
quantization in PCM", *IEEE Trans. Information Theory* 28(2), 1982) from k-means++ starts (Arthur and
Vassilvitskii, 2007). The number of clusters is chosen by the mean silhouette width (P. J. Rousseeuw,
"Silhouettes: a graphical aid to the interpretation and validation of cluster analysis", *J. Computational and
Applied Mathematics* 20, 1987), computed on a seeded sample so that a million customers stay cheap: the model is
fitted and scored on the sample and every customer is then assigned to the nearest centre.

Each cluster is described by the features whose cluster mean lies furthest from the population mean, measured in
the standardised units the clustering used, and phrased in words with the actual means for an analyst to read.

With ``model_refit_days`` above 1, the night that fits keeps its fit (:class:`SegmentFit`: the scaling, the centres
and the choice of k) and the nights until the refit is due assign their own customers to those centres, described
on their own behaviour, instead of choosing k again: the silhouettes and k-means fits are most of the run's work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import sklearn
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.preprocessing import StandardScaler

from models_ml.protocol import ModelOutput, StoredFit, Verdict, fingerprint, refusing, scored_with
from models_ml.validation import KEY, InsufficientDataError, validate_columns

# The behaviour the run clusters on (columns of pipelines/ml/features.py's behaviour), beside every category and
# channel share; the heavy-tailed counts and amounts among them are log-scaled first.
SEGMENT_FEATURES = (
    "recency_days", "orders_365d", "net_revenue_365d", "average_order_value", "tenure_days", "return_rate",
    "support_cases_365d", "bad_experiences_365d", "campaign_response_rate", "web_sessions_90d",
)  # fmt: skip
SHARE_PREFIXES = ("category_share__", "channel_share__")
HEAVY_TAILED = (
    "recency_days", "orders_365d", "net_revenue_365d", "average_order_value", "tenure_days", "support_cases_365d",
    "bad_experiences_365d", "web_sessions_90d",
)  # fmt: skip
PROFILE_COLUMNS = ("cluster", "cluster_name", "customers", "customer_share", "description")
TIE_TOLERANCE = 0.005  # a smaller k whose silhouette is within this of the best is preferred
NOTABLE_Z = 0.5  # |z| from which a feature is said to differ ("more" / "less")
STRONG_Z = 1.0  # |z| from which it differs "far"
MAX_TERMS = 4  # features named in a description at most
MIN_CUSTOMERS = 4  # two clusters of two: the least a silhouette can be computed on
NEAR_AVERAGE = "close to the average customer on every measure"
_MONEY_WORDS = frozenset({"revenue", "value", "spend", "spent", "amount", "monetary", "sales", "price", "margin"})
# Bumped when what a stored segmentation fit holds, or how it assigns, changes: a fit stored by other code is never
# reused.
SEGMENT_FIT_FORMAT = 1


@dataclass(frozen=True)
class SegmentFit:
    """What a later night needs to assign its customers with this fit instead of choosing k again: the features
    asked for, those clustered on (``kept``, their positions) and why the others were left out, the log-scaled ones,
    the standardisation and the chosen k-means fit, and how k was chosen (the selection table, the criterion and
    the parameters of the night that fitted)."""

    features: tuple[str, ...]
    kept: tuple[int, ...]
    dropped_features: Mapping[str, str]
    log_features: tuple[str, ...]
    scaler: StandardScaler
    model: KMeans
    selection: pl.DataFrame
    criterion: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class Segmentation:
    """The result of :func:`segment_customers`.

    Attributes
    ----------
    assignments
        One row per customer: ``customer_id``, ``cluster`` (1..k, 1 the largest), ``cluster_name`` and
        ``distance`` (Euclidean, to the cluster centre, in standardised units).
    profiles
        One row per cluster: ``cluster``, ``cluster_name``, ``customers``, ``customer_share``, ``description``,
        then for every feature its mean in the cluster (column named as the feature, in the feature's own units)
        and ``<feature>__z``, the cluster mean in standardised units (0 is the population mean; log1p applied
        first for ``log_features``; 0 for a dropped constant feature).
    selection
        One row per k tried: ``k``, ``silhouette`` (mean silhouette width on the sample), ``inertia`` (within-
        cluster sum of squares on the sample) and ``chosen``.
    k
        The number of clusters chosen.
    criterion
        How k was chosen, in plain words.
    features
        The features the clustering used (the requested ones less any dropped).
    dropped_features
        Feature -> why it was left out of the clustering (e.g. it has the same value for every customer).
    parameters
        The settings that reproduce the run: seed, sample size, n_init, log features, k range requested and tried.
    fit
        The fit that assigned the customers, for a later night to assign with (:class:`SegmentFit`).
    """

    assignments: pl.DataFrame
    profiles: pl.DataFrame
    selection: pl.DataFrame
    k: int
    criterion: str
    features: tuple[str, ...] = ()
    dropped_features: Mapping[str, str] = field(default_factory=dict)
    parameters: Mapping[str, Any] = field(default_factory=dict)
    fit: SegmentFit | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able summary for a model-runs table: k, criterion, silhouettes, features and cluster sizes."""
        return {
            "method": "k-means (MacQueen 1967; Lloyd 1982) on standardised features, k by silhouette (Rousseeuw 1987)",
            "k": self.k,
            "criterion": self.criterion,
            "silhouettes": {str(k): float(s) for k, s in self.selection.select("k", "silhouette").iter_rows()},
            "inertias": {str(k): float(s) for k, s in self.selection.select("k", "inertia").iter_rows()},
            "features": list(self.features),
            "dropped_features": dict(self.dropped_features),
            "clusters": [
                {"cluster": c, "name": name, "customers": n}
                for c, name, n in self.profiles.select("cluster", "cluster_name", "customers").iter_rows()
            ],
            **{key: list(value) if isinstance(value, tuple) else value for key, value in self.parameters.items()},
        }


def no_segments(customers: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The assignments and profiles of a run that segments nobody: no rows, the columns of a ``Segmentation``."""
    assignments = pl.DataFrame(
        schema={KEY: customers.schema[KEY], "cluster": pl.Int32, "cluster_name": pl.String, "distance": pl.Float64}
    )
    profiles = pl.DataFrame(
        schema={
            "cluster": pl.Int32,
            "cluster_name": pl.String,
            "customers": pl.Int64,
            "customer_share": pl.Float64,
            "description": pl.String,
        }
    )
    return assignments, profiles


def _validate(
    customers: pl.DataFrame, features: Sequence[str], log_features: Sequence[str], k_range: Sequence[int]
) -> None:
    if isinstance(features, str):
        raise ValueError("segments: features must be a sequence of column names, not one string")
    if not features:
        raise ValueError("segments: no features given; pass the behaviour columns to cluster on")
    if len(set(features)) != len(features):
        repeated = sorted({f for f in features if list(features).count(f) > 1})
        raise ValueError(f"segments: feature(s) listed twice: {', '.join(repeated)}")
    reserved = [f for f in features if f in (KEY, *PROFILE_COLUMNS)]
    if reserved:
        raise ValueError(f"segments: feature name(s) {', '.join(reserved)} clash with output columns; rename them")
    validate_columns(
        customers, features, "segments", key=KEY, numeric=features, not_null=features, finite=features,
        advice="fill them before segmenting (e.g. 0 for counts and shares of customers with no such activity)",
    )  # fmt: skip
    unknown_log = [f for f in log_features if f not in features]
    if unknown_log:
        raise ValueError(f"segments: log_features not among the features: {', '.join(unknown_log)}")
    if not k_range or any(isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 2 for k in k_range):
        raise ValueError(f"segments: k_range must be integers of at least 2; got {list(k_range)}")


def _usable_ks(k_range: Sequence[int], sample_rows: int, distinct_rows: int) -> list[int]:
    """The ks that fit the data: at least two customers per cluster on average, and no more clusters than
    distinct customer profiles (beyond that k-means would have to leave clusters empty)."""
    return [k for k in sorted({int(k) for k in k_range}) if 2 * k <= sample_rows and k <= distinct_rows]


def _describe_ks(ks: Sequence[int]) -> str:
    if len(ks) > 2 and list(ks) == list(range(ks[0], ks[-1] + 1)):
        return f"k from {ks[0]} to {ks[-1]}"
    return "k in " + ", ".join(str(k) for k in ks)


def _default_label(feature: str) -> str:
    """``channel_share__web`` -> ``channel share (web)``; ``orders_12m`` -> ``orders 12m``."""
    head, _, tail = feature.partition("__")
    words = head.replace("_", " ").strip()
    return f"{words} ({tail.replace('_', ' ').strip()})" if tail else words


def _value_kind(feature: str, values: np.ndarray) -> str:
    """How to print a feature: ``share`` (percent) for shares and rates held as fractions in [0, 1], ``money``
    (2 decimals) for revenue-like names, otherwise ``count`` (1 decimal)."""
    name = feature.lower()
    tokens = set(name.replace("__", "_").split("_"))
    if ("share" in name or "rate" in tokens) and values.min() >= 0 and values.max() <= 1:
        return "share"
    if tokens & _MONEY_WORDS:
        return "money"
    return "count"


def _format(value: float, kind: str) -> str:
    if kind == "share":
        return f"{value:.0%}"
    if kind == "money":
        return f"{value:,.2f}"
    return f"{value:,.1f}"


def _standout_terms(z: Mapping[str, float], agrees: Mapping[str, bool]) -> list[tuple[str, float]]:
    """The features to describe a cluster by: up to four with |z| >= 0.5, largest first. A log-scaled feature
    whose raw mean lies on the other side of the population mean from its z is skipped, as words and numbers
    would contradict each other."""
    ranked = sorted(((f, v) for f, v in z.items() if agrees[f]), key=lambda item: (-abs(item[1]), item[0]))
    return [(f, v) for f, v in ranked if abs(v) >= NOTABLE_Z][:MAX_TERMS]


def _phrase(z: float) -> str:
    direction = "more" if z > 0 else "less"
    return f"far {direction}" if abs(z) >= STRONG_Z else direction


def _describe_cluster(
    terms: Sequence[tuple[str, float]],
    means: Mapping[str, float],
    population: Mapping[str, float],
    kinds: Mapping[str, str],
    labels: Mapping[str, str],
) -> str:
    if not terms:
        return NEAR_AVERAGE[0].upper() + NEAR_AVERAGE[1:] + "."
    parts = [
        f"{labels[f]}: {_phrase(z)} than average "
        f"({_format(means[f], kinds[f])} against {_format(population[f], kinds[f])})"
        for f, z in terms
    ]
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def _name_cluster(terms: Sequence[tuple[str, float]], labels: Mapping[str, str]) -> str:
    named = terms[:2]
    if not named:
        return "Average customers"
    text = ", ".join(f"{'high' if z > 0 else 'low'} {labels[f]}" for f, z in named)
    return text[0].upper() + text[1:]


def _unique_names(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return unique


def segment_customers(
    customers: pl.DataFrame,
    features: Sequence[str],
    *,
    labels: Mapping[str, str] | None = None,
    k_range: Sequence[int] = range(2, 9),
    sample_size: int = 10_000,
    seed: int = 0,
    log_features: Sequence[str] = (),
    n_init: int = 10,
    fit: SegmentFit | None = None,
) -> Segmentation:
    """Cluster customers on standardised behaviour with k-means, k chosen by silhouette, and describe the clusters.

    Method: heavy-tailed ``log_features`` are clipped at 0 and log1p-transformed; every feature is standardised to
    mean 0 and variance 1 over all customers (a feature with the same value for every customer is dropped and
    reported in ``dropped_features``). On a seeded sample of ``sample_size`` customers (all of them if fewer),
    k-means (MacQueen 1967; Lloyd's algorithm, Lloyd 1982; k-means++ starts, ``n_init`` restarts,
    ``random_state=seed``) is fitted for each k in ``k_range`` and scored by the mean silhouette width on the
    sample (Rousseeuw 1987). The k with the highest silhouette is chosen, except that the smallest k within
    0.005 of the best is preferred to a larger one. Every customer is then assigned to the nearest centre of the
    chosen fit, so the cost of the whole population is one distance computation per customer.

    Parameters
    ----------
    customers
        One row per customer who has ordered: ``customer_id`` and the numeric (or boolean) feature columns,
        without nulls or NaN (fill them first: a customer with no store orders has a store share of 0).
    features
        The feature columns to cluster on, e.g. ``recency_days``, ``orders_12m``, ``channel_share__web``.
    labels
        Feature -> words for descriptions and names, e.g. ``{"orders_12m": "orders in the last 12 months"}``.
        Features without a label get one from their name; labels for features not used are ignored.
    k_range
        The numbers of clusters to try, each at least 2. Ks that would leave fewer than two sampled customers
        per cluster on average (or more clusters than distinct sampled profiles) are left out, and the
        ``criterion`` says so; fewer than 4 customers cannot be segmented (``InsufficientDataError``).
    sample_size
        How many customers to fit and score on; the silhouette costs the square of this.
    seed
        Seeds the sample and k-means.
    log_features
        Heavy-tailed counts and amounts (revenue, orders, sessions) to log1p before standardising; values below
        0 (net revenue after returns) are clipped to 0 first.
    n_init
        k-means restarts per k; the best (lowest inertia) is kept.
    fit
        An earlier night's fit (:attr:`Segmentation.fit`) over the same ``features``: its standardisation, centres
        and choice of k assign and describe these customers, and ``k_range``, ``sample_size``, ``seed``,
        ``log_features`` and ``n_init`` are the fit's.

    Returns
    -------
    Segmentation
        Assignments, one profile row per cluster with a description in words, the k selection table, the
        chosen k and the criterion; clusters are numbered 1..k by size, largest first.

    Raises
    ------
    InsufficientDataError
        When the data cannot be segmented: fewer than 4 customers, every feature the same for everyone, or no k
        with two customers per cluster and a distinct profile per cluster. The reason is in plain words.
    ValueError
        When the input breaks its contract (a missing, non-numeric or unfilled feature, a duplicated key).

    Notes
    -----
    Descriptions name up to four features whose cluster mean is at least 0.5 standard deviations from the
    population mean, largest first, as "<label>: more than average (<cluster mean> against <population mean>)"
    ("far more" / "far less" from 1.0); with none, the cluster is "close to the average customer on every
    measure". The deviation is measured in the standardised units the clustering used (after log1p for
    ``log_features``); a log feature whose raw cluster mean falls on the other side of the population mean is
    not named, so words and numbers never disagree. Shares (names containing "share", and rates, held as
    fractions in [0, 1]) print as percentages, revenue-like amounts (names with revenue, value, spend, amount,
    sales, price, margin) with 2 decimals, everything else with 1 decimal. The cluster name is "High <label>" /
    "Low <label>" from the top one or two of those features ("Average customers" with none), numbered
    " (2)", " (3)" where two clusters would share a name.
    """
    if fit is not None:
        if list(features) != list(fit.features):
            raise ValueError(f"segments: the stored fit clusters {list(fit.features)}, not {list(features)}")
        log_features = fit.log_features
    _validate(customers, features, log_features, k_range)
    if sample_size < MIN_CUSTOMERS:
        raise ValueError(f"segments: sample_size must be at least {MIN_CUSTOMERS}; got {sample_size}")
    if n_init < 1:
        raise ValueError(f"segments: n_init must be at least 1; got {n_init}")
    n = customers.height
    if n < MIN_CUSTOMERS:
        raise InsufficientDataError(f"segments: {n} customer(s) is too few to segment; need at least {MIN_CUSTOMERS}")
    features = list(features)
    label_of = {f: (labels or {}).get(f) or _default_label(f) for f in features}

    raw = customers.select(pl.col(f).cast(pl.Float64) for f in features).to_numpy()
    transformed = raw.copy()
    for j, f in enumerate(features):
        if f in log_features:
            transformed[:, j] = np.log1p(np.clip(transformed[:, j], 0.0, None))
    fitted_here = fit is None
    if fit is None:
        fit = _fit(transformed, raw, features, log_features, k_range, sample_size, seed, n_init)
    kept, dropped, model = list(fit.kept), dict(fit.dropped_features), fit.model
    chosen = model.n_clusters
    matrix = np.ascontiguousarray(fit.scaler.transform(transformed[:, kept]))
    # the profiles measure each cluster against these customers: a stored fit's scaling is its own night's
    standard = matrix if fitted_here else StandardScaler().fit_transform(transformed[:, kept])
    del transformed  # a million customers: keep only the raw values (for means) and the standardised matrix

    # The chosen fit is the sample fit (same data, same seed): assign everyone to its nearest centre.
    fitted_labels = model.predict(matrix)
    sizes = np.bincount(fitted_labels, minlength=chosen)
    order = sorted(range(chosen), key=lambda c: (-sizes[c], c))  # number clusters by size, largest first
    renumber = np.empty(chosen, dtype=np.int64)
    renumber[order] = np.arange(1, chosen + 1)
    cluster = renumber[fitted_labels]
    distance = np.linalg.norm(matrix - model.cluster_centers_[fitted_labels], axis=1)

    counts = np.bincount(cluster, minlength=chosen + 1)[1:]
    population = {f: float(raw[:, j].mean()) for j, f in enumerate(features)}
    kinds = {f: _value_kind(f, raw[:, j]) for j, f in enumerate(features)}
    means = {
        f: np.bincount(cluster, weights=raw[:, j], minlength=chosen + 1)[1:] / counts for j, f in enumerate(features)
    }
    zs = {f: np.zeros(chosen) for f in dropped}  # a constant feature does not differ from the population
    for column, j in enumerate(kept):
        zs[features[j]] = np.bincount(cluster, weights=standard[:, column], minlength=chosen + 1)[1:] / counts

    names, descriptions = [], []
    for c in range(chosen):
        z = {f: float(zs[f][c]) for f in features if f not in dropped}
        agrees = {f: f not in log_features or (means[f][c] - population[f]) * z[f] > 0 for f in z}
        terms = _standout_terms(z, agrees)
        cluster_means = {f: float(means[f][c]) for f in features}
        descriptions.append(_describe_cluster(terms, cluster_means, population, kinds, label_of))
        names.append(_name_cluster(terms, label_of))
    names = _unique_names(names)

    profiles = pl.DataFrame(
        {
            "cluster": pl.Series(range(1, chosen + 1), dtype=pl.Int32),
            "cluster_name": names,
            "customers": pl.Series(counts, dtype=pl.Int64),
            "customer_share": counts / n,
            "description": descriptions,
            **{column: values for f in features for column, values in ((f, means[f]), (f"{f}__z", zs[f]))},
        }
    )
    assignments = pl.DataFrame(
        {
            KEY: customers[KEY],
            "cluster": pl.Series(cluster, dtype=pl.Int32),
            "cluster_name": pl.Series(names)[cluster - 1],
            "distance": distance,
        }
    )
    return Segmentation(
        assignments=assignments,
        profiles=profiles,
        selection=fit.selection,
        k=chosen,
        criterion=fit.criterion,
        features=tuple(features[j] for j in kept),
        dropped_features=dropped,
        parameters=fit.parameters,
        fit=fit,
    )


def _fit(
    transformed: np.ndarray,
    raw: np.ndarray,
    features: Sequence[str],
    log_features: Sequence[str],
    k_range: Sequence[int],
    sample_size: int,
    seed: int,
    n_init: int,
) -> SegmentFit:
    """Choose k and fit k-means on a sample of ``transformed`` (the features, log1p applied): the method of
    :func:`segment_customers`."""
    n = len(transformed)
    constant = [j for j in range(len(features)) if np.ptp(transformed[:, j]) == 0]
    dropped = {features[j]: f"the same value ({_format(raw[0, j], 'count')}) for every customer" for j in constant}
    kept = [j for j in range(len(features)) if j not in constant]
    if not kept:
        raise InsufficientDataError(
            "segments: every feature has the same value for every customer; nothing to segment on"
        )
    scaler = StandardScaler().fit(transformed[:, kept])

    rng = np.random.default_rng(seed)
    sample_index = np.arange(n) if n <= sample_size else np.sort(rng.choice(n, size=sample_size, replace=False))
    # only the sample is standardised here (row by row, the same numbers): segment_customers standardises everyone
    sample = scaler.transform(transformed[sample_index][:, kept])
    requested = sorted({int(k) for k in k_range})
    distinct = len(np.unique(sample, axis=0))
    ks = _usable_ks(requested, len(sample), distinct)
    if not ks:
        raise InsufficientDataError(
            f"segments: no k in {requested} fits {len(sample)} sampled customers with {distinct} distinct "
            "profiles; k-means needs two customers per cluster on average and a distinct profile per cluster"
        )

    fits: dict[int, KMeans] = {}
    silhouettes: dict[int, float] = {}
    # every k's silhouette reads the same distances between the sampled customers: computed once, not per k (the
    # same numbers; 800 MB at the 10,000-customer sample)
    distances = euclidean_distances(sample)
    for k in ks:
        model = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(sample)
        fits[k] = model
        silhouettes[k] = float(silhouette_score(distances, model.labels_, metric="precomputed"))
    del distances
    best = max(ks, key=lambda k: (silhouettes[k], -k))
    chosen = min(k for k in ks if silhouettes[k] >= silhouettes[best] - TIE_TOLERANCE)

    sample_words = f"all {n:,} customers" if len(sample) == n else f"a {len(sample):,}-customer sample of {n:,}"
    criterion = f"highest mean silhouette on {sample_words}, {_describe_ks(ks)}"
    if ks != requested:
        criterion += f" (of {_describe_ks(requested)} requested, as larger k needs more distinct customers)"
    criterion += f"; a smaller k within {TIE_TOLERANCE} of the best silhouette is preferred"
    if chosen != best:
        criterion += f" (k={chosen} at {silhouettes[chosen]:.3f} preferred to k={best} at {silhouettes[best]:.3f})"

    return SegmentFit(
        features=tuple(features),
        kept=tuple(kept),
        dropped_features=dropped,
        log_features=tuple(f for f in features if f in log_features),
        scaler=scaler,
        model=fits[chosen],
        selection=pl.DataFrame(
            {
                "k": pl.Series(ks, dtype=pl.Int64),
                "silhouette": [silhouettes[k] for k in ks],
                "inertia": [float(fits[k].inertia_) for k in ks],
                "chosen": [k == chosen for k in ks],
            }
        ),
        criterion=criterion,
        parameters={
            "seed": seed,
            "customers": n,
            "sample_size": len(sample),
            "n_init": n_init,
            "log_features": tuple(f for f in features if f in log_features),
            "k_range_requested": tuple(requested),
            "k_range_tried": tuple(ks),
        },
    )


__all__ = ["SegmentFit", "Segmentation", "no_segments", "segment_customers", "segments_fit_key"]


def segment_features(behaviour: pl.DataFrame) -> list[str]:
    """The columns of ``behaviour`` the segmentation clusters on: ``SEGMENT_FEATURES`` and the category and channel
    shares."""
    return [column for column in behaviour.columns if column in SEGMENT_FEATURES or
            column.startswith(SHARE_PREFIXES)]  # fmt: skip


def segments_fit_key(behaviour: pl.DataFrame) -> str:
    """The fingerprint of what a segmentation fit depends on besides the data: the features it clusters on (a
    category, channel or source that appears or goes changes them), the format of the stored fit and the versions of
    the libraries that fitted it. A stored fit is reused only under the same key."""
    return fingerprint(
        format=SEGMENT_FIT_FORMAT,
        features=segment_features(behaviour),
        versions={"scikit-learn": sklearn.__version__, "numpy": np.__version__},
    )


def run_segments(
    behaviour: pl.DataFrame, *, feature_label: Callable[[str], str] = str, stored: StoredFit | None = None
) -> ModelOutput:
    """The behavioural segmentation run (``ml.behaviour_segments``, ``ml.behaviour_segment_profiles``).

    Clusters on the columns of ``behaviour`` among ``SEGMENT_FEATURES`` and the category and channel shares, a
    missing value read as 0 (no such activity), with :func:`segment_customers`' defaults; ``feature_label`` gives a
    feature's words. Fewer customers than can be segmented publish no rows, and the verdict says why. A run that
    fits returns its fit (under :func:`segments_fit_key`); given an earlier night's (``stored``, under the same
    key), the customers are assigned to its centres and described on their own behaviour, with its k and figures.
    """
    features = segment_features(behaviour)
    customers = behaviour.select(KEY, *features).fill_null(0).fill_nan(0)
    empty_assignments, empty_profiles = no_segments(customers)

    def attempt() -> ModelOutput:
        segmentation = segment_customers(
            customers,
            features,
            labels={feature: feature_label(feature) for feature in features},
            log_features=[feature for feature in features if feature in HEAVY_TAILED],
            fit=stored.fit if stored is not None else None,
        )
        verdict = Verdict("model", None, {"k": segmentation.k, "criterion": segmentation.criterion})
        tables = {
            "behaviour_segments": segmentation.assignments,
            "behaviour_segment_profiles": segmentation.profiles.select(PROFILE_COLUMNS),
        }
        if stored is not None:
            verdict = scored_with(stored, verdict, tonight="Tonight's customers were assigned to its segments.")
            return ModelOutput(tables, verdict, segmentation.as_dict(), customers.height,
                               fitted_as_of=stored.fitted_as_of)  # fmt: skip
        return ModelOutput(tables, verdict, segmentation.as_dict(), customers.height, fit=segmentation.fit,
                           fit_key=segments_fit_key(behaviour))  # fmt: skip

    nothing = {"behaviour_segments": empty_assignments, "behaviour_segment_profiles": empty_profiles}
    return refusing(attempt, ModelOutput(nothing, rows_used=customers.height))
