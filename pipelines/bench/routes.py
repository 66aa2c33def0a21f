"""Two routes to the same BG/NBD and Gamma-Gamma fit on the night's warehouse: ours, and the usual lifetimes one.

``python -m pipelines.bench.routes ours|lifetimes AS_OF`` (the warehouse the settings point at, read only) prints
one JSON line: seconds, the summary's size and the fitted parameters.

- **ours** is what the lifetime-value stage does to fit the BG/NBD (its first candidate) and the Gamma-Gamma: the
  SQL summary at the calibration cutoff (``pipelines.ml.features.clv_summary``) and ``models_ml.fit_clv`` with
  ``purchase_model="BG/NBD"`` (one weighted row per distinct history).
- **lifetimes** is the route of lifetimes' documentation on the same transactions: a pandas frame of (customer,
  order date, net revenue) from ``marts.fct_orders`` before the same cutoff, without the days whose net value is
  not positive (the SQL summary counts only days with a positive net value as purchases),
  ``lifetimes.utils.summary_data_from_transaction_data``, then ``BetaGeoFitter().fit`` on every customer and
  ``GammaGammaFitter().fit`` on the repeat buyers with a positive mean spend.

The calibration cutoff is the stage's: ``clv_holdout_months`` (settings) before the as-of date
(``models_ml.calibration_cutoff``).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date

import numpy as np
import pandas as pd

TRANSACTIONS_SQL = """
select customer_id, order_date, net_revenue::double as revenue
from marts.fct_orders
where order_date < $cutoff
"""


def our_route(connection, as_of: date, holdout_months: int) -> dict:
    """The stage's BG/NBD and Gamma-Gamma fit at the calibration cutoff, timed: summary SQL, then the fit."""
    from models_ml import calibration_cutoff, fit_clv
    from pipelines.ml.features import clv_summary, published_clv_fit

    cutoff, _ = calibration_cutoff(as_of, holdout_months)
    started = time.perf_counter()
    summary = clv_summary(connection, cutoff)
    summarised = time.perf_counter()
    fit = fit_clv(summary, purchase_model="BG/NBD")
    ended = time.perf_counter()
    published = published_clv_fit(connection, as_of)
    return {
        "route": "ours",
        "cutoff": cutoff.isoformat(),
        "seconds": ended - started,
        "summary_seconds": summarised - started,
        "fit_seconds": ended - summarised,
        "customers": summary.height,
        "total_frequency": int(summary["frequency"].sum()),
        "repeat_buyers": fit.repeat_buyers,
        "bgnbd": fit.bgnbd,
        "gamma_gamma": fit.gamma_gamma,
        "method": {"bgnbd": fit.purchase_method, "gamma_gamma": fit.spend_method},
        "night_published": published.purchase_model if published else "the baseline",
        "errors": [],
    }


def pandas_summary(transactions: pd.DataFrame, cutoff: date) -> pd.DataFrame:
    """What ``summary_data_from_transaction_data`` computes with ``freq="D"``, in plain pandas: per customer, the
    days bought after the first (frequency), days from the first to the last (recency), days from the first to
    ``cutoff`` (T), and the mean value of the days after the first (monetary_value, 0 without any)."""
    days = transactions.assign(order_date=pd.to_datetime(transactions["order_date"]).dt.normalize())
    days = days.groupby(["customer_id", "order_date"], as_index=False)["revenue"].sum()
    days = days.sort_values(["customer_id", "order_date"])
    customers = days.groupby("customer_id").agg(
        first=("order_date", "min"),
        last=("order_date", "max"),
        count=("order_date", "size"),
        total=("revenue", "sum"),
        first_value=("revenue", "first"),
    )
    frequency = customers["count"] - 1
    repeat_total = customers["total"] - customers["first_value"]
    return pd.DataFrame(
        {
            "frequency": frequency.astype(float),
            "recency": (customers["last"] - customers["first"]).dt.days.astype(float),
            "T": (pd.Timestamp(cutoff) - customers["first"]).dt.days.astype(float),
            "monetary_value": (repeat_total / frequency.where(frequency > 0)).fillna(0.0),
        }
    )


def route_transactions(connection, cutoff: date) -> pd.DataFrame:
    """The orders before ``cutoff`` (customer, order date, net revenue), without the days whose net value is not
    positive: the purchase days the SQL summary counts."""
    transactions = connection.sql(TRANSACTIONS_SQL, params={"cutoff": cutoff}).df()
    day_value = transactions.groupby(["customer_id", "order_date"])["revenue"].transform("sum")
    return transactions[day_value > 0]


def lifetimes_route(connection, as_of: date, holdout_months: int) -> dict:
    """The usual lifetimes route on the same transactions, timed: frame, summary, BG/NBD fit, Gamma-Gamma fit."""
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    from models_ml import calibration_cutoff

    cutoff, _ = calibration_cutoff(as_of, holdout_months)
    errors = []
    started = time.perf_counter()
    transactions = route_transactions(connection, cutoff)
    loaded = time.perf_counter()
    summarised_by = "lifetimes.utils.summary_data_from_transaction_data"
    try:
        summary = summary_data_from_transaction_data(
            transactions, "customer_id", "order_date", monetary_value_col="revenue", observation_period_end=cutoff
        )
    except Exception as error:  # lifetimes 0.11.3 predates pandas 3: say how it failed and do what it does
        summarised_by = f"pandas groupby (summary_data_from_transaction_data failed on pandas {pd.__version__})"
        errors.append(f"summary_data_from_transaction_data: {type(error).__name__}: {error}")
        summary = pandas_summary(transactions, cutoff)
    summarised = time.perf_counter()
    bgnbd, gamma_gamma = {}, {}
    try:
        fitter = BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
        bgnbd = {name: float(fitter.params_[name]) for name in ("r", "alpha", "a", "b")}
    except Exception as error:  # ConvergenceError above all: the finding is that it failed, and how
        errors.append(f"BetaGeoFitter.fit: {type(error).__name__}: {str(error).strip().splitlines()[0]}")
    repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    try:
        fitter = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
        gamma_gamma = {name: float(fitter.params_[name]) for name in ("p", "q", "v")}
    except Exception as error:
        errors.append(f"GammaGammaFitter.fit: {type(error).__name__}: {str(error).strip().splitlines()[0]}")
    ended = time.perf_counter()
    return {
        "route": "lifetimes",
        "cutoff": cutoff.isoformat(),
        "seconds": ended - started,
        "frame_seconds": loaded - started,
        "summary_seconds": summarised - loaded,
        "fit_seconds": ended - summarised,
        "summarised_by": summarised_by,
        "transactions": len(transactions),
        "customers": len(summary),
        "total_frequency": int(np.asarray(summary["frequency"]).sum()),
        "repeat_buyers": len(repeat),
        "bgnbd": bgnbd,
        "gamma_gamma": gamma_gamma,
        "errors": errors,
    }


ROUTES = {"ours": our_route, "lifetimes": lifetimes_route}


def main() -> None:
    from pipelines.resources import Warehouse
    from pipelines.settings import load_settings

    route, as_of = ROUTES[sys.argv[1]], date.fromisoformat(sys.argv[2])
    settings = load_settings()
    with Warehouse.from_settings(settings).connect(read_only=True) as connection:
        result = route(connection, as_of, settings.clv_holdout_months)
    print(json.dumps({**result, "holdout_months": settings.clv_holdout_months}))


if __name__ == "__main__":
    main()
