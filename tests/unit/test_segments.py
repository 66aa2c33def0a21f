import json
import re
from datetime import date

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score

from models_ml.protocol import StoredFit
from models_ml.segments import Segmentation, run_segments, segment_customers, segments_fit_key

FEATURES = (
    "recency_days",
    "orders_12m",
    "net_revenue_12m",
    "average_order_value",
    "channel_share__web",
    "channel_share__store",
    "channel_share__phone",
    "support_cases",
    "noise_sessions",
    "noise_score",
)
LOG_FEATURES = ("orders_12m", "net_revenue_12m", "average_order_value")
LABELS = {
    "recency_days": "days since the last order",
    "orders_12m": "orders in the last 12 months",
    "net_revenue_12m": "net revenue in the last 12 months",
    "channel_share__web": "share of orders on the web",
    "channel_share__store": "share of orders in store",
}
# Three known groups, of distinct sizes so numbering by size is checkable: frequent web buyers, occasional store
# buyers, lapsed high spenders.
GROUPS = {
    "frequent web buyers": {"size": 300, "recency": 12, "orders": 9.0, "aov": 40.0, "channels": (16, 3, 1)},
    "occasional store buyers": {"size": 200, "recency": 70, "orders": 1.5, "aov": 35.0, "channels": (2, 16, 2)},
    "lapsed high spenders": {"size": 100, "recency": 320, "orders": 1.2, "aov": 400.0, "channels": (6, 6, 8)},
}


def synthetic_customers(seed: int = 11) -> tuple[pl.DataFrame, np.ndarray]:
    """Customers drawn from the three groups above, plus two noise features that carry no group signal."""
    rng = np.random.default_rng(seed)
    frames, truth = [], []
    for g, spec in enumerate(GROUPS.values()):
        n = spec["size"]
        orders = 1 + rng.poisson(spec["orders"], n)
        aov = rng.lognormal(np.log(spec["aov"]), 0.25, n)
        channels = rng.dirichlet(spec["channels"], n)
        frames.append(
            {
                "recency_days": rng.gamma(8.0, spec["recency"] / 8.0, n).round(),
                "orders_12m": orders,
                "net_revenue_12m": (orders * aov).round(2),
                "average_order_value": aov.round(2),
                "channel_share__web": channels[:, 0],
                "channel_share__store": channels[:, 1],
                "channel_share__phone": channels[:, 2],
                "support_cases": rng.poisson(0.3, n),
                "noise_sessions": rng.poisson(5.0, n),
                "noise_score": rng.normal(0.0, 1.0, n),
            }
        )
        truth += [g] * n
    columns = {c: np.concatenate([f[c] for f in frames]) for c in frames[0]}
    frame = pl.DataFrame({"customer_id": [f"C{i:05d}" for i in range(len(truth))], **columns})
    shuffle = rng.permutation(frame.height)  # so the groups are not in file order
    return frame[shuffle], np.asarray(truth)[shuffle]


def segment(frame: pl.DataFrame, **kwargs) -> Segmentation:
    return segment_customers(frame, FEATURES, labels=LABELS, log_features=LOG_FEATURES, **kwargs)


@pytest.fixture(scope="module")
def world() -> tuple[pl.DataFrame, np.ndarray, Segmentation]:
    frame, truth = synthetic_customers()
    return frame, truth, segment(frame)


def test_the_true_number_of_groups_is_chosen_and_recovered(world):
    frame, truth, result = world
    assert result.k == len(GROUPS)
    assert result.assignments["customer_id"].to_list() == frame["customer_id"].to_list()
    assert adjusted_rand_score(truth, result.assignments["cluster"].to_numpy()) > 0.9


def test_selection_has_one_row_per_k_and_the_chosen_k_has_the_best_silhouette(world):
    _, _, result = world
    selection = result.selection
    assert selection["k"].to_list() == list(range(2, 9))
    assert selection.filter("chosen")["k"].to_list() == [result.k]
    assert selection.filter("chosen")["silhouette"].item() >= selection["silhouette"].max() - 0.005
    assert "silhouette" in result.criterion and "k from 2 to 8" in result.criterion


def test_each_silhouette_is_scikit_learns_on_the_standardised_customers(world):
    # the silhouettes read one distance matrix computed once: they must be silhouette_score's own figures
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    frame, _, result = world
    values = frame.select(pl.col(feature).cast(pl.Float64) for feature in FEATURES).to_numpy()
    for j, feature in enumerate(FEATURES):
        if feature in LOG_FEATURES:
            values[:, j] = np.log1p(np.clip(values[:, j], 0.0, None))
    matrix = StandardScaler().fit_transform(values)
    for k, silhouette in result.selection.select("k", "silhouette").iter_rows():
        labels = KMeans(n_clusters=k, n_init=10, random_state=0).fit(matrix).labels_
        assert silhouette == pytest.approx(silhouette_score(matrix, labels), rel=1e-12), k


def test_the_frequent_buyers_are_described_as_ordering_more(world):
    _, truth, result = world
    frequent = list(GROUPS).index("frequent web buyers")
    cluster = result.assignments.filter(pl.Series(truth == frequent))["cluster"].mode().item()
    profile = result.profiles.filter(pl.col("cluster") == cluster).row(0, named=True)
    assert re.search(r"orders in the last 12 months: (far )?more than average", profile["description"])
    assert profile["orders_12m__z"] == result.profiles["orders_12m__z"].max()
    assert "%" in profile["description"]  # a share is among its standout features, printed as a percentage
    lapsed = list(GROUPS).index("lapsed high spenders")
    cluster = result.assignments.filter(pl.Series(truth == lapsed))["cluster"].mode().item()
    description = result.profiles.filter(pl.col("cluster") == cluster)["description"].item()
    assert "days since the last order: far more than average" in description


def test_clusters_are_numbered_by_size_and_shares_add_up(world):
    frame, _, result = world
    profiles = result.profiles
    assert profiles["cluster"].to_list() == list(range(1, result.k + 1))
    assert profiles["customers"].to_list() == sorted(profiles["customers"].to_list(), reverse=True)
    assert profiles["customers"].to_list() == pytest.approx([300, 200, 100], abs=3)  # the true group sizes
    assert profiles["customers"].sum() == frame.height
    assert profiles["customer_share"].sum() == pytest.approx(1.0)
    channel_means = profiles.select(pl.sum_horizontal(pl.col("^channel_share__[a-z]+$")))
    assert channel_means.to_series().to_list() == pytest.approx([1.0] * result.k)
    assert profiles["cluster_name"].n_unique() == result.k


def test_profile_means_match_a_group_by_of_the_assignments(world):
    frame, _, result = world
    by_hand = (
        result.assignments.join(frame, on="customer_id")
        .group_by("cluster")
        .agg(pl.len().alias("customers"), *(pl.col(f).mean() for f in FEATURES))
        .sort("cluster")
    )
    profiles = result.profiles.select("cluster", "customers", *FEATURES)
    assert by_hand["customers"].to_list() == profiles["customers"].to_list()
    for feature in FEATURES:
        assert profiles[feature].to_list() == pytest.approx(by_hand[feature].to_list(), rel=1e-9), feature
    names = result.assignments.select("cluster", "cluster_name").unique().sort("cluster")
    assert names["cluster_name"].to_list() == result.profiles["cluster_name"].to_list()


def test_distances_are_to_the_own_centre_in_standardised_units(world):
    _, _, result = world
    assert (result.assignments["distance"] >= 0).all()
    assert result.assignments["distance"].median() < 5.0


def test_the_summary_is_json_able(world):
    _, _, result = world
    summary = json.loads(json.dumps(result.as_dict()))
    assert summary["k"] == result.k
    assert set(summary["silhouettes"]) == {str(k) for k in range(2, 9)}
    assert summary["features"] == list(FEATURES)
    assert summary["dropped_features"] == {}
    assert summary["seed"] == 0


def test_same_seed_same_output(world):
    frame, _, result = world
    again = segment(frame)
    assert again.assignments.equals(result.assignments)
    assert again.profiles.equals(result.profiles)
    assert again.selection.equals(result.selection)
    assert again.criterion == result.criterion


def test_a_sample_fits_the_model_and_every_customer_is_assigned():
    frame, truth = synthetic_customers()
    result = segment(frame, sample_size=240, k_range=range(2, 6))
    assert result.assignments.height == frame.height
    assert result.as_dict()["sample_size"] == 240
    assert "240-customer sample of 600" in result.criterion
    assert adjusted_rand_score(truth, result.assignments["cluster"].to_numpy()) > 0.9


def test_a_constant_feature_is_dropped_and_reported():
    frame, _ = synthetic_customers()
    frame = frame.with_columns(pl.lit(3).alias("loyalty_tier"))
    result = segment_customers(frame, [*FEATURES, "loyalty_tier"], log_features=LOG_FEATURES, k_range=[3])
    assert "loyalty_tier" not in result.features
    assert "loyalty_tier" in result.as_dict()["dropped_features"]
    assert "loyalty_tier" not in result.as_dict()["features"]
    assert result.profiles["loyalty_tier"].to_list() == [3.0] * 3
    assert result.profiles["loyalty_tier__z"].to_list() == [0.0] * 3
    assert "loyalty tier" not in " ".join(result.profiles["description"])


def test_too_few_customers_for_large_k_narrows_the_range():
    frame, _ = synthetic_customers()
    result = segment(frame.head(9))
    assert result.selection["k"].to_list() == [2, 3, 4]
    assert "requested" in result.criterion
    assert result.as_dict()["k_range_tried"] == [2, 3, 4]


def test_fewer_than_four_customers_are_refused():
    frame, _ = synthetic_customers()
    with pytest.raises(ValueError, match="too few"):
        segment(frame.head(3))


def test_a_cluster_like_the_whole_population_is_close_to_the_average():
    # Small low and high groups either side of a large middle group, and noise: the middle is the average customer.
    rng = np.random.default_rng(5)
    sizes = (15, 60, 15)
    frame = pl.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(sum(sizes))],
            "orders_12m": np.concatenate([rng.normal(m, 0.1, n) for m, n in zip((1, 5, 9), sizes, strict=True)]),
            "net_revenue_12m": np.concatenate(
                [rng.normal(m, 5, n) for m, n in zip((50, 250, 450), sizes, strict=True)]
            ),
            "support_cases": rng.normal(0, 1, sum(sizes)),
        }
    )
    result = segment_customers(frame, ["orders_12m", "net_revenue_12m", "support_cases"], k_range=[3])
    assert result.profiles["customers"].to_list() == [60, 15, 15]
    middle = result.profiles.row(0, named=True)
    assert middle["description"] == "Close to the average customer on every measure."
    assert middle["cluster_name"] == "Average customers"


def test_only_features_that_stand_out_are_described():
    # Two tight groups far apart on one feature, noise on the other: the noise does not stand out.
    rng = np.random.default_rng(3)
    frame = pl.DataFrame(
        {
            "customer_id": range(40),
            "orders_12m": np.r_[rng.normal(1, 0.1, 20), rng.normal(10, 0.1, 20)],
            "support_cases": rng.normal(0, 1, 40),
        }
    )
    result = segment_customers(frame, ["orders_12m", "support_cases"], k_range=[2])
    descriptions = result.profiles["description"].to_list()
    assert all(d.startswith("Orders 12m: ") and "support cases" not in d for d in descriptions)
    assert sorted(result.profiles["cluster_name"]) == ["High orders 12m", "Low orders 12m"]


@pytest.mark.parametrize("column", ["customer_id", "orders_12m", "channel_share__web"])
def test_a_missing_column_is_named(column):
    frame, _ = synthetic_customers()
    with pytest.raises(ValueError, match=column):
        segment(frame.drop(column))


def test_a_non_numeric_feature_is_named():
    frame, _ = synthetic_customers()
    with pytest.raises(ValueError, match="orders_12m.*not numeric"):
        segment(frame.with_columns(pl.col("orders_12m").cast(pl.String)))


@pytest.mark.parametrize("bad", [None, float("nan")])
def test_nulls_are_refused_with_a_request_to_fill_them(bad):
    frame, _ = synthetic_customers()
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 5)
        .then(pl.lit(bad, dtype=pl.Float64))
        .otherwise("recency_days")
        .alias("recency_days")
    )
    with pytest.raises(ValueError, match="recency_days.*fill"):
        segment(frame)


def test_duplicate_customers_are_refused():
    frame, _ = synthetic_customers()
    with pytest.raises(ValueError, match="unique.*C00000"):
        segment(pl.concat([frame, frame.filter(pl.col("customer_id") == "C00000")]))


def test_a_log_feature_outside_the_features_is_named():
    frame, _ = synthetic_customers()
    with pytest.raises(ValueError, match="web_sessions_90d"):
        segment_customers(frame, FEATURES, log_features=["web_sessions_90d"])


def test_a_stored_fit_assigns_the_same_customers_as_the_night_that_fitted(world):
    frame, _, result = world
    again = segment(frame, fit=result.fit)
    assert again.assignments.equals(result.assignments)
    assert again.profiles.equals(result.profiles)
    assert again.selection.equals(result.selection)
    assert (again.k, again.criterion, again.as_dict()) == (result.k, result.criterion, result.as_dict())


def test_a_stored_fit_assigns_a_later_nights_customers_to_its_centres_and_describes_them_anew(world):
    _, _, result = world
    later, truth = synthetic_customers(seed=12)  # other customers from the same three groups
    reused = segment(later, fit=result.fit)
    assert (reused.k, reused.criterion) == (result.k, result.criterion)
    assert reused.selection.equals(result.selection), "k is the fit's: no silhouettes tonight"
    assert adjusted_rand_score(truth, reused.assignments["cluster"].to_numpy()) > 0.9
    # the profiles measure each cluster against tonight's customers: the weighted z of every feature is 0
    shares = reused.profiles["customer_share"].to_numpy()
    for feature in reused.features:
        assert abs(float(shares @ reused.profiles[f"{feature}__z"].to_numpy())) < 1e-9, feature
    assert reused.profiles["customers"].sum() == later.height


def test_a_stored_fit_over_other_features_is_refused(world):
    frame, _, result = world
    with pytest.raises(ValueError, match="the stored fit clusters"):
        segment_customers(frame, FEATURES[:-1], log_features=LOG_FEATURES, fit=result.fit)


def test_the_run_keeps_its_fit_and_a_later_night_scores_with_it():
    frame, _ = synthetic_customers()
    behaviour = frame.rename({"orders_12m": "orders_365d", "net_revenue_12m": "net_revenue_365d"})
    fitted = run_segments(behaviour)
    assert fitted.fit is not None and fitted.fit_key == segments_fit_key(behaviour)
    assert fitted.fitted_as_of is None
    stored = StoredFit(fitted_as_of=date(2026, 6, 30), refit_on=date(2026, 7, 7), fit=fitted.fit)
    reused = run_segments(behaviour, stored=stored)
    assert reused.fit is None and reused.fitted_as_of == date(2026, 6, 30)
    assert reused.tables["behaviour_segments"].equals(fitted.tables["behaviour_segments"])
    assert "made on the night of 2026-06-30" in reused.verdict.notes[-1]
    assert segments_fit_key(behaviour.drop("channel_share__phone")) != fitted.fit_key
