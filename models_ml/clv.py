"""Customer lifetime value: BG/NBD purchase counts, Gamma-Gamma spend, discounted CLV and a run-rate baseline.

The purchase model is the BG/NBD of Fader, Hardie & Lee (2005a), "Counting your customers the easy way: an
alternative to the Pareto/NBD model", *Marketing Science* 24(2), 275-284: while alive a customer buys as a Poisson
process with rate lambda ~ Gamma(r, alpha), and after each repeat purchase drops out with probability
p ~ Beta(a, b). Its alternative is the MBG/NBD of Batislam, Denizel & Filiztekin (2007), "Empirical validation and
comparison of models for customer base analysis", *International Journal of Research in Marketing* 24(3), 201-209:
the same parameters, but a customer may also drop out right after the first purchase, so a one-time buyer is not
assumed alive for ever. The third is the model the BG/NBD was built as an alternative to, the Pareto/NBD of
Schmittlein, Morrison & Colombo (1987), "Counting your customers: who are they and what will they do next?",
*Management Science* 33(1), 1-24, as set out in Fader & Hardie's note 009 (brucehardie.com/notes/009): while alive
a customer buys as the same Poisson process, and their lifetime is exponential with rate mu ~ Gamma(s, beta), so a
customer may lapse at any time, not only at a purchase. The spend model is the Gamma-Gamma of Fader, Hardie & Lee
(2005b), "RFM and CLV: using iso-value curves for customer base analysis", *Journal of Marketing Research* 42(4),
415-430, as set out in Hardie's note 025 (brucehardie.com/notes/025): a customer's purchase values are
Gamma(p, nu) with nu ~ Gamma(q, v), so the expected spend per purchase given x repeat purchases of mean m is the
weighted average (5) of m and the population mean p v / (q - 1).

Every model is fitted by maximum likelihood on the compressed sufficient statistics: the likelihood depends on a
customer only through (x, t_x, T) (spend: x and m), so identical histories are one row with a count (FHL 2005a,
section 5). lifetimes 0.11.3's fit is tried first, step for step (the same BFGS from the same start, on the same
likelihood; the BG/NBD, MBG/NBD and Gamma-Gamma likelihoods and their exact gradients are evaluated once per distinct
value of each statistic, models_ml/clv_likelihoods.py, instead of by autograd over every history, and the Hessian
for standard errors nothing reads is not computed); its BG/NBD, MBG/NBD and Gamma-Gamma fits raise
``ConvergenceError`` whenever scipy's BFGS stops on "precision loss", which real data with rare drop-outs provoke,
because a and b are then pinned down only through their ratio. The unpenalised Pareto/NBD is the exception:
lifetimes' Nelder-Mead needs hundreds of evaluations of a likelihood made of Gaussian hypergeometric terms (minutes
at 1M customers), so its likelihood is maximised with L-BFGS-B from lifetimes' start instead, the terms evaluated
once per distinct (x, t_x) and (x, T) pair, and this counts as giving up when it stops short of its convergence
test, unless it stopped climbing the ridge its likelihood has where every customer drops out at nearly one rate
(``_RidgeStop``; kept, with a note). The likelihood is then maximised directly (L-BFGS-B in log-parameter space
from two starts, scipy's default tolerances; exact gradients, except for the Pareto/NBD, whose hypergeometric terms
have none written out here, so its gradient is taken by central differences) and the result kept if its parameters
are usable, whatever the optimiser's convergence flag says: whether a fit is good enough to publish is decided by
its holdout result against the baseline (``models_ml.clv_holdout``), not here. Penalised fits come last, for data
whose likelihood has no maximum inside the parameter space.

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
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl
from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter, ParetoNBDFitter
from lifetimes.fitters import BaseFitter
from lifetimes.utils import ConvergenceError
from scipy.optimize import OptimizeResult, minimize
from scipy.special import gammaln, hyp2f1
from scipy.stats import spearmanr

from models_ml.clv_likelihoods import (
    bgnbd_objective,
    gamma_gamma_objective,
    mbgnbd_objective,
    purchase_likelihood_args,
    spend_likelihood_args,
)
from models_ml.validation import InsufficientDataError, validate_columns

__all__ = [
    "BASELINE_MINIMUM_AGE_DAYS",
    "DAYS_PER_MONTH",
    "DEFAULT_PENALIZERS",
    "MATRIX_SCHEMA",
    "PURCHASE_MODELS",
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
# The columns of frequency_recency_matrix, for a run that has no model to draw one from.
MATRIX_SCHEMA = {"frequency": pl.Int64, "recency": pl.Float64, "expected_purchases": pl.Float64, "p_alive": pl.Float64}
_GAMMA_GAMMA_PARAMETERS = ("p", "q", "v")
# The direct maximisation searches log-parameters in [-12, 12] (parameters from 6e-6 to 1.6e5, time scaled so the
# oldest customer's age is 1 and spend so its mean is 1), from lifetimes' own start (every parameter 0.1) and from 1.
_LOG_BOUND = 12.0
_DIRECT_STARTS = (math.log(0.1), 0.0)
# What lifetimes raises when a fit goes wrong: ConvergenceError and LinAlgError are ValueErrors; overflow and
# underflow surface as ArithmeticError or RuntimeError.
_FIT_ERRORS = (ValueError, ArithmeticError, RuntimeError)
MAXIMUM_LIKELIHOOD = "maximum likelihood (lifetimes)"
DIRECT_MAXIMUM_LIKELIHOOD = "direct maximum likelihood"
PENALISED_MAXIMUM_LIKELIHOOD = "penalised maximum likelihood (lifetimes)"


class _AttemptFailed(Exception):
    """One fit attempt failed; the message says why in plain words."""


@dataclass(frozen=True)
class _ParetoNBDHistories:
    """Distinct histories (x, t_x, T) with their counts, and the distinct (x, t_x) and (x, T) pairs they are made of.

    The Pareto/NBD's Gaussian hypergeometric terms (Fader & Hardie note 009, eqs. 19-20) each depend on one of the
    pairs only, and there are far fewer pairs than histories (at 1M customers about 25,000 of each against 635,000
    histories), so the likelihood evaluates them once a pair and gathers them into the histories.
    """

    frequency: np.ndarray
    weights: np.ndarray
    at_end: np.ndarray
    last_frequency: np.ndarray  # x of each distinct (x, t_x)
    recency: np.ndarray  # t_x of each distinct (x, t_x)
    last: np.ndarray  # index of each history's (x, t_x)
    age_frequency: np.ndarray  # x of each distinct (x, T)
    age: np.ndarray  # T of each distinct (x, T)
    aged: np.ndarray  # index of each history's (x, T)

    @classmethod
    def of(cls, frequency, recency, age, weights) -> _ParetoNBDHistories:
        frequency, recency, age = (np.asarray(values, dtype=float) for values in (frequency, recency, age))
        last_frequency, last_recency, last = _distinct_pairs(frequency, recency)
        age_frequency, age_age, aged = _distinct_pairs(frequency, age)
        return cls(
            frequency=frequency,
            weights=np.asarray(weights, dtype=float),
            at_end=_bought_at_the_end(recency, age),
            last_frequency=last_frequency,
            recency=last_recency,
            last=last,
            age_frequency=age_frequency,
            age=age_age,
            aged=aged,
        )


def _distinct_pairs(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (first, second) pairs and the index of each row's pair."""
    _, first_codes = np.unique(first, return_inverse=True)
    second_values, second_codes = np.unique(second, return_inverse=True)
    codes = first_codes.astype(np.int64) * len(second_values) + second_codes
    _, rows, inverse = np.unique(codes, return_index=True, return_inverse=True)
    return first[rows], second[rows], inverse.ravel()


def _pareto_nbd_log_likelihoods(params, histories: _ParetoNBDHistories) -> np.ndarray:
    """Each history's Pareto/NBD log-likelihood (Fader & Hardie note 009, eq. 18, as lifetimes'
    ``ParetoNBDFitter._conditional_log_likelihood`` computes it, but see ``_bought_at_the_end``)."""
    return _pareto_nbd_terms(params, histories)[1]


def _pareto_nbd_terms(params, histories: _ParetoNBDHistories) -> tuple[np.ndarray, np.ndarray]:
    """Each history's ln of the likelihood's term for a customer alive throughout (0, T], and its log-likelihood.

    ln L = A_1 + ln(exp(-(r + x) ln(alpha + T) - s ln(beta + T)) + s / (r + s + x) A_0), and A_0 (eqs. 19-20) is
    J(t_x) - J(T) with J(y) = 2F1(r + s + x, b; r + s + x + 1; |alpha - beta| / (m + y)) / (m + y)^(r + s + x),
    m = max(alpha, beta), b = r + x if alpha < beta else s + 1; J is evaluated once per distinct (x, y) pair.
    """
    r, alpha, s, beta = params
    larger, smaller = max(alpha, beta), min(alpha, beta)

    def log_j(frequency: np.ndarray, time: np.ndarray) -> np.ndarray:
        shape = r + s + frequency
        second = r + frequency if alpha < beta else s + 1.0
        z = (larger - smaller) / (larger + time)
        return np.log(hyp2f1(shape, second, shape + 1.0, z)) - shape * np.log(larger + time)

    x = histories.age_frequency
    a_1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    # per (x, T): ln of the term for a customer alive throughout, and of the factor s / (r + s + x) in front of A_0
    alive_throughout = a_1 - (r + x) * np.log(alpha + histories.age) - s * np.log(beta + histories.age)
    lapsed_factor = a_1 + np.log(s) - np.log(r + s + x)
    at_last = log_j(histories.last_frequency, histories.recency)[histories.last]
    at_age = log_j(x, histories.age)
    with np.errstate(divide="ignore", invalid="ignore"):
        # ln A_0 = ln(J(t_x) - J(T)); -inf for a customer who bought at T, surely alive
        log_a_0 = at_last + np.log1p(-np.exp(at_age[histories.aged] - at_last))
        log_likelihood = np.logaddexp(alive_throughout[histories.aged], lapsed_factor[histories.aged] + log_a_0)
    alive_throughout = alive_throughout[histories.aged]
    return alive_throughout, np.where(histories.at_end, alive_throughout, log_likelihood)


def _pareto_nbd_negative_log_likelihood(log_params, histories: _ParetoNBDHistories, penalizer: float) -> float:
    """The Pareto/NBD negative log-likelihood in log-parameters and as a mean over customers, as lifetimes' BG/NBD's
    is (lifetimes' own Pareto/NBD one takes the parameters themselves and divides by the mean weight)."""
    params = np.exp(log_params)
    log_likelihood = _pareto_nbd_log_likelihoods(params, histories)
    weights = histories.weights
    return -float((weights * log_likelihood).sum() / weights.sum()) + penalizer * float((params**2).sum())


def _pareto_nbd_likelihood_args(frequency, recency, age, weights, penalizer: float) -> tuple:
    return _ParetoNBDHistories.of(frequency, recency, age, weights), penalizer


# Central differences in log-parameters: the step balances the truncation error (step^2) against rounding in the
# mean log-likelihood (1e-16 / step); both are then about 1e-10, far below the gradient tolerance below.
_CENTRAL_DIFFERENCE_STEP = 1e-5


def _central_differences(function: Callable[..., float]) -> Callable[..., tuple[float, np.ndarray]]:
    """``function`` and its gradient by central differences, for a likelihood autograd cannot differentiate."""

    def value_and_gradient(log_params, *args) -> tuple[float, np.ndarray]:
        log_params = np.asarray(log_params, dtype=float)
        gradient = np.empty_like(log_params)
        for position in range(len(log_params)):
            step = np.zeros_like(log_params)
            step[position] = _CENTRAL_DIFFERENCE_STEP
            ahead, behind = function(log_params + step, *args), function(log_params - step, *args)
            gradient[position] = (ahead - behind) / (2 * _CENTRAL_DIFFERENCE_STEP)
        return function(log_params, *args), gradient

    return value_and_gradient


# The unpenalised Pareto/NBD fit stops when a step improves the mean log-likelihood by less than 1e-13 of itself or
# every gradient component is below 1e-9; lifetimes' Nelder-Mead stops within 1e-4 of its objective (the sum divided
# by the mean weight), about 1e-10 of it at 1M customers.
_PARETO_NBD_OPTIONS = {"ftol": 1e-13, "gtol": 1e-9, "maxiter": 1000}
# Where every customer drops out at nearly the same rate, the Pareto/NBD's likelihood has no maximum: it keeps
# rising, ever more slowly, as s and beta grow together (s / beta, the mean dropout rate, fixed), toward the model
# with one dropout rate for all, and each evaluation costs more as s grows (scipy's hyp2f1 slows with its
# parameters). Its fits stop climbing that ridge once the last _RIDGE_ITERATIONS iterations, having raised s and
# beta, have together raised the log-likelihood summed over the customers by less than _RIDGE_NATS: a likelihood
# ratio of 1.01, where a likelihood-ratio test needs 1.92 (5%, one degree of freedom) to tell two fits apart.
_RIDGE_ITERATIONS = 10
_RIDGE_NATS = 0.01


class _RidgeStop:
    """An L-BFGS-B callback for the Pareto/NBD fit in log-parameters (r, alpha, s, beta) whose objective is the mean
    negative log-likelihood over ``customers``: it stops the fit (``StopIteration``) on the s, beta ridge as
    ``_RIDGE_NATS`` says, and remembers that it did (``stopped``); and it stops a fit that has lost its way
    (``lost``): an iterate worse than one before it, which L-BFGS-B accepts only when its line search met
    likelihoods that are not finite (scipy's hyp2f1 far up the ridge)."""

    def __init__(self, customers: float) -> None:
        self.customers = customers
        self.path: deque[tuple[float, np.ndarray]] = deque(maxlen=_RIDGE_ITERATIONS + 1)
        self.lowest = math.inf
        self.stopped = False
        self.lost = False

    def __call__(self, intermediate_result: OptimizeResult) -> None:
        value = float(intermediate_result.fun)
        self.path.append((value, np.array(intermediate_result.x)))
        if not value <= self.lowest:
            self.lost = True
            raise StopIteration
        self.lowest = value
        if len(self.path) <= _RIDGE_ITERATIONS:
            return
        (before, at_before), (now, at_now) = self.path[0], self.path[-1]
        climbing = at_now[2] > at_before[2] and at_now[3] > at_before[3]
        if climbing and (before - now) * self.customers < _RIDGE_NATS:
            self.stopped = True
            raise StopIteration

    def caveat(self, params: dict[str, float]) -> str:
        return (
            f"Pareto/NBD: the likelihood was still rising, by less than {_RIDGE_NATS:g} in {_RIDGE_ITERATIONS}"
            f" iterations, as s and beta grew together (s = {params['s']:.4g}): customers drop out at nearly one"
            " rate, which the model reaches only as s and beta grow without bound; the fit stopped there"
        )


def _fit_pareto_nbd(penalizer: float, frequency, recency, age, weights) -> ParetoNBDFitter:
    """The Pareto/NBD maximum-likelihood fit: lifetimes' likelihood, maximised with L-BFGS-B in log-parameters from
    lifetimes' start (every parameter 1, time scaled so the oldest customer's age is 1), its gradient by central
    differences on the likelihood of the distinct histories (``_ParetoNBDHistories``). lifetimes' own fit
    (Nelder-Mead, hundreds of evaluations more) finds the same maximum to four significant figures where the
    likelihood has a clear one (CDNOW, the 1M bench), and where it is a flat ridge stops lower or elsewhere on it at
    the same height; it is kept for the penalised fits. Stopping short of the convergence test, or at the edge of
    the search space, is giving up, as ``ConvergenceError`` is for the others."""
    if penalizer > 0:
        return _fit_pareto_nbd_by_nelder_mead(penalizer, frequency, recency, age, weights)
    scale = 1.0 / age.max()
    args = _pareto_nbd_likelihood_args(frequency, recency * scale, age * scale, weights, 0.0)
    ridge = _RidgeStop(float(np.sum(weights)))
    result = minimize(
        _central_differences(_pareto_nbd_negative_log_likelihood),
        np.zeros(4),
        jac=True,
        args=args,
        method="L-BFGS-B",
        bounds=[(-_LOG_BOUND, _LOG_BOUND)] * 4,
        options=_PARETO_NBD_OPTIONS,
        callback=ridge,
    )
    if ridge.lost:
        raise _AttemptFailed("lost its way where its likelihood is not finite")
    if not ((result.success or ridge.stopped) and np.isfinite(result.fun) and np.isfinite(result.x).all()):
        raise _AttemptFailed(f"did not converge ({str(result.message).strip()})")
    if (np.abs(result.x) >= _LOG_BOUND - 1e-3).any():
        raise _AttemptFailed("ran to the edge of the search space")
    params = np.exp(result.x)
    params[[1, 3]] /= scale
    fitter = ParetoNBDFitter(penalizer_coef=penalizer)
    fitter.params_ = pd.Series(params, index=["r", "alpha", "s", "beta"])
    # read by _purchase_attempts: what the fit should say beside its parameters
    fitter.caveats_ = (ridge.caveat(fitter.params_),) if ridge.stopped else ()
    return fitter


def _fit_pareto_nbd_by_nelder_mead(penalizer: float, frequency, recency, age, weights) -> ParetoNBDFitter:
    """lifetimes' Pareto/NBD fit (Nelder-Mead), started at 1 for every parameter, the mean of the random start
    lifetimes would draw from NumPy's global generator, so that the fit is reproducible. lifetimes keeps whatever
    Nelder-Mead returns; stopping on an iteration limit is giving up, as ``ConvergenceError`` is for the others."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitter = ParetoNBDFitter(penalizer_coef=penalizer).fit(
            frequency, recency, age, weights=weights, initial_params=np.ones(4), verbose=True
        )
    # With verbose=True scipy's Nelder-Mead warns with its status message when it stops on the limit of iterations
    # or evaluations ("Maximum number of ... has been exceeded."); success it prints instead.
    messages = [str(warning.message).strip() for warning in caught]
    stopped = [message for message in messages if message.startswith("Maximum number of")]
    if stopped:
        raise _AttemptFailed(f"did not converge ({stopped[0]})")
    return fitter


@dataclass(frozen=True)
class _PurchaseModel:
    """A purchase model as lifetimes implements it, and what the direct maximisation and the matrix need of it.

    ``rates`` are the parameters in the time unit (scales of the Gamma-distributed rates), which the direct
    maximisation scales back with time; ``negative_log_likelihood`` takes log-parameters and the arguments
    ``likelihood_args`` makes of (frequency, recency, age, weights, penalizer), and is a mean over customers;
    ``objective`` gives it with its gradient; ``new_customer_purchases`` is P(n repeat purchases by time t) for a
    new customer. ``fit`` returns a lifetimes fitter, with ``caveats_`` (notes for the fit) where it sets them.
    """

    fitter: type[BaseFitter]
    parameters: tuple[str, ...]
    rates: tuple[str, ...]
    fit: Callable[..., BaseFitter]
    negative_log_likelihood: Callable[..., float]
    objective: Callable[..., tuple[float, np.ndarray]]
    new_customer_purchases: Callable[[BaseFitter, float, int], float]
    likelihood_args: Callable[..., tuple] = lambda *args: args


def _lifetimes_minimise(objective: Callable[..., tuple[float, np.ndarray]], args: tuple, size: int) -> np.ndarray:
    """lifetimes' ``BaseFitter._fit`` step for step (BFGS from 0.1 for every log-parameter, tol 1e-7;
    ``ConvergenceError``, after printing scipy's result, when BFGS does not succeed) with ``objective`` giving the
    value and gradient, but without the Hessian lifetimes then computes for standard errors: nothing here reads them,
    and at 1M customers it cost half as much again as the fit."""
    output = minimize(objective, jac=True, method=None, tol=1e-7, x0=0.1 * np.ones(size), args=args,
                      options={"disp": False})  # fmt: skip
    if not output.success:
        print(output)
        raise ConvergenceError("The model did not converge.")
    return output.x


def _beta_geometric_fit(
    fitter: type[BetaGeoFitter], objective: Callable[..., tuple[float, np.ndarray]]
) -> Callable[..., BetaGeoFitter]:
    """lifetimes' BG/NBD (and MBG/NBD) fit (``BetaGeoFitter.fit``: ``_lifetimes_minimise`` with time scaled so the
    oldest customer's age is 1) on lifetimes' likelihood with its exact gradient, evaluated per distinct value
    (models_ml/clv_likelihoods.py) instead of by autograd over every history."""

    def fit(penalizer: float, frequency, recency, age, weights) -> BetaGeoFitter:
        scale = 1.0 / age.max()
        args = purchase_likelihood_args(frequency, recency * scale, age * scale, weights, penalizer)
        fitted = fitter(penalizer_coef=penalizer)
        fitted.params_ = pd.Series(np.exp(_lifetimes_minimise(objective, args, 4)), index=["r", "alpha", "a", "b"])
        fitted.params_["alpha"] /= scale
        return fitted

    return fit


def _value(objective: Callable[..., tuple[float, np.ndarray]]) -> Callable[..., float]:
    return lambda *args: objective(*args)[0]


# The purchase models, in the order the holdout protocol tries them. The BG/NBD's P(N(t) = n) is FHL 2005a, eq. 8;
# the Pareto/NBD's is Fader & Hardie's conditional one (note 028) for a customer with no history yet (x = t_x = T =
# 0), whose likelihood is 1.
_PURCHASE_MODELS = {
    "BG/NBD": _PurchaseModel(
        fitter=BetaGeoFitter,
        parameters=("r", "alpha", "a", "b"),
        rates=("alpha",),
        fit=_beta_geometric_fit(BetaGeoFitter, bgnbd_objective),
        negative_log_likelihood=_value(bgnbd_objective),
        objective=bgnbd_objective,
        new_customer_purchases=lambda fitter, t, n: fitter.probability_of_n_purchases_up_to_time(t, n),
        likelihood_args=purchase_likelihood_args,
    ),
    "MBG/NBD": _PurchaseModel(
        fitter=ModifiedBetaGeoFitter,
        parameters=("r", "alpha", "a", "b"),
        rates=("alpha",),
        fit=_beta_geometric_fit(ModifiedBetaGeoFitter, mbgnbd_objective),
        negative_log_likelihood=_value(mbgnbd_objective),
        objective=mbgnbd_objective,
        new_customer_purchases=lambda fitter, t, n: fitter.probability_of_n_purchases_up_to_time(t, n),
        likelihood_args=purchase_likelihood_args,
    ),
    "Pareto/NBD": _PurchaseModel(
        fitter=ParetoNBDFitter,
        parameters=("r", "alpha", "s", "beta"),
        rates=("alpha", "beta"),
        fit=_fit_pareto_nbd,
        negative_log_likelihood=_pareto_nbd_negative_log_likelihood,
        objective=_central_differences(_pareto_nbd_negative_log_likelihood),
        new_customer_purchases=lambda fitter, t, n: fitter.conditional_probability_of_n_purchases_up_to_time(
            n, t, 0, 0.0, 0.0
        ),
        likelihood_args=_pareto_nbd_likelihood_args,
    ),
}
PURCHASE_MODELS = tuple(_PURCHASE_MODELS)


class ClvFitError(InsufficientDataError):
    """No attempt at fitting a CLV model gave usable parameters; the message names the model and says why, and the
    caller publishes the baseline instead."""


@dataclass(frozen=True)
class ClvFit:
    """Fitted purchase and spend model parameters, and what it took to fit them.

    Attributes
    ----------
    bgnbd
        Parameters of the purchase model (``purchase_model``; the name is kept so that stored runs read back):
        ``r``, ``alpha``, ``a``, ``b`` for the BG/NBD and MBG/NBD, ``r``, ``alpha``, ``s``, ``beta`` for the
        Pareto/NBD; ``alpha`` and ``beta`` in the summary's time unit.
    gamma_gamma
        ``p``, ``q``, ``v`` (``v`` in the currency of ``monetary_value``).
    bgnbd_penalizer, gamma_gamma_penalizer
        The L2 penalty of the fit that was kept; 0.0 when an unpenalised maximum-likelihood fit was usable.
    customers
        Rows the purchase model was fitted on.
    repeat_buyers
        Rows the Gamma-Gamma was fitted on: frequency > 0 and monetary_value > 0.
    notes
        Plain-words report of what happened: fallbacks, customers left out of the spend model, caveats.
    bgnbd_log_likelihood, gamma_gamma_log_likelihood
        Log-likelihood of the data at the kept parameters, without the penalty term.
    purchase_model
        One of ``PURCHASE_MODELS``: ``BG/NBD``, ``MBG/NBD`` or ``Pareto/NBD``.
    purchase_method, spend_method
        How the kept parameters were found: lifetimes' maximum likelihood, the direct maximisation of the
        likelihood, or lifetimes' penalised fit.
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
    purchase_model: str = "BG/NBD"
    purchase_method: str = MAXIMUM_LIKELIHOOD
    spend_method: str = MAXIMUM_LIKELIHOOD

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
            "purchase_model": self.purchase_model,
            "purchase_method": self.purchase_method,
            "spend_method": self.spend_method,
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
        """Rebuild a fit from ``as_dict`` output, e.g. to score again from a stored model run (runs stored before
        the purchase model was recorded are BG/NBD fits by lifetimes)."""
        purchase_model = parameters.get("purchase_model", "BG/NBD")
        return cls(
            bgnbd={name: float(parameters["bgnbd"][name]) for name in _PURCHASE_MODELS[purchase_model].parameters},
            gamma_gamma={name: float(value) for name, value in parameters["gamma_gamma"].items()},
            bgnbd_penalizer=float(parameters["bgnbd_penalizer"]),
            gamma_gamma_penalizer=float(parameters["gamma_gamma_penalizer"]),
            customers=int(parameters["customers"]),
            repeat_buyers=int(parameters["repeat_buyers"]),
            notes=tuple(parameters["notes"]),
            bgnbd_log_likelihood=_float_or_nan(parameters["bgnbd_log_likelihood"]),
            gamma_gamma_log_likelihood=_float_or_nan(parameters["gamma_gamma_log_likelihood"]),
            purchase_model=purchase_model,
            purchase_method=parameters.get("purchase_method", MAXIMUM_LIKELIHOOD),
            spend_method=parameters.get("spend_method", MAXIMUM_LIKELIHOOD),
        )


def _float_or_nan(value: object) -> float:
    """JSON stores NaN as null (``ml.model_runs`` cleans it); read it back as NaN."""
    return math.nan if value is None else float(value)


def _validate(summary: pl.DataFrame, columns: Sequence[str], caller: str) -> None:
    numeric = [column for column in columns if column != "customer_id"]
    # monetary_value is null for a customer without a repeat purchase: the spend model reads repeat buyers only
    known = [column for column in numeric if column != "monetary_value"]
    validate_columns(summary, columns, caller, numeric=numeric, not_null=known, finite=known, non_negative=known)
    if "frequency" in columns and (summary["frequency"].cast(pl.Float64) % 1 != 0).any():
        raise ValueError(f"{caller}: frequency must be whole purchase occasions")
    if "recency" in columns:
        if summary.filter(pl.col("recency") > pl.col("T")).height:
            raise ValueError(f"{caller}: recency exceeds T for some customers; recency is measured within T")
        if summary.filter((pl.col("frequency") == 0) & (pl.col("recency") != 0)).height:
            raise ValueError(f"{caller}: recency must be 0 where frequency is 0")


def _column(summary: pl.DataFrame, column: str) -> np.ndarray:
    return summary[column].cast(pl.Float64).to_numpy().astype(float)


def _purchase_fitter(model: str, params: dict[str, float]) -> BaseFitter:
    """A lifetimes fitter of ``model`` that predicts from stored parameters, as its own fit leaves it (``params_``)."""
    names = _PURCHASE_MODELS[model].parameters
    fitter = _PURCHASE_MODELS[model].fitter()
    fitter.params_ = pd.Series([params[name] for name in names], index=list(names))
    return fitter


def _fitted_purchases(fit: ClvFit) -> BaseFitter:
    return _purchase_fitter(fit.purchase_model, fit.bgnbd)


def _expected_purchases(model: BaseFitter, t: float, frequency, recency, age) -> np.ndarray:
    """E[N(t) | x, t_x, T] of a fitted purchase model."""
    return _purchases_forecast(model, frequency, recency, age)(t)


def _purchases_forecast(model: BaseFitter, frequency, recency, age) -> Callable[[float], np.ndarray]:
    """E[N(t) | x, t_x, T] of a fitted purchase model as a function of t. The Pareto/NBD's (Fader & Hardie note 009,
    eq. 41) divides by the likelihood, which does not depend on t, so it is computed once for every t asked for."""
    if isinstance(model, ParetoNBDFitter):
        return _pareto_nbd_forecast(model, frequency, recency, age)

    def forecast(t: float) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = model.conditional_expected_number_of_purchases_up_to_time(t, frequency, recency, age)
        return np.asarray(expected, dtype=float)

    return forecast


def _pareto_nbd_histories(frequency, recency, age) -> tuple[_ParetoNBDHistories, tuple[np.ndarray, ...]]:
    frequency, recency, age = np.broadcast_arrays(
        *(np.asarray(values, dtype=float) for values in (frequency, recency, age))
    )
    return _ParetoNBDHistories.of(frequency.ravel(), recency.ravel(), age.ravel(), np.ones(frequency.size)), (
        frequency.shape,
        frequency.ravel(),
        age.ravel(),
    )


def _pareto_nbd_forecast(model: ParetoNBDFitter, frequency, recency, age) -> Callable[[float], np.ndarray]:
    """Fader & Hardie note 009, eq. 41, as lifetimes computes it, with the likelihood of ``_pareto_nbd_terms``:
    E[N(t)] = exp(ln L_alive + ln(r + x) + ln(beta + T) - ln(alpha + T) - ln L)
    (1 - ((beta + T) / (beta + T + t))^(s - 1)) / (s - 1), where L_alive is the likelihood's term for a customer
    alive throughout (0, T]; for a customer who bought at T, L = L_alive (see ``_bought_at_the_end``)."""
    r, alpha, s, beta = (model.params_[name] for name in ("r", "alpha", "s", "beta"))
    histories, (shape, x, age) = _pareto_nbd_histories(frequency, recency, age)
    with np.errstate(divide="ignore", invalid="ignore"):
        alive_throughout, log_likelihood = _pareto_nbd_terms((r, alpha, s, beta), histories)
        log_rate = alive_throughout + np.log(r + x) + np.log(beta + age) - np.log(alpha + age) - log_likelihood

    def forecast(t: float) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            still_to_come = np.log((1 - ((beta + age) / (beta + age + t)) ** (s - 1)) / (s - 1))
            return np.exp(log_rate + still_to_come).reshape(shape)

    return forecast


def _p_alive(model: BaseFitter, frequency, recency, age) -> np.ndarray:
    """P(alive | x, t_x, T) of a fitted purchase model. The Pareto/NBD's (Fader & Hardie note 009, eqs. 36-37) is the
    likelihood's term for a customer alive throughout (0, T] over the likelihood, 1 for a customer who bought at T
    (see ``_bought_at_the_end``)."""
    if isinstance(model, ParetoNBDFitter):
        params = tuple(model.params_[name] for name in ("r", "alpha", "s", "beta"))
        histories, (shape, _, _) = _pareto_nbd_histories(frequency, recency, age)
        with np.errstate(divide="ignore", invalid="ignore"):
            alive_throughout, log_likelihood = _pareto_nbd_terms(params, histories)
            return np.exp(alive_throughout - log_likelihood).reshape(shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(model.conditional_probability_alive(frequency, recency, age), dtype=float)


def _bought_at_the_end(recency, age) -> np.ndarray:
    """Customers whose last purchase is at T. The Pareto/NBD is then surely alive (its A_0 term, Fader & Hardie
    note 009, eq. 19, is 0), but lifetimes computes A_0 as the difference of two equal terms, and scipy's logsumexp
    gives NaN, not -inf, once they pass exp's range (large s or x), so these customers are taken in closed form."""
    return np.asarray(np.asarray(recency) >= np.asarray(age))


def _gamma_gamma_fitter(params: dict[str, float]) -> GammaGammaFitter:
    fitter = GammaGammaFitter()
    fitter.params_ = pd.Series([params[name] for name in _GAMMA_GAMMA_PARAMETERS], index=list(_GAMMA_GAMMA_PARAMETERS))
    return fitter


def _population_mean_spend(params: dict[str, float]) -> float:
    return params["p"] * params["v"] / (params["q"] - 1)


def _distinct_rows(**columns: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The compressed sufficient statistics: identical histories collapsed to one row with a count (``weights``),
    in the order of the columns' values (the first column first), so that sums over them do not depend on the order
    of the customers. (One sort of the customers and a pass over it: at 1M customers a third of the time of
    polars' group by and sort.)"""
    values = [np.asarray(column) for column in columns.values()]
    order = np.lexsort(values[::-1])
    values = [value[order] for value in values]
    first = np.ones(len(order), dtype=bool)
    for value in values:
        first[1:] &= value[1:] == value[:-1]
    starts = np.flatnonzero(~first | (np.arange(len(order)) == 0))
    weights = np.diff(np.append(starts, len(order)))
    return {name: value[starts] for name, value in zip(columns, values, strict=True)}, weights


def _optimizer_says(printed: str) -> str:
    """lifetimes prints scipy's result when it gives up; its ``message`` line says why."""
    lines = [line.split("message:", 1)[1].strip() for line in printed.splitlines() if "message:" in line]
    return f"did not converge ({lines[0]})" if lines else "did not converge"


def _run_quietly(fit: Callable[[], object]) -> object:
    """Run a fit without its printing and warnings, turning its errors into ``_AttemptFailed``."""
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


@dataclass(frozen=True)
class _Found:
    """What one fit attempt found: parameters, log-likelihood without penalty, why it is unusable (None if it is
    usable) and caveats for the notes."""

    params: dict[str, float]
    log_likelihood: float
    problem: str | None
    caveats: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Attempt:
    method: str
    penalizer: float
    described: str  # completes "with ...": "no penalty", "penalizer 0.01", "the likelihood maximised directly"
    run: Callable[[], _Found]


def _maximise_likelihood(objective: Callable, args: tuple, size: int) -> tuple[np.ndarray, object]:
    """Minimise a negative log-likelihood (a mean over customers, in log-parameters) with L-BFGS-B from each of
    ``_DIRECT_STARTS`` and keep the lowest finite value; ``objective`` gives the value and its gradient (exact, by
    autograd as lifetimes does, or by central differences for the Pareto/NBD)."""
    best = None
    for start in _DIRECT_STARTS:
        result = minimize(
            objective,
            np.full(size, start),
            jac=True,
            args=args,
            method="L-BFGS-B",
            bounds=[(-_LOG_BOUND, _LOG_BOUND)] * size,
        )
        if np.isfinite(result.fun) and np.isfinite(result.x).all() and (best is None or result.fun < best.fun):
            best = result
    if best is None:
        raise _AttemptFailed("found no finite likelihood from any starting point")
    return best.x, best


def _direct_caveats(model: str, names: Sequence[str], log_params: np.ndarray, result: object) -> tuple[str, ...]:
    caveats = []
    edge = [name for name, value in zip(names, log_params, strict=True) if abs(value) >= _LOG_BOUND - 1e-3]
    if edge:
        caveats.append(
            f"{model} parameter(s) {', '.join(edge)} ran to the edge of the search space: the data do not pin them"
            " down, and the holdout result shows whether the fit still predicts well"
        )
    if not result.success:
        caveats.append(
            f"{model}: the direct maximisation of the likelihood stopped before its convergence test was met"
            f" ({str(result.message).strip()}); its parameters are usable, and the holdout result judges them"
        )
    return tuple(caveats)


def _check_purchases(
    model: str, params: dict[str, float], log_likelihood: float, frequency, recency, age
) -> str | None:
    problem = _unusable_parameters(params, log_likelihood)
    if problem is not None:
        return problem
    # A fit can be finite yet sit on a pole of the hypergeometric terms (a + b -> 1, a -> 0): check that it
    # predicts, for the customers it was fitted on and for a new customer.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = _purchase_fitter(model, params)
        expected = np.append(
            _expected_purchases(fitted, age.max(), frequency, recency, age),
            fitted.expected_number_of_purchases_up_to_time(age.max()),
        )
        alive = _p_alive(fitted, frequency, recency, age)
    if not (np.isfinite(expected).all() and (expected >= 0).all() and np.isfinite(alive).all()):
        return f"gave parameters that cannot predict ({_describe(params)})"
    return None


def _purchase_log_likelihood(model: str, params, frequency, recency, age, weights) -> float:
    """Log-likelihood (FHL 2005a; Batislam et al. 2007; Fader & Hardie note 009) summed over customers, without
    penalty, in the caller's time unit."""
    spec = _PURCHASE_MODELS[model]
    log_params = np.log([params[name] for name in spec.parameters])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mean_negative = spec.negative_log_likelihood(
            log_params, *spec.likelihood_args(frequency, recency, age, weights, 0.0)
        )
    return float(-mean_negative * weights.sum())


def _purchase_attempts(model: str, penalizers, frequency, recency, age, weights) -> list[_Attempt]:
    """lifetimes' maximum likelihood, then the likelihood maximised directly, then lifetimes' penalised fits."""
    spec = _PURCHASE_MODELS[model]

    def found(params: dict[str, float], caveats: tuple[str, ...] = ()) -> _Found:
        log_likelihood = _purchase_log_likelihood(model, params, frequency, recency, age, weights)
        problem = _check_purchases(model, params, log_likelihood, frequency, recency, age)
        return _Found(params, log_likelihood, problem, caveats if problem is None else ())

    def by_lifetimes(penalizer: float) -> _Found:
        fitter = _run_quietly(lambda: spec.fit(penalizer, frequency, recency, age, weights))
        return found({name: float(fitter.params_[name]) for name in spec.parameters}, getattr(fitter, "caveats_", ()))

    def directly() -> _Found:
        # Time in units of the oldest customer's age, as lifetimes scales it; alpha (and beta) are the scales of
        # rates, so they scale back with time.
        scale = 1.0 / age.max()
        args = spec.likelihood_args(frequency, recency * scale, age * scale, weights, 0.0)
        log_params, result = _run_quietly(lambda: _maximise_likelihood(spec.objective, args, len(spec.parameters)))
        params = dict(zip(spec.parameters, np.exp(log_params).tolist(), strict=True))
        for name in spec.rates:
            params[name] /= scale
        return found(params, _direct_caveats(model, spec.parameters, log_params, result))

    return _attempts(penalizers, by_lifetimes, directly)


def _attempts(penalizers, by_lifetimes: Callable[[float], _Found], directly: Callable[[], _Found]) -> list[_Attempt]:
    attempts = []
    for penalizer in penalizers:
        if penalizer == 0:
            attempts.append(_Attempt(MAXIMUM_LIKELIHOOD, 0.0, "no penalty", lambda: by_lifetimes(0.0)))
            attempts.append(_Attempt(DIRECT_MAXIMUM_LIKELIHOOD, 0.0, "the likelihood maximised directly", directly))
        else:
            attempts.append(
                _Attempt(
                    PENALISED_MAXIMUM_LIKELIHOOD,
                    float(penalizer),
                    f"penalizer {penalizer:g}",
                    lambda penalizer=penalizer: by_lifetimes(penalizer),
                )
            )
    return attempts


def _spend_attempts(penalizers, frequency: np.ndarray, spend: np.ndarray, weights: np.ndarray) -> list[_Attempt]:
    # Spend is fitted in units of its mean, as lifetimes scales time for BG/NBD, so that a penalizer means the same
    # whatever the currency; the maximum-likelihood estimate itself does not depend on the unit (v scales with it).
    scale = float(np.average(spend, weights=weights))

    def found(params: dict[str, float], caveats: tuple[str, ...] = ()) -> _Found:
        params = {**params, "v": params["v"] * scale}
        log_likelihood = _gamma_gamma_log_likelihood(params, frequency, spend, weights)
        problem = _unusable_parameters(params, log_likelihood)
        if problem is None and params["q"] <= 1:
            problem = f"gave q = {params['q']:.3g} <= 1, for which the population mean spend p v / (q - 1) is undefined"
        return _Found(params, log_likelihood, problem, caveats if problem is None else ())

    def by_lifetimes(penalizer: float) -> _Found:
        # lifetimes' GammaGammaFitter.fit, without its Hessian (``_lifetimes_minimise``)
        args = spend_likelihood_args(frequency, spend / scale, weights, penalizer)
        log_params = _run_quietly(lambda: _lifetimes_minimise(gamma_gamma_objective, args, 3))
        return found(dict(zip(_GAMMA_GAMMA_PARAMETERS, np.exp(log_params).tolist(), strict=True)))

    def directly() -> _Found:
        args = spend_likelihood_args(frequency, spend / scale, weights, 0.0)
        log_params, result = _run_quietly(lambda: _maximise_likelihood(gamma_gamma_objective, args, 3))
        params = dict(zip(_GAMMA_GAMMA_PARAMETERS, np.exp(log_params).tolist(), strict=True))
        return found(params, _direct_caveats("Gamma-Gamma", _GAMMA_GAMMA_PARAMETERS, log_params, result))

    return _attempts(penalizers, by_lifetimes, directly)


def _gamma_gamma_log_likelihood(params, frequency, spend, weights) -> float:
    """Log-likelihood of the mean repeat spend (Hardie note 025, eq. 1a) summed over customers, without penalty."""
    log_params = np.log([params[name] for name in _GAMMA_GAMMA_PARAMETERS])
    with np.errstate(all="ignore"):
        mean_negative = gamma_gamma_objective(log_params, *spend_likelihood_args(frequency, spend, weights, 0.0))[0]
    return float(-mean_negative * weights.sum())


def _describe(params: dict[str, float]) -> str:
    return ", ".join(f"{name} = {value:.4g}" for name, value in params.items())


def _first_usable_fit(model: str, attempts: Sequence[_Attempt]) -> tuple[_Found, _Attempt, list[str]]:
    """Run the attempts in turn and keep the first usable result; raise ClvFitError, naming every try, if none is."""
    failures: list[str] = []
    for attempt in attempts:
        try:
            outcome = attempt.run()
            problem = outcome.problem
        except _AttemptFailed as failed:
            problem = str(failed)
        if problem is None:
            notes = []
            if failures:
                tried = "; with ".join(failures)
                notes.append(f"{model} was not usable with {tried}; refitted with {attempt.described}")
            elif attempt.penalizer > 0:
                notes.append(f"{model} fitted with penalizer {attempt.penalizer:g}, the first one asked for")
            return outcome, attempt, notes + list(outcome.caveats)
        failures.append(f"{attempt.described}, it {problem}")
    raise ClvFitError(f"{model} could not be fitted: with {'; with '.join(failures)}")


def fit_clv(
    summary: pl.DataFrame,
    penalizers: Sequence[float] = DEFAULT_PENALIZERS,
    *,
    spend: bool = True,
    purchase_model: str = "BG/NBD",
) -> ClvFit:
    """Fit a purchase model (BG/NBD, MBG/NBD or Pareto/NBD) and the Gamma-Gamma spend model to a customer summary.

    Each model is fitted by maximum likelihood (BG/NBD: FHL 2005a; MBG/NBD: Batislam et al. 2007; Pareto/NBD:
    Schmittlein et al. 1987, Fader & Hardie note 009, eq. 18; Gamma-Gamma: Hardie note 025, eq. 1a) on the
    compressed sufficient statistics (one weighted row per distinct history). For each of ``penalizers`` in order,
    0 meaning two attempts: lifetimes' fit (for the Pareto/NBD, lifetimes' likelihood maximised by L-BFGS-B from
    lifetimes' start, see ``_fit_pareto_nbd``), then, if that gives up (``ConvergenceError``; for the Pareto/NBD,
    L-BFGS-B stopping short of its convergence test) or its result is unusable, the likelihood maximised directly
    (L-BFGS-B over the log-parameters in [-12, 12], two starting points; exact gradients, central differences for
    the Pareto/NBD); a positive penalizer means lifetimes' penalised fit. The first usable result is kept: every
    parameter finite and > 0, the log-likelihood finite, the purchase model predicting finite, non-negative
    purchases and P(alive) for the customers it was fitted on and for a new customer, and the Gamma-Gamma with
    q > 1 (else the population mean spend p v / (q - 1) is undefined). The optimiser's own convergence flag does
    not decide: a direct fit whose optimiser stopped early or whose parameters ran to the edge of the search space
    is kept, with a note, and judged by its holdout result (``models_ml.clv_holdout``).

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
    purchase_model
        One of ``PURCHASE_MODELS``: ``BG/NBD`` (the default), ``MBG/NBD`` or ``Pareto/NBD``.

    Returns
    -------
    ClvFit
        Parameters, the method and penalties used, counts and notes. The purchase model is fitted on every row;
        the Gamma-Gamma on rows with frequency > 0 and monetary_value > 0. Others get the population mean spend
        when predicting.

    Raises
    ------
    ClvFitError
        When the summary has no customers or no time to observe them, or every attempt fails for either model,
        naming the model and why; fall back to ``baseline_clv``. An ``InsufficientDataError``.
    ValueError
        When the summary breaks its contract, naming the column.
    """
    _validate(summary, SUMMARY_COLUMNS, "fit_clv")
    if not penalizers or any(not math.isfinite(penalizer) or penalizer < 0 for penalizer in penalizers):
        raise ValueError(f"fit_clv: penalizers must be a non-empty sequence of finite values >= 0, not {penalizers}")
    if purchase_model not in _PURCHASE_MODELS:
        raise ValueError(f"fit_clv: purchase_model must be one of {PURCHASE_MODELS}, not {purchase_model!r}")
    if summary.is_empty():
        raise ClvFitError("fit_clv: the summary has no customers, so there is nothing to fit")
    if summary["T"].max() <= 0:
        raise ClvFitError(
            "fit_clv: every customer first bought at the cutoff, so there has been no time to see a repeat purchase"
        )

    histories, weights = _distinct_rows(
        frequency=_column(summary, "frequency"), recency=_column(summary, "recency"), age=_column(summary, "T")
    )
    purchases, purchase_attempt, notes = _first_usable_fit(
        purchase_model, _purchase_attempts(purchase_model, penalizers, weights=weights, **histories)
    )
    fitted = {
        "bgnbd": purchases.params,
        "bgnbd_penalizer": purchase_attempt.penalizer,
        "customers": summary.height,
        "bgnbd_log_likelihood": purchases.log_likelihood,
        "purchase_model": purchase_model,
        "purchase_method": purchase_attempt.method,
    }
    if not spend:
        return ClvFit(
            **fitted,
            gamma_gamma={},
            gamma_gamma_penalizer=0.0,
            repeat_buyers=0,
            notes=tuple(notes),
            gamma_gamma_log_likelihood=math.nan,
        )

    repeat = summary.filter((pl.col("frequency") > 0) & (pl.col("monetary_value") > 0))
    if repeat.is_empty():
        raise ClvFitError(
            "Gamma-Gamma could not be fitted: no customer has a repeat purchase with positive value, so there is no"
            " spend per repeat purchase to learn from"
        )
    spends, spend_weights = _distinct_rows(
        frequency=_column(repeat, "frequency"), spend=_column(repeat, "monetary_value")
    )
    gamma_gamma, spend_attempt, spend_notes = _first_usable_fit(
        "Gamma-Gamma", _spend_attempts(penalizers, weights=spend_weights, **spends)
    )
    notes += spend_notes
    notes += _spend_model_notes(summary, repeat, gamma_gamma.params)
    return ClvFit(
        **fitted,
        gamma_gamma=gamma_gamma.params,
        gamma_gamma_penalizer=spend_attempt.penalizer,
        repeat_buyers=repeat.height,
        notes=tuple(notes),
        gamma_gamma_log_likelihood=gamma_gamma.log_likelihood,
        spend_method=spend_attempt.method,
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

    Expected purchases are the purchase model's conditional expectation E[N(t) | x, t_x, T] (BG/NBD: FHL 2005a,
    eq. 10; MBG/NBD: Batislam et al. 2007; Pareto/NBD: Fader & Hardie note 009, eq. 41) over
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
    purchases = _fitted_purchases(fit)

    cumulative = _purchases_forecast(purchases, frequency, recency, age)
    spend = _spend_per_purchase(fit, frequency, _column(summary, "monetary_value"))
    return _clv_frame(
        summary,
        p_alive=_p_alive(purchases, frequency, recency, age),
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
        validate_columns(summary, (), "baseline_clv", key=None, numeric=("average_order_value",))
        own = pl.coalesce(pl.col("average_order_value").cast(pl.Float64), repeat_spend)
    else:
        own = repeat_spend
    spend = summary.select(own.alias("spend"))["spend"].fill_nan(None)
    if spend.is_empty():
        return np.empty(0)
    if spend.null_count() == spend.len():
        raise InsufficientDataError(
            "baseline_clv: no customer has a spend figure (average_order_value, or monetary_value of a repeat"
            " buyer); add average_order_value to the summary"
        )
    return spend.fill_null(spend.mean()).clip(lower_bound=0.0).to_numpy().astype(float)


def predict_purchases(fit: ClvFit, summary: pl.DataFrame, days: float) -> pl.DataFrame:
    """Expected repeat purchases in the next ``days`` and the probability of being alive, from the purchase model.

    For the BG/NBD, E[N(t) | x, t_x, T] is FHL 2005a, eq. 10 and P(alive | x, t_x, T) is Hardie note 021 (1 for
    frequency 0); the MBG/NBD's (Batislam et al. 2007) let a one-time buyer have lapsed too, and so do the
    Pareto/NBD's (Fader & Hardie note 009, eqs. 41 and 36-37), whose customers may lapse at any time.
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
    purchases = _fitted_purchases(fit)
    return pl.DataFrame(
        {
            "customer_id": summary["customer_id"],
            "expected_purchases": _expected_purchases(purchases, days, frequency, recency, age),
            "p_alive": _p_alive(purchases, frequency, recency, age),
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


def evaluate_holdout(predicted: pl.DataFrame, actual: pl.DataFrame) -> dict[str, object]:
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
        when both frames carry spend, ``mae_spend``, ``spearman_spend``, ``total_predicted_spend``, (and for both,
        ``rmse_`` the root mean squared error),
        ``total_actual_spend``; and ``deciles``: the customers in ten bins by predicted spend (purchases when there
        is no spend), each ``decile`` (1 to 10, 10 the highest predicted), ``predicted`` and ``observed`` (means per
        customer) and ``customers``, to draw predicted against actual.
    """
    for frame, name, column in ((predicted, "predicted", "expected_purchases"), (actual, "actual", "purchases")):
        validate_columns(frame, (column,), "evaluate_holdout", numeric=(column,), name=name)
    with_spend = "expected_spend" in predicted.columns and "spend" in actual.columns
    pairs = [("expected_purchases", "purchases", "purchases")]
    if with_spend:
        pairs.append(("expected_spend", "spend", "spend"))
    joined = predicted.select("customer_id", *(forecast for forecast, _, _ in pairs)).join(
        actual.select("customer_id", *(observed for _, observed, _ in pairs)), on="customer_id", how="left"
    )
    metrics: dict[str, object] = {"customers": joined.height}
    for forecast, observed, label in pairs:
        forecast_values = joined[forecast].cast(pl.Float64).fill_null(0.0).to_numpy()
        observed_values = joined[observed].cast(pl.Float64).fill_null(0.0).to_numpy()
        errors = forecast_values - observed_values
        metrics[f"mae_{label}"] = float(np.mean(np.abs(errors))) if joined.height else 0.0
        metrics[f"rmse_{label}"] = float(np.sqrt(np.mean(errors**2))) if joined.height else 0.0
        metrics[f"total_predicted_{label}"] = float(forecast_values.sum())
        metrics[f"total_actual_{label}"] = float(observed_values.sum())
        metrics[f"spearman_{label}"] = _spearman(forecast_values, observed_values)
        # the last pair is spend when there is spend: the deciles rank customers by what matters most
        metrics["deciles"] = _deciles(forecast_values, observed_values)
    return metrics


def _deciles(predicted: np.ndarray, observed: np.ndarray) -> list[dict[str, float | int]]:
    """Customers in ten bins of (nearly) equal size by predicted value, listed lowest first, with the mean predicted
    and observed value of each bin. The bins are cut from the top, so that with fewer than ten customers the highest
    predicted is still in decile 10 and only the bins that hold someone are listed."""
    bins = np.array_split(np.argsort(-predicted, kind="stable"), 10)
    return [
        {
            "decile": 10 - position,
            "predicted": float(predicted[members].mean()),
            "observed": float(observed[members].mean()),
            "customers": len(members),
        }
        for position, members in reversed(list(enumerate(bins)))
        if len(members)
    ]


def _purchases_quantile(fit: ClvFit, age: float, quantile: float, cap: int) -> int:
    """Smallest n with P(N(age) <= n) >= quantile for a new customer (BG/NBD: FHL 2005a, eq. 8; Pareto/NBD:
    Fader & Hardie note 028 with no history), at most ``cap``."""
    model = _fitted_purchases(fit)
    new_customer_purchases = _PURCHASE_MODELS[fit.purchase_model].new_customer_purchases
    cumulative = 0.0
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n in range(cap + 1):
            cumulative += float(new_customer_purchases(model, age, n))
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

    The data behind lifetimes' ``plot_frequency_recency_matrix`` and ``plot_probability_alive_matrix``, from the
    fit's purchase model (as ``predict_purchases``): one row per (frequency, recency) with the expected repeat
    purchases in the next ``days`` and the probability the customer is still alive. With frequency 0 neither
    depends on recency.

    Parameters
    ----------
    fit
        From ``fit_clv``.
    T
        Age of the customer: time since their first purchase, in the fit's time unit.
    days
        Horizon of the expected purchases, in the same unit.
    max_frequency
        Largest frequency on the grid; by default the 99th percentile of the repeat purchases the fitted purchase
        model gives a new customer over ``T`` (BG/NBD: FHL 2005a, eq. 8), at least 1 and at most 100.
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
    # A customer who never came back has recency 0 (the summary contract); the MBG/NBD's and Pareto/NBD's formulas
    # would read any other recency, so the frequency-0 row of the grid is that one history throughout.
    history_recency = np.where(frequency == 0, 0.0, recency)
    model = _fitted_purchases(fit)
    return pl.DataFrame(
        {
            "frequency": frequency.astype(np.int64),
            "recency": recency.astype(float),
            "expected_purchases": _expected_purchases(model, days, frequency, history_recency, age),
            "p_alive": _p_alive(model, frequency, history_recency, age),
        }
    )
