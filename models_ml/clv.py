"""Customer lifetime value: BG/NBD purchase counts, Gamma-Gamma spend, discounted CLV and a run-rate baseline.

The purchase model is the BG/NBD of Fader, Hardie & Lee (2005a), "Counting your customers the easy way: an
alternative to the Pareto/NBD model", *Marketing Science* 24(2), 275-284: while alive a customer buys as a Poisson
process with rate lambda ~ Gamma(r, alpha), and after each repeat purchase drops out with probability
p ~ Beta(a, b). The spend model is the Gamma-Gamma of Fader, Hardie & Lee (2005b), "RFM and CLV: using iso-value
curves for customer base analysis", *Journal of Marketing Research* 42(4), 415-430, as set out in Hardie's note 025
(brucehardie.com/notes/025): a customer's purchase values are Gamma(p, nu) with nu ~ Gamma(q, v), so the expected
spend per purchase given x repeat purchases of mean m is the weighted average (5) of m and the population mean
p v / (q - 1). Both are fitted by maximum likelihood with ``lifetimes`` 0.11.3.

The summary contract, one row per customer, in the time unit of the caller (days in the pipeline):

- ``frequency``: repeat purchase occasions, i.e. purchase days after the first, counting only days whose net value
  is positive.
- ``recency``: time from the first to the last purchase occasion (0 when frequency is 0).
- ``T``: time from the first purchase to the cutoff.
- ``monetary_value``: mean net value of the repeat purchase occasions; null, zero or negative is allowed (returns,
  zero-value orders) and such customers get the population mean spend.
- ``average_order_value`` (optional, read by the baseline only): mean net value over all purchase occasions,
  the first included.

``fit_clv`` and ``predict_purchases`` work in any time unit; ``predict_clv`` and ``baseline_clv`` count months as
365.25 / 12 days, so they expect days.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import ConvergenceError
from scipy.stats import spearmanr

__all__ = [
    "BASELINE_MINIMUM_AGE_DAYS",
    "DAYS_PER_MONTH",
    "DEFAULT_PENALIZERS",
    "SUMMARY_COLUMNS",
    "ClvFit",
    "ClvFitError",
    "baseline_clv",
    "baseline_purchases",
    "evaluate_holdout",
    "fit_clv",
    "frequency_recency_matrix",
    "predict_clv",
    "predict_purchases",
]

SUMMARY_COLUMNS = ("customer_id", "frequency", "recency", "T", "monetary_value")
PURCHASE_COLUMNS = ("customer_id", "frequency", "recency", "T")
DEFAULT_PENALIZERS = (0.0, 0.001, 0.01, 0.1)
DAYS_PER_MONTH = 365.25 / 12
# A customer who first bought yesterday has not shown a rate yet: the baseline spreads their purchases over at least
# a month, so one purchase projects to about one a month, not one a day.
BASELINE_MINIMUM_AGE_DAYS = 30.0
# The default frequency axis of frequency_recency_matrix covers the 99th percentile of repeat purchases, capped.
_MATRIX_FREQUENCY_QUANTILE = 0.99
_MATRIX_MAX_DEFAULT_FREQUENCY = 100
_BGNBD_PARAMETERS = ("r", "alpha", "a", "b")
_GAMMA_GAMMA_PARAMETERS = ("p", "q", "v")
# What lifetimes raises when a fit goes wrong: ConvergenceError and LinAlgError are ValueErrors; overflow and
# underflow surface as ArithmeticError or RuntimeError.
_FIT_ERRORS = (ValueError, ArithmeticError, RuntimeError)


class ClvFitError(ValueError):
    """Neither the plain nor any penalised fit of a CLV model gave usable parameters; use the baseline instead."""


@dataclass(frozen=True)
class ClvFit:
    """Fitted BG/NBD and Gamma-Gamma parameters, and what it took to fit them.

    Attributes
    ----------
    bgnbd
        ``r``, ``alpha`` (in the summary's time unit), ``a``, ``b``.
    gamma_gamma
        ``p``, ``q``, ``v`` (``v`` in the currency of ``monetary_value``).
    bgnbd_penalizer, gamma_gamma_penalizer
        The L2 penalty of the fit that was kept; 0.0 when the plain maximum-likelihood fit was usable.
    customers
        Rows the BG/NBD was fitted on.
    repeat_buyers
        Rows the Gamma-Gamma was fitted on: frequency > 0 and monetary_value > 0.
    notes
        Plain-words report of what happened: fallbacks, customers left out of the spend model, caveats.
    bgnbd_log_likelihood, gamma_gamma_log_likelihood
        Log-likelihood of the data at the kept parameters, without the penalty term.
    """

    bgnbd: dict[str, float]
    gamma_gamma: dict[str, float]
    bgnbd_penalizer: float
    gamma_gamma_penalizer: float
    customers: int
    repeat_buyers: int
    notes: tuple[str, ...]
    bgnbd_log_likelihood: float
    gamma_gamma_log_likelihood: float

    @property
    def is_penalised(self) -> bool:
        """Whether either model needed a penalty to give usable parameters."""
        return self.bgnbd_penalizer > 0 or self.gamma_gamma_penalizer > 0

    @property
    def population_mean_spend(self) -> float:
        """Mean spend per purchase in the population, p v / (q - 1) (Hardie note 025)."""
        return _population_mean_spend(self.gamma_gamma)

    def as_dict(self) -> dict:
        """JSON-able form, for ``ml.model_runs.parameters``; ``ClvFit.from_dict`` reads it back."""
        return {
            "bgnbd": dict(self.bgnbd),
            "gamma_gamma": dict(self.gamma_gamma),
            "bgnbd_penalizer": self.bgnbd_penalizer,
            "gamma_gamma_penalizer": self.gamma_gamma_penalizer,
            "customers": self.customers,
            "repeat_buyers": self.repeat_buyers,
            "notes": list(self.notes),
            "bgnbd_log_likelihood": self.bgnbd_log_likelihood,
            "gamma_gamma_log_likelihood": self.gamma_gamma_log_likelihood,
            "is_penalised": self.is_penalised,
        }

    @classmethod
    def from_dict(cls, parameters: dict) -> ClvFit:
        """Rebuild a fit from ``as_dict`` output, e.g. to score again from a stored model run."""
        return cls(
            bgnbd={name: float(parameters["bgnbd"][name]) for name in _BGNBD_PARAMETERS},
            gamma_gamma={name: float(parameters["gamma_gamma"][name]) for name in _GAMMA_GAMMA_PARAMETERS},
            bgnbd_penalizer=float(parameters["bgnbd_penalizer"]),
            gamma_gamma_penalizer=float(parameters["gamma_gamma_penalizer"]),
            customers=int(parameters["customers"]),
            repeat_buyers=int(parameters["repeat_buyers"]),
            notes=tuple(parameters["notes"]),
            bgnbd_log_likelihood=float(parameters["bgnbd_log_likelihood"]),
            gamma_gamma_log_likelihood=float(parameters["gamma_gamma_log_likelihood"]),
        )


def _validate(summary: pl.DataFrame, columns: Sequence[str], caller: str) -> None:
    missing = [column for column in columns if column not in summary.columns]
    if missing:
        raise ValueError(f"{caller}: summary lacks column(s) {', '.join(missing)}; needs {', '.join(columns)}")
    if summary["customer_id"].is_duplicated().any():
        duplicated = summary.filter(pl.col("customer_id").is_duplicated())["customer_id"].head(3).to_list()
        raise ValueError(f"{caller}: customer_id must be unique; duplicated: {duplicated}")
    for column in columns:
        if column == "customer_id":
            continue
        if not summary.schema[column].is_numeric():
            raise ValueError(f"{caller}: {column} must be numeric, not {summary.schema[column]}")
        if column == "monetary_value":
            continue
        values = summary[column].cast(pl.Float64)
        if values.null_count():
            raise ValueError(f"{caller}: {column} has {values.null_count()} null(s)")
        if not values.is_finite().all() or (values < 0).any():
            raise ValueError(f"{caller}: {column} must be finite and >= 0")
    if "frequency" in columns and (summary["frequency"].cast(pl.Float64) % 1 != 0).any():
        raise ValueError(f"{caller}: frequency must be whole purchase occasions")
    if "recency" in columns:
        if summary.filter(pl.col("recency") > pl.col("T")).height:
            raise ValueError(f"{caller}: recency exceeds T for some customers; recency is measured within T")
        if summary.filter((pl.col("frequency") == 0) & (pl.col("recency") != 0)).height:
            raise ValueError(f"{caller}: recency must be 0 where frequency is 0")


def _column(summary: pl.DataFrame, column: str) -> np.ndarray:
    return summary[column].cast(pl.Float64).to_numpy().astype(float)


def _bgnbd_fitter(params: dict[str, float]) -> BetaGeoFitter:
    """A BetaGeoFitter that predicts from stored parameters, as lifetimes' own fit leaves it (``params_``)."""
    fitter = BetaGeoFitter()
    fitter.params_ = pd.Series([params[name] for name in _BGNBD_PARAMETERS], index=list(_BGNBD_PARAMETERS))
    return fitter


def _gamma_gamma_fitter(params: dict[str, float]) -> GammaGammaFitter:
    fitter = GammaGammaFitter()
    fitter.params_ = pd.Series([params[name] for name in _GAMMA_GAMMA_PARAMETERS], index=list(_GAMMA_GAMMA_PARAMETERS))
    return fitter


def _population_mean_spend(params: dict[str, float]) -> float:
    return params["p"] * params["v"] / (params["q"] - 1)


def _distinct_rows(**columns: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Identical histories collapsed to one row with a count, which lifetimes takes as ``weights``."""
    grouped = pl.DataFrame(columns).group_by(list(columns)).len().sort(list(columns))
    return {name: grouped[name].to_numpy() for name in columns}, grouped["len"].to_numpy()


def _optimizer_says(printed: str) -> str:
    """lifetimes prints scipy's result when it gives up; its ``message`` line says why."""
    lines = [line.split("message:", 1)[1].strip() for line in printed.splitlines() if "message:" in line]
    return f"did not converge ({lines[0]})" if lines else "did not converge"


class _AttemptFailed(Exception):
    """One fit attempt failed; the message says why in plain words."""


def _run_quietly(fit: Callable[[], object]) -> object:
    """Run a lifetimes fit without its printing and warnings, turning its errors into ``_AttemptFailed``."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            return fit()
        except ConvergenceError as error:
            raise _AttemptFailed(_optimizer_says(printed.getvalue())) from error
        except _FIT_ERRORS as error:
            raise _AttemptFailed(f"failed ({type(error).__name__}: {str(error).strip()})") from error


def _unusable_parameters(params: dict[str, float], log_likelihood: float) -> str | None:
    for name, value in params.items():
        if not math.isfinite(value) or value <= 0:
            return f"gave unusable parameter {name} = {value:.4g}"
    if not math.isfinite(log_likelihood):
        return "gave a non-finite log-likelihood"
    return None


def _try_bgnbd(penalizer: float, frequency: np.ndarray, recency: np.ndarray, age: np.ndarray, weights: np.ndarray):
    fitter = _run_quietly(lambda: BetaGeoFitter(penalizer_coef=penalizer).fit(frequency, recency, age, weights=weights))
    params = {name: float(fitter.params_[name]) for name in _BGNBD_PARAMETERS}
    log_likelihood = _bgnbd_log_likelihood(params, frequency, recency, age, weights)
    problem = _unusable_parameters(params, log_likelihood)
    if problem is None:
        # A fit can be finite yet sit on a pole of the hypergeometric terms (a + b -> 1, a -> 0): check that it
        # predicts, for the customers it was fitted on and for a new customer.
        with np.errstate(all="ignore"):
            fitted = _bgnbd_fitter(params)
            expected = np.append(
                fitted.conditional_expected_number_of_purchases_up_to_time(age.max(), frequency, recency, age),
                fitted.expected_number_of_purchases_up_to_time(age.max()),
            )
            alive = fitted.conditional_probability_alive(frequency, recency, age)
        if not (np.isfinite(expected).all() and (expected >= 0).all() and np.isfinite(alive).all()):
            problem = f"gave parameters that cannot predict ({_describe(params)})"
    return params, log_likelihood, problem


def _bgnbd_log_likelihood(params, frequency, recency, age, weights) -> float:
    """Log-likelihood (FHL 2005a) summed over customers, without penalty, in the caller's time unit."""
    log_params = np.log([params[name] for name in _BGNBD_PARAMETERS])
    with np.errstate(all="ignore"):
        mean_negative = BetaGeoFitter._negative_log_likelihood(log_params, frequency, recency, age, weights, 0.0)
    return float(-mean_negative * weights.sum())


def _try_gamma_gamma(penalizer: float, frequency: np.ndarray, spend: np.ndarray, weights: np.ndarray):
    # Spend is fitted in units of its mean, as lifetimes scales time for BG/NBD, so that a penalizer means the same
    # whatever the currency; the maximum-likelihood estimate itself does not depend on the unit (v scales with it).
    scale = float(np.average(spend, weights=weights))
    fitter = _run_quietly(
        lambda: GammaGammaFitter(penalizer_coef=penalizer).fit(frequency, spend / scale, weights=weights)
    )
    params = {name: float(fitter.params_[name]) for name in _GAMMA_GAMMA_PARAMETERS}
    params["v"] *= scale
    log_likelihood = _gamma_gamma_log_likelihood(params, frequency, spend, weights)
    problem = _unusable_parameters(params, log_likelihood)
    if problem is None and params["q"] <= 1:
        problem = f"gave q = {params['q']:.3g} <= 1, for which the population mean spend p v / (q - 1) is undefined"
    return params, log_likelihood, problem


def _gamma_gamma_log_likelihood(params, frequency, spend, weights) -> float:
    """Log-likelihood of the mean repeat spend (Hardie note 025, eq. 1a) summed over customers, without penalty."""
    log_params = np.log([params[name] for name in _GAMMA_GAMMA_PARAMETERS])
    with np.errstate(all="ignore"):
        mean_negative = GammaGammaFitter._negative_log_likelihood(log_params, frequency, spend, weights, 0.0)
    return float(-mean_negative * weights.sum())


def _describe(params: dict[str, float]) -> str:
    return ", ".join(f"{name} = {value:.4g}" for name, value in params.items())


def _first_usable_fit(model: str, attempt: Callable, penalizers: Sequence[float]):
    """Fit with each penalizer in turn and keep the first usable result; raise ClvFitError if none is."""
    failures: list[str] = []
    for penalizer in penalizers:
        try:
            params, log_likelihood, problem = attempt(penalizer)
        except _AttemptFailed as failed:
            problem = str(failed)
        if problem is None:
            notes = []
            if failures:
                tried = "; with ".join(failures)
                notes.append(f"{model} was not usable with {tried}; refitted with penalizer {penalizer:g}")
            elif penalizer > 0:
                notes.append(f"{model} fitted with penalizer {penalizer:g}, the first one asked for")
            return params, log_likelihood, penalizer, notes
        failures.append(f"no penalty, it {problem}" if penalizer == 0 else f"penalizer {penalizer:g}, it {problem}")
    raise ClvFitError(f"{model} could not be fitted: with {'; with '.join(failures)}")


def fit_clv(summary: pl.DataFrame, penalizers: Sequence[float] = DEFAULT_PENALIZERS, *, spend: bool = True) -> ClvFit:
    """Fit the BG/NBD purchase model and the Gamma-Gamma spend model to a customer summary.

    Each model is fitted by maximum likelihood with ``lifetimes`` (BG/NBD: FHL 2005a; Gamma-Gamma: Hardie note 025,
    eq. 1a), trying ``penalizers`` in order and keeping the first fit that is usable: lifetimes did not raise (e.g.
    ``ConvergenceError``), every parameter is finite and > 0, the log-likelihood is finite, the BG/NBD predicts
    finite, non-negative purchases for the customers it was fitted on and for a new customer, and the Gamma-Gamma
    has q > 1 (else the population mean spend p v / (q - 1) is undefined). Customers with identical histories are
    fitted as one weighted row, which changes nothing but the time taken.

    Parameters
    ----------
    summary
        One row per customer with ``SUMMARY_COLUMNS`` (see the module docstring); any time unit, used consistently.
    penalizers
        L2 penalties to try, in order (lifetimes' ``penalizer_coef``, on the parameters with time scaled so the
        oldest customer's age is 1 and spend scaled so its mean is 1).
    spend
        Fit the Gamma-Gamma spend model too. Without it the fit serves ``predict_purchases`` only (its
        ``gamma_gamma`` is empty), and a spend model that cannot be fitted cannot take the purchase model with it.

    Returns
    -------
    ClvFit
        Parameters, the penalties used, counts and notes. The BG/NBD is fitted on every row; the Gamma-Gamma on
        rows with frequency > 0 and monetary_value > 0. Others get the population mean spend when predicting.

    Raises
    ------
    ClvFitError
        When every penalizer fails for either model, naming the model and why; fall back to ``baseline_clv``.
    ValueError
        When the summary breaks its contract, naming the column.
    """
    _validate(summary, SUMMARY_COLUMNS, "fit_clv")
    if summary.is_empty():
        raise ValueError("fit_clv: the summary has no customers")
    if not penalizers or any(not math.isfinite(penalizer) or penalizer < 0 for penalizer in penalizers):
        raise ValueError(f"fit_clv: penalizers must be a non-empty sequence of finite values >= 0, not {penalizers}")

    histories, weights = _distinct_rows(
        frequency=_column(summary, "frequency"), recency=_column(summary, "recency"), age=_column(summary, "T")
    )
    bgnbd, bgnbd_log_likelihood, bgnbd_penalizer, notes = _first_usable_fit(
        "BG/NBD", lambda penalizer: _try_bgnbd(penalizer, weights=weights, **histories), penalizers
    )
    if not spend:
        return ClvFit(
            bgnbd=bgnbd,
            gamma_gamma={},
            bgnbd_penalizer=float(bgnbd_penalizer),
            gamma_gamma_penalizer=0.0,
            customers=summary.height,
            repeat_buyers=0,
            notes=tuple(notes),
            bgnbd_log_likelihood=bgnbd_log_likelihood,
            gamma_gamma_log_likelihood=math.nan,
        )

    repeat = summary.filter((pl.col("frequency") > 0) & (pl.col("monetary_value") > 0))
    if repeat.is_empty():
        raise ClvFitError("Gamma-Gamma could not be fitted: no customer has a repeat purchase with positive value")
    spends, spend_weights = _distinct_rows(
        frequency=_column(repeat, "frequency"), spend=_column(repeat, "monetary_value")
    )
    gamma_gamma, gamma_gamma_log_likelihood, gamma_gamma_penalizer, spend_notes = _first_usable_fit(
        "Gamma-Gamma", lambda penalizer: _try_gamma_gamma(penalizer, weights=spend_weights, **spends), penalizers
    )
    notes += spend_notes
    notes += _spend_model_notes(summary, repeat, gamma_gamma)
    return ClvFit(
        bgnbd=bgnbd,
        gamma_gamma=gamma_gamma,
        bgnbd_penalizer=float(bgnbd_penalizer),
        gamma_gamma_penalizer=float(gamma_gamma_penalizer),
        customers=summary.height,
        repeat_buyers=repeat.height,
        notes=tuple(notes),
        bgnbd_log_likelihood=bgnbd_log_likelihood,
        gamma_gamma_log_likelihood=gamma_gamma_log_likelihood,
    )


def _spend_model_notes(summary: pl.DataFrame, repeat: pl.DataFrame, gamma_gamma: dict[str, float]) -> list[str]:
    notes = []
    left_out = summary.height - repeat.height
    if left_out:
        one_time = summary.filter(pl.col("frequency") == 0).height
        no_value = left_out - one_time
        notes.append(
            f"{left_out:,} of {summary.height:,} customers left out of the spend model for having no positive repeat"
            f" spend ({one_time:,} bought only once, {no_value:,} had repeat purchases of zero, negative or missing"
            f" net value); they get the population mean spend of {_population_mean_spend(gamma_gamma):.2f}"
            " per purchase"
        )
    if repeat.height > 2 and repeat["frequency"].n_unique() > 1 and repeat["monetary_value"].n_unique() > 1:
        correlation = repeat.select(pl.corr("frequency", "monetary_value")).item()
        notes.append(
            "Gamma-Gamma assumes spend per purchase is independent of how often a customer buys; among repeat"
            f" buyers the correlation of frequency and mean spend is {correlation:.2f}"
        )
    return notes


def _discounted_purchases(
    cumulative_purchases: Callable[[float], np.ndarray], horizon_months: int, annual_discount_rate: float
) -> np.ndarray:
    """Sum over months m = 1..H of (E[N(t_m)] - E[N(t_{m-1})]) / (1 + rate) ** (m / 12), t_m = m months in days.

    Each month's expected purchases are discounted from the end of that month, as in lifetimes'
    ``customer_lifetime_value``; the loop is over months, each step vectorised over customers.
    """
    previous = np.zeros_like(cumulative_purchases(0.0))
    total = np.zeros_like(previous)
    for month in range(1, horizon_months + 1):
        current = cumulative_purchases(month * DAYS_PER_MONTH)
        total += (current - previous) / (1 + annual_discount_rate) ** (month / 12)
        previous = current
    return total


def _validate_horizon(caller: str, horizon_months: int, annual_discount_rate: float) -> None:
    if isinstance(horizon_months, bool) or not isinstance(horizon_months, int) or horizon_months < 1:
        raise ValueError(f"{caller}: horizon_months must be a whole number of months >= 1, not {horizon_months!r}")
    if not math.isfinite(annual_discount_rate) or annual_discount_rate < 0:
        raise ValueError(f"{caller}: annual_discount_rate must be >= 0 (0.1 for 10%), not {annual_discount_rate!r}")


def _clv_frame(
    summary: pl.DataFrame, p_alive, expected_purchases, spend_per_purchase, discounted_purchases
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": summary["customer_id"],
            "p_alive": np.asarray(p_alive, dtype=float),
            "expected_purchases": expected_purchases,
            "expected_spend_per_purchase": spend_per_purchase,
            "expected_spend": expected_purchases * spend_per_purchase,
            "clv": discounted_purchases * spend_per_purchase,
        }
    )


def predict_clv(fit: ClvFit, summary: pl.DataFrame, horizon_months: int, annual_discount_rate: float) -> pl.DataFrame:
    """Expected purchases, spend and discounted lifetime value of each customer over a horizon, from a fit.

    Expected purchases are the BG/NBD conditional expectation E[N(t) | x, t_x, T] (FHL 2005a, eq. 10) over
    t = ``horizon_months`` * 365.25 / 12 days; spend per purchase is the Gamma-Gamma conditional expectation
    (Hardie note 025, eq. 5) for repeat buyers with positive spend and the population mean p v / (q - 1) for
    everyone else. CLV discounts each month's expected purchases from the end of the month:
    ``clv = spend * sum_m (E[N(t_m)] - E[N(t_{m-1})]) / (1 + annual_discount_rate) ** (m / 12)``.

    Parameters
    ----------
    fit
        From ``fit_clv``, on a summary in days.
    summary
        One row per customer with ``SUMMARY_COLUMNS``, in days.
    horizon_months
        Months to look ahead, >= 1.
    annual_discount_rate
        E.g. 0.1 for 10% a year; 0 gives ``clv == expected_spend``.

    Returns
    -------
    polars.DataFrame
        ``customer_id``, ``p_alive``, ``expected_purchases`` and ``expected_spend`` (over the horizon,
        undiscounted), ``expected_spend_per_purchase``, ``clv`` (discounted), one row per customer in input order.
    """
    _validate(summary, SUMMARY_COLUMNS, "predict_clv")
    _validate_horizon("predict_clv", horizon_months, annual_discount_rate)
    frequency, recency, age = (_column(summary, name) for name in ("frequency", "recency", "T"))
    purchases = _bgnbd_fitter(fit.bgnbd)

    def cumulative(t: float) -> np.ndarray:
        return np.asarray(
            purchases.conditional_expected_number_of_purchases_up_to_time(t, frequency, recency, age), dtype=float
        )

    spend = _spend_per_purchase(fit, frequency, _column(summary, "monetary_value"))
    return _clv_frame(
        summary,
        p_alive=purchases.conditional_probability_alive(frequency, recency, age),
        expected_purchases=cumulative(horizon_months * DAYS_PER_MONTH),
        spend_per_purchase=spend,
        discounted_purchases=_discounted_purchases(cumulative, horizon_months, annual_discount_rate),
    )


def _spend_per_purchase(fit: ClvFit, frequency: np.ndarray, monetary_value: np.ndarray) -> np.ndarray:
    if not fit.gamma_gamma:
        raise ValueError("predict_clv: the fit has no spend model (it was fitted with spend=False)")
    modelled = (frequency > 0) & (np.nan_to_num(monetary_value, nan=0.0) > 0)
    spend = np.full(frequency.shape, fit.population_mean_spend)
    spend[modelled] = _gamma_gamma_fitter(fit.gamma_gamma).conditional_expected_average_profit(
        frequency[modelled], monetary_value[modelled]
    )
    return spend


def _baseline_rate(summary: pl.DataFrame, minimum_age_days: float) -> np.ndarray:
    if not math.isfinite(minimum_age_days) or minimum_age_days <= 0:
        raise ValueError(f"minimum_age_days must be > 0, not {minimum_age_days!r}")
    return (_column(summary, "frequency") + 1) / np.maximum(_column(summary, "T"), minimum_age_days)


def baseline_clv(
    summary: pl.DataFrame,
    horizon_months: int,
    annual_discount_rate: float,
    *,
    minimum_age_days: float = BASELINE_MINIMUM_AGE_DAYS,
) -> pl.DataFrame:
    """The analyst's run-rate CLV: each customer keeps buying at their historical rate and average order value.

    Rate = purchase occasions so far (frequency + 1, the first included) / days since the first purchase, with the
    age floored at ``minimum_age_days`` so that a customer who bought yesterday is not projected at one purchase a
    day. Nobody is assumed to have lapsed (``p_alive`` = 1). Spend per purchase is, in order of preference, the
    customer's ``average_order_value`` (optional column: mean net value over all purchase occasions), their
    ``monetary_value`` if they bought again, or the population mean of those figures; it is floored at 0, since a
    customer whose returns outweigh their orders is projected to add nothing rather than to cost money. CLV is
    discounted month by month exactly as in ``predict_clv``, so the two are comparable.

    Parameters
    ----------
    summary
        One row per customer with ``SUMMARY_COLUMNS`` (``recency`` is not used), and optionally
        ``average_order_value``, in days.
    horizon_months, annual_discount_rate
        As for ``predict_clv``.
    minimum_age_days
        Floor on the age a rate is measured over.

    Returns
    -------
    polars.DataFrame
        The columns of ``predict_clv``.
    """
    _validate(summary, ("customer_id", "frequency", "T", "monetary_value"), "baseline_clv")
    _validate_horizon("baseline_clv", horizon_months, annual_discount_rate)
    rate = _baseline_rate(summary, minimum_age_days)
    spend = _historical_spend(summary)
    return _clv_frame(
        summary,
        p_alive=np.ones(summary.height),
        expected_purchases=rate * horizon_months * DAYS_PER_MONTH,
        spend_per_purchase=spend,
        discounted_purchases=_discounted_purchases(lambda t: rate * t, horizon_months, annual_discount_rate),
    )


def _historical_spend(summary: pl.DataFrame) -> np.ndarray:
    repeat_spend = pl.when(pl.col("frequency") > 0).then(pl.col("monetary_value").cast(pl.Float64))
    if "average_order_value" in summary.columns:
        if not summary.schema["average_order_value"].is_numeric():
            raise ValueError("baseline_clv: average_order_value must be numeric")
        own = pl.coalesce(pl.col("average_order_value").cast(pl.Float64), repeat_spend)
    else:
        own = repeat_spend
    spend = summary.select(own.alias("spend"))["spend"].fill_nan(None)
    if spend.null_count() == spend.len() and spend.len():
        raise ValueError(
            "baseline_clv: no customer has a spend figure (average_order_value, or monetary_value of a repeat"
            " buyer); add average_order_value to the summary"
        )
    return spend.fill_null(spend.mean()).clip(lower_bound=0.0).to_numpy().astype(float)


def predict_purchases(fit: ClvFit, summary: pl.DataFrame, days: float) -> pl.DataFrame:
    """Expected repeat purchases in the next ``days`` and the probability of being alive, from the BG/NBD.

    E[N(t) | x, t_x, T] is FHL 2005a, eq. 10; P(alive | x, t_x, T) is Hardie note 021 (1 for frequency 0).
    ``days`` is in the summary's time unit (weeks for the CDNOW reproduction, days in the pipeline).

    Returns
    -------
    polars.DataFrame
        ``customer_id``, ``expected_purchases``, ``p_alive``, in input order.
    """
    _validate(summary, PURCHASE_COLUMNS, "predict_purchases")
    if not math.isfinite(days) or days < 0:
        raise ValueError(f"predict_purchases: days must be >= 0, not {days!r}")
    frequency, recency, age = (_column(summary, name) for name in ("frequency", "recency", "T"))
    purchases = _bgnbd_fitter(fit.bgnbd)
    return pl.DataFrame(
        {
            "customer_id": summary["customer_id"],
            "expected_purchases": np.asarray(
                purchases.conditional_expected_number_of_purchases_up_to_time(days, frequency, recency, age),
                dtype=float,
            ),
            "p_alive": np.asarray(purchases.conditional_probability_alive(frequency, recency, age), dtype=float),
        }
    )


def baseline_purchases(
    summary: pl.DataFrame, days: float, *, minimum_age_days: float = BASELINE_MINIMUM_AGE_DAYS
) -> pl.DataFrame:
    """Purchases in the next ``days`` at each customer's historical rate, as ``baseline_clv`` defines it.

    Returns
    -------
    polars.DataFrame
        ``customer_id``, ``expected_purchases``, in input order.
    """
    _validate(summary, ("customer_id", "frequency", "T"), "baseline_purchases")
    if not math.isfinite(days) or days < 0:
        raise ValueError(f"baseline_purchases: days must be >= 0, not {days!r}")
    return pl.DataFrame(
        {
            "customer_id": summary["customer_id"],
            "expected_purchases": _baseline_rate(summary, minimum_age_days) * days,
        }
    )


def _spearman(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Spearman's rank correlation; NaN when either side is constant or there are fewer than two customers."""
    if len(predicted) < 2 or np.ptp(predicted) == 0 or np.ptp(actual) == 0:
        return math.nan
    return float(spearmanr(predicted, actual).statistic)


def evaluate_holdout(predicted: pl.DataFrame, actual: pl.DataFrame) -> dict[str, float]:
    """Compare predictions for a holdout period with what customers then did.

    Parameters
    ----------
    predicted
        ``customer_id``, ``expected_purchases`` and optionally ``expected_spend``, one row per scored customer.
    actual
        ``customer_id``, ``purchases`` and optionally ``spend`` in the holdout period; a scored customer missing
        here made no purchases. Customers here but not in ``predicted`` are not scored and are ignored.

    Returns
    -------
    dict
        ``customers``, ``mae_purchases`` (mean absolute error per customer), ``total_predicted_purchases``,
        ``total_actual_purchases``, ``spearman_purchases`` (rank correlation, NaN if either side is constant); and,
        when both frames carry spend, ``mae_spend``, ``spearman_spend``, ``total_predicted_spend``,
        ``total_actual_spend``.
    """
    for frame, name, columns in (
        (predicted, "predicted", ("customer_id", "expected_purchases")),
        (actual, "actual", ("customer_id", "purchases")),
    ):
        missing = [column for column in columns if column not in frame.columns]
        if missing:
            raise ValueError(f"evaluate_holdout: {name} lacks column(s) {', '.join(missing)}")
        if frame["customer_id"].is_duplicated().any():
            raise ValueError(f"evaluate_holdout: customer_id must be unique in {name}")
    with_spend = "expected_spend" in predicted.columns and "spend" in actual.columns
    pairs = [("expected_purchases", "purchases", "purchases")]
    if with_spend:
        pairs.append(("expected_spend", "spend", "spend"))
    joined = predicted.select("customer_id", *(forecast for forecast, _, _ in pairs)).join(
        actual.select("customer_id", *(observed for _, observed, _ in pairs)), on="customer_id", how="left"
    )
    metrics: dict[str, float] = {"customers": joined.height}
    for forecast, observed, label in pairs:
        forecast_values = joined[forecast].cast(pl.Float64).fill_null(0.0).to_numpy()
        observed_values = joined[observed].cast(pl.Float64).fill_null(0.0).to_numpy()
        metrics[f"mae_{label}"] = float(np.mean(np.abs(forecast_values - observed_values))) if joined.height else 0.0
        metrics[f"total_predicted_{label}"] = float(forecast_values.sum())
        metrics[f"total_actual_{label}"] = float(observed_values.sum())
        metrics[f"spearman_{label}"] = _spearman(forecast_values, observed_values)
    return metrics


def _purchases_quantile(fit: ClvFit, age: float, quantile: float, cap: int) -> int:
    """Smallest n with P(N(age) <= n) >= quantile for a new customer (FHL 2005a, eq. 8), at most ``cap``."""
    model = _bgnbd_fitter(fit.bgnbd)
    cumulative = 0.0
    with np.errstate(all="ignore"):
        for n in range(cap + 1):
            cumulative += float(model.probability_of_n_purchases_up_to_time(age, n))
            if not math.isfinite(cumulative) or cumulative >= quantile:
                return max(n, 1)
    return cap


def frequency_recency_matrix(
    fit: ClvFit,
    T: float,
    days: float,
    max_frequency: int | None = None,
    max_recency: int | None = None,
    cells: int = 40,
) -> pl.DataFrame:
    """Expected purchases and P(alive) over a grid of histories, for a customer of age ``T``, as data to plot.

    The data behind lifetimes' ``plot_frequency_recency_matrix`` and ``plot_probability_alive_matrix`` (FHL 2005a,
    eq. 10; Hardie note 021): one row per (frequency, recency) with the expected repeat purchases in the next
    ``days`` and the probability the customer is still alive. With frequency 0 neither depends on recency.

    Parameters
    ----------
    fit
        From ``fit_clv``.
    T
        Age of the customer: time since their first purchase, in the fit's time unit.
    days
        Horizon of the expected purchases, in the same unit.
    max_frequency
        Largest frequency on the grid; by default the 99th percentile of the repeat purchases the fitted BG/NBD
        gives a new customer over ``T`` (FHL 2005a, eq. 8), at least 1 and at most 100.
    max_recency
        Largest recency on the grid, at most ``T`` (the default).
    cells
        Recency steps from 0 to ``max_recency``, both included.

    Returns
    -------
    polars.DataFrame
        ``frequency`` (int), ``recency``, ``expected_purchases``, ``p_alive``, sorted by frequency then recency.
    """
    if not math.isfinite(T) or T <= 0:
        raise ValueError(f"frequency_recency_matrix: T must be > 0, not {T!r}")
    if not math.isfinite(days) or days < 0:
        raise ValueError(f"frequency_recency_matrix: days must be >= 0, not {days!r}")
    if cells < 2:
        raise ValueError(f"frequency_recency_matrix: cells must be >= 2, not {cells!r}")
    if max_frequency is None:
        max_frequency = _purchases_quantile(fit, T, _MATRIX_FREQUENCY_QUANTILE, _MATRIX_MAX_DEFAULT_FREQUENCY)
    if max_frequency < 0:
        raise ValueError(f"frequency_recency_matrix: max_frequency must be >= 0, not {max_frequency!r}")
    max_recency = T if max_recency is None else max_recency
    if not 0 <= max_recency <= T:
        raise ValueError(f"frequency_recency_matrix: max_recency must be between 0 and T = {T}, not {max_recency!r}")
    frequency, recency = (
        grid.ravel() for grid in np.meshgrid(np.arange(max_frequency + 1), np.linspace(0, max_recency, cells))
    )
    order = np.lexsort((recency, frequency))
    frequency, recency = frequency[order], recency[order]
    age = np.full(frequency.shape, float(T))
    model = _bgnbd_fitter(fit.bgnbd)
    return pl.DataFrame(
        {
            "frequency": frequency.astype(np.int64),
            "recency": recency.astype(float),
            "expected_purchases": np.asarray(
                model.conditional_expected_number_of_purchases_up_to_time(days, frequency, recency, age), dtype=float
            ),
            "p_alive": np.asarray(model.conditional_probability_alive(frequency, recency, age), dtype=float),
        }
    )
