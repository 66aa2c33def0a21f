"""Judge the published scores against what the demo generator knows: the 6 months after the cutoff, and the
oracle (predictions from each customer's true latent parameters and whether they were still active: no model
can know those). Between the two sits the best any model can do from purchase history: BG/NBD and Gamma-Gamma
with the generator's true population parameters, conditioned on each customer's observed history
(``history_ceiling``). A model near that ceiling has learnt all that the purchase history says. Churn is also
re-run without the engagement features (web sessions, email and campaign touches), to say what engagement adds.

Only demo data has a truth folder; on a company's own data the models are judged by their holdout and
out-of-time figures in ml.model_runs instead.
"""

import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from models_ml import ClvFit, predict_clv, run_churn
from pipelines.ml.features import ENGAGEMENT_FEATURES, churn_inputs, clv_summary, feature_label


def _truth(truth_dir: Path) -> pl.DataFrame:
    people = pl.read_parquet(truth_dir / "people.parquet").filter(pl.col("erp_customer_no").is_not_null())
    return people.rename({"erp_customer_no": "customer_id"})


def true_population_fit(truth_dir: Path) -> ClvFit:
    """BG/NBD and Gamma-Gamma with the parameters the generator drew customers from (time unit: days)."""
    params = json.loads((truth_dir / "params.json").read_text())["params"]
    return ClvFit(
        bgnbd={name: float(params[name]) for name in ("r", "alpha", "a", "b")},
        gamma_gamma={"p": float(params["p_spend"]), "q": float(params["q"]), "v": float(params["gamma"])},
        bgnbd_penalizer=0.0,
        gamma_gamma_penalizer=0.0,
        customers=0,
        repeat_buyers=0,
        notes=("the generator's true population parameters",),
        bgnbd_log_likelihood=float("nan"),
        gamma_gamma_log_likelihood=float("nan"),
    )


def history_ceiling(connection: duckdb.DuckDBPyConnection, truth_dir: Path, as_of: date) -> pl.DataFrame:
    """Each customer's history as of the cutoff with the true-parameter predictions over the next 6 months."""
    summary = clv_summary(connection, as_of)
    predicted = predict_clv(true_population_fit(truth_dir), summary, 6, 0.0)
    return summary.join(predicted, on="customer_id")


def clv_against_truth(
    connection: duckdb.DuckDBPyConnection, truth_dir: Path, as_of: date, ceiling: pl.DataFrame
) -> dict[str, dict]:
    """6-month spend: mean absolute error and rank correlation with what each customer spent, for the model,
    the baseline and the oracle, over every customer who had ordered before the cutoff."""
    scores = connection.sql(
        "select customer_id, expected_spend_6m, baseline_expected_spend_6m from ml.clv_scores where as_of = $as_of",
        params={"as_of": as_of},
    ).pl()
    truth = _truth(truth_dir).rename({"expected_spend_6m": "oracle_expected_spend_6m"})
    ceiling = ceiling.select("customer_id", ceiling_expected_spend_6m="expected_spend")
    # a customer whose every order was refunded has no purchase occasion, so no history to condition on: 0
    joined = (
        scores.join(truth, on="customer_id", how="inner")
        .join(ceiling, on="customer_id", how="left")
        .with_columns(pl.col("ceiling_expected_spend_6m").fill_null(0.0))
    )
    actual = joined["actual_spend_6m"].to_numpy()
    figures = {}
    columns = {
        "model": "expected_spend_6m",
        "baseline": "baseline_expected_spend_6m",
        "history_ceiling": "ceiling_expected_spend_6m",
        "oracle": "oracle_expected_spend_6m",
    }
    for name, column in columns.items():
        predicted = joined[column].to_numpy()
        figures[name] = {
            "mae_spend_6m": float(np.abs(predicted - actual).mean()),
            "spearman_spend_6m": float(spearmanr(predicted, actual).statistic),
            "total_predicted": float(predicted.sum()),
        }
    figures["actual"] = {"customers": joined.height, "total_spend_6m": float(actual.sum())}
    return figures


CHURN_RUN_SQL = """select score_source, metrics ->> 'auc', baseline_metrics ->> 'auc' from ml.model_runs
where model_run_id = (select any_value(model_run_id) from ml.churn_scores where as_of = $as_of)"""


def churn_without_engagement(
    connection: duckdb.DuckDBPyConnection, as_of: date, window_days: int, sample: int | None = None
):
    """The churn run as the night makes it (``sample``: the setting churn_training_customers), from the same
    snapshot, without the engagement features: its ``ModelOutput`` (scores, and the out-of-time figures of the
    model and the recency baseline)."""
    inputs = churn_inputs(connection, as_of, window_days)
    return run_churn(
        inputs, window_days=window_days, exclude=ENGAGEMENT_FEATURES, feature_label=feature_label, sample=sample
    )


def churn_against_truth(
    connection: duckdb.DuckDBPyConnection,
    truth_dir: Path,
    as_of: date,
    window_days: int,
    ceiling: pl.DataFrame,
    sample: int | None = None,
) -> dict[str, dict]:
    """Out-of-time AUC of the churn scores at the cutoff, against whether each customer bought in the window
    after it, for the model, the model without engagement features, the recency baseline and the oracle (1 for a
    customer already gone, else the chance of no purchase in the window at their true rate).

    The two model runs also carry their ``out_of_time_auc``: the AUC on the run's own test cutoff (a window before
    the last one), beside the recency baseline's there, and ``score_source``: whose scores each would publish.
    """
    scores = connection.sql(
        "select customer_id, churn_probability, baseline_churn_probability from ml.churn_scores where as_of = $as_of",
        params={"as_of": as_of},
    ).pl()
    published = next(iter(connection.sql(CHURN_RUN_SQL, params={"as_of": as_of}).fetchall()), (None, None, None))
    without = churn_without_engagement(connection, as_of, window_days, sample)
    without_scores = without.tables["churn_scores"].select("customer_id", without_engagement="churn_probability")
    future = pl.read_parquet(truth_dir / "future_orders.parquet")
    end = as_of + timedelta(days=window_days)
    bought = future.filter(pl.col("ordered_at").dt.date() < end)["customer_no"].unique()
    truth = _truth(truth_dir).with_columns(
        oracle_churn_probability=pl.when(pl.col("is_alive_at_cutoff"))
        .then((-pl.col("lambda_per_day") * window_days).exp())
        .otherwise(1.0)
    )
    fit = true_population_fit(truth_dir)
    r, alpha = fit.bgnbd["r"], fit.bgnbd["alpha"]
    no_purchase_if_alive = ((alpha + pl.col("T")) / (alpha + pl.col("T") + window_days)) ** (r + pl.col("frequency"))
    ceiling = ceiling.select(
        "customer_id", ceiling_churn_probability=1 - pl.col("p_alive") * (1 - no_purchase_if_alive)
    )
    joined = (
        scores.join(truth, on="customer_id", how="inner")
        .join(ceiling, on="customer_id", how="left")
        .join(without_scores, on="customer_id", how="left")
        .with_columns(
            pl.col("ceiling_churn_probability").fill_null(1.0),
            churned=~pl.col("customer_id").is_in(bought.implode()),
        )
    )
    labels = joined["churned"].to_numpy()

    def auc(column: str) -> float | None:
        values = joined[column]
        # a run that published no churn scores has nothing to rank
        return float(roc_auc_score(labels, values.to_numpy())) if values.null_count() == 0 else None

    figures = {
        name: {"auc": auc(column)}
        for name, column in (
            ("model", "churn_probability"),
            ("without_engagement", "without_engagement"),
            ("baseline", "baseline_churn_probability"),
            ("history_ceiling", "ceiling_churn_probability"),
            ("oracle", "oracle_churn_probability"),
        )
    }
    figures["model"] |= {
        "score_source": published[0],
        "out_of_time_auc": _number(published[1]),
        "baseline_out_of_time_auc": _number(published[2]),
    }
    figures["without_engagement"] |= {
        "score_source": without.verdict.score_source,
        "out_of_time_auc": without.verdict.metrics.get("auc"),
        "baseline_out_of_time_auc": (without.verdict.baseline_metrics or {}).get("auc"),
        "features_left_out": [f for f in ENGAGEMENT_FEATURES if f in without.parameters.get("excluded_features", ())],
    }
    figures["actual"] = {"customers": joined.height, "churn_rate": float(labels.mean())}
    return figures


def _number(text: str | None) -> float | None:
    return None if text is None else float(text)


def evaluate(
    snapshot: Path, truth_dir: Path, as_of: date, window_days: int, sample: int | None = None
) -> dict[str, dict]:
    """Every model beside its baseline and the oracle, read from a published snapshot (``sample``: the setting
    churn_training_customers, for churn re-run as the night runs it)."""
    with duckdb.connect(str(snapshot), read_only=True) as connection:
        ceiling = history_ceiling(connection, truth_dir, as_of)
        return {
            "clv": clv_against_truth(connection, truth_dir, as_of, ceiling),
            "churn": churn_against_truth(connection, truth_dir, as_of, window_days, ceiling, sample),
        }
