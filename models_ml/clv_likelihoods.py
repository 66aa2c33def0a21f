"""lifetimes' negative log-likelihoods of the BG/NBD, the MBG/NBD and the Gamma-Gamma, with their exact gradients,
evaluated where their terms vary.

lifetimes writes each likelihood as one expression over every customer and differentiates it with autograd, which
records every array operation and plays it back: at a million customers (half a million distinct histories) that
was most of the lifetime-value stage. Yet most terms depend on one statistic only: the gamma functions on the
number of repeat purchases x (a few hundred distinct values), ln(alpha + T) on the age T and ln(alpha + t_x) on the
recency t_x (a few thousand each). Here those terms and their derivatives are computed once per distinct value and
gathered; what is left per history is a log-sum-exp and a few products. The value is lifetimes' (the same formula,
summed in another order) and the gradient is its derivative written out (tests/unit/test_clv_likelihoods.py
compares both with lifetimes' function and autograd's gradient).

Each objective takes log-parameters and returns (mean negative log-likelihood + penalty, gradient), lifetimes'
convention: ``-sum(w * ll) / sum(w) + penalizer * sum(params ** 2)``.

BG/NBD: Fader, Hardie & Lee 2005a, eq. 6; MBG/NBD: Batislam, Denizel & Filiztekin 2007; Gamma-Gamma: Fader, Hardie
& Lee 2005b (Hardie note 025, eq. 1a).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, gammaln


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    distinct, codes = np.unique(values, return_inverse=True)
    return distinct, codes.ravel()


@dataclass(frozen=True)
class PurchaseHistories:
    """Histories (x, t_x, T) with their weights, and the distinct values of each statistic with each history's
    index into them."""

    frequency: np.ndarray
    weights: np.ndarray
    total_weight: float
    frequencies: np.ndarray  # distinct x
    by_frequency: np.ndarray
    frequency_weights: np.ndarray  # the weights summed per distinct x
    recencies: np.ndarray  # distinct t_x
    by_recency: np.ndarray
    ages: np.ndarray  # distinct T
    by_age: np.ndarray

    @classmethod
    def of(cls, frequency, recency, age, weights) -> PurchaseHistories:
        frequency = np.asarray(frequency, dtype=float)
        weights = np.asarray(weights, dtype=float)
        frequencies, by_frequency = _codes(frequency)
        recencies, by_recency = _codes(np.asarray(recency, dtype=float))
        ages, by_age = _codes(np.asarray(age, dtype=float))
        return cls(
            frequency=frequency,
            weights=weights,
            total_weight=float(weights.sum()),
            frequencies=frequencies,
            by_frequency=by_frequency,
            frequency_weights=np.bincount(by_frequency, weights=weights, minlength=len(frequencies)),
            recencies=recencies,
            by_recency=by_recency,
            ages=ages,
            by_age=by_age,
        )


def purchase_likelihood_args(frequency, recency, age, weights, penalizer: float) -> tuple:
    """The arguments the purchase objectives take, from lifetimes' (frequency, recency, T, weights, penalizer)."""
    return PurchaseHistories.of(frequency, recency, age, weights), penalizer


def _dot(left: np.ndarray, right: np.ndarray) -> float:
    """sum(left * right): for one-dimensional arrays NumPy's ``@`` calls BLAS, whose threads cost more than the sum."""
    return float(np.multiply(left, right).sum())


def _log_sum_and_share(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ln(exp(first) + exp(second)) and exp(second) / (exp(first) + exp(second)), with one exponential and one
    logarithm per element (NumPy's ``logaddexp`` and scipy's ``expit`` take several times as long); ``second`` may be
    -inf (its share is then 0)."""
    difference = second - first
    smaller = np.exp(-np.abs(difference))  # exp(min - max), in (0, 1]
    total = 1.0 + smaller
    share = np.where(difference > 0, 1.0, smaller) / total
    return np.maximum(first, second) + np.log1p(smaller), share


def _mean_and_gradient(
    params: np.ndarray, weighted_sums: np.ndarray, log_likelihood: float, total: float, penalizer: float
) -> tuple[float, np.ndarray]:
    """-sum(w ll) / sum(w) + penalizer * sum(params^2), and its gradient in log-parameters (d/d ln p = p d/dp)."""
    value = -log_likelihood / total + penalizer * float((params**2).sum())
    return value, -params * weighted_sums / total + 2.0 * penalizer * params**2


def _per_frequency_terms(params: np.ndarray, x_values: np.ndarray, dropouts: np.ndarray) -> tuple[np.ndarray, ...]:
    """A1 + A2 of the BG/NBD family per distinct x, and their derivatives in r, a and b (alpha's is r / alpha for
    everyone): A1 = lnG(r + x) - lnG(r) + r ln alpha, A2 = lnG(a + b) + lnG(b + n) - lnG(b) - lnG(a + b + n), with
    n = ``dropouts``, the purchases after which a customer may have dropped out (x for the BG/NBD, x + 1 for the
    MBG/NBD, whose customers may also drop out right after the first)."""
    r, alpha, a, b = params
    a_12 = gammaln(r + x_values) - gammaln(r) + r * np.log(alpha)
    a_12 += gammaln(a + b) + gammaln(b + dropouts) - gammaln(b) - gammaln(a + b + dropouts)
    d_r = digamma(r + x_values) - digamma(r) + np.log(alpha)
    d_a = digamma(a + b) - digamma(a + b + dropouts)
    return a_12, d_r, d_a, d_a + digamma(b + dropouts) - digamma(b)


def bgnbd_objective(log_params, histories: PurchaseHistories, penalizer: float) -> tuple[float, np.ndarray]:
    """lifetimes' ``BetaGeoFitter._negative_log_likelihood`` and its gradient.

    ll = A1 + A2 + ln(exp(A3) + [x > 0] exp(A4)); A1 = lnG(r + x) - lnG(r) + r ln alpha;
    A2 = lnG(a + b) + lnG(b + x) - lnG(b) - lnG(a + b + x); A3 = -(r + x) ln(alpha + T);
    A4 = ln a - ln(b + x - 1) - (r + x) ln(alpha + t_x).
    """
    params = np.exp(np.asarray(log_params, dtype=float))
    r, alpha, a, b = params
    h, x_values = histories, histories.frequencies
    a_12, d_r, d_a, d_b = _per_frequency_terms(params, x_values, x_values)
    shifted_b = b + np.maximum(x_values, 1.0) - 1.0
    # ln a - ln(b + x - 1) per x; -inf without a repeat purchase, where A4 has no part (exp(A4) = 0)
    a_4_start = np.where(x_values > 0, np.log(a) - np.log(shifted_b), -np.inf)
    log_age, log_recency = np.log(alpha + h.ages)[h.by_age], np.log(alpha + h.recencies)[h.by_recency]
    shape = r + h.frequency
    a_3 = -shape * log_age
    a_4 = a_4_start[h.by_frequency] - shape * log_recency
    # ln(exp(A3) + exp(A4)) and the share of exp(A4) in the sum (the weight of "dropped out after t_x")
    log_sum, lapsed = _log_sum_and_share(a_3, a_4)
    w = h.weights
    w_lapsed = w * lapsed
    w_alive = w - w_lapsed
    log_likelihood = _dot(h.frequency_weights, a_12) + _dot(w, log_sum)
    per_frequency = np.bincount(h.by_frequency, weights=w_lapsed, minlength=len(x_values))
    weighted_sums = np.array(
        [
            _dot(h.frequency_weights, d_r) - _dot(w_alive, log_age) - _dot(w_lapsed, log_recency),
            h.total_weight * r / alpha
            - _dot(w_alive * shape, (1.0 / (alpha + h.ages))[h.by_age])
            - _dot(w_lapsed * shape, (1.0 / (alpha + h.recencies))[h.by_recency]),
            _dot(h.frequency_weights, d_a) + w_lapsed.sum() / a,
            _dot(h.frequency_weights, d_b) - _dot(per_frequency, 1.0 / shifted_b),
        ]
    )
    return _mean_and_gradient(params, weighted_sums, log_likelihood, h.total_weight, penalizer)


def mbgnbd_objective(log_params, histories: PurchaseHistories, penalizer: float) -> tuple[float, np.ndarray]:
    """lifetimes' ``ModifiedBetaGeoFitter._negative_log_likelihood`` and its gradient.

    ll = A1 + A2 + A3 + ln(1 + exp(A4)); A1 = lnG(r + x) - lnG(r) + r ln alpha;
    A2 = lnG(a + b) + lnG(b + x + 1) - lnG(b) - lnG(a + b + x + 1); A3 = -(r + x) ln(alpha + T);
    A4 = ln a - ln(b + x) + (r + x)(ln(alpha + T) - ln(alpha + t_x)).
    """
    params = np.exp(np.asarray(log_params, dtype=float))
    r, alpha, a, b = params
    h, x_values = histories, histories.frequencies
    a_12, d_r, d_a, d_b = _per_frequency_terms(params, x_values, x_values + 1)
    log_age, log_recency = np.log(alpha + h.ages)[h.by_age], np.log(alpha + h.recencies)[h.by_recency]
    inverse_age, inverse_recency = (1.0 / (alpha + h.ages))[h.by_age], (1.0 / (alpha + h.recencies))[h.by_recency]
    shape = r + h.frequency
    a_4 = (np.log(a) - np.log(b + x_values))[h.by_frequency] + shape * (log_age - log_recency)
    w = h.weights
    log_sum, lapsed = _log_sum_and_share(np.zeros_like(a_4), a_4)  # ln(1 + exp(A4)), d ln(1 + exp(A4)) / d A4
    w_lapsed = w * lapsed
    log_likelihood = _dot(h.frequency_weights, a_12) - _dot(w * shape, log_age) + _dot(w, log_sum)
    per_frequency = np.bincount(h.by_frequency, weights=w_lapsed, minlength=len(x_values))
    weighted_sums = np.array(
        [
            _dot(h.frequency_weights, d_r) - _dot(w, log_age) + _dot(w_lapsed, log_age - log_recency),
            h.total_weight * r / alpha
            - _dot(w * shape, inverse_age)
            + _dot(w_lapsed * shape, inverse_age - inverse_recency),
            _dot(h.frequency_weights, d_a) + w_lapsed.sum() / a,
            _dot(h.frequency_weights, d_b) - _dot(per_frequency, 1.0 / (b + x_values)),
        ]
    )
    return _mean_and_gradient(params, weighted_sums, log_likelihood, h.total_weight, penalizer)


@dataclass(frozen=True)
class SpendHistories:
    """Repeat buyers' (x, mean spend m) with their weights, the distinct x, and the sums that do not depend on the
    parameters."""

    frequency: np.ndarray
    spend: np.ndarray
    weights: np.ndarray
    total_weight: float
    frequencies: np.ndarray
    frequency_weights: np.ndarray
    log_spend_sum: float  # sum w ln m
    frequency_log_spend_sum: float  # sum w x ln m

    @classmethod
    def of(cls, frequency, spend, weights) -> SpendHistories:
        frequency = np.asarray(frequency, dtype=float)
        spend, weights = np.asarray(spend, dtype=float), np.asarray(weights, dtype=float)
        frequencies, by_frequency = _codes(frequency)
        log_spend = np.log(spend)
        return cls(
            frequency=frequency,
            spend=spend,
            weights=weights,
            total_weight=float(weights.sum()),
            frequencies=frequencies,
            frequency_weights=np.bincount(by_frequency, weights=weights, minlength=len(frequencies)),
            log_spend_sum=_dot(weights, log_spend),
            frequency_log_spend_sum=_dot(weights * frequency, log_spend),
        )


def spend_likelihood_args(frequency, spend, weights, penalizer: float) -> tuple:
    """The arguments ``gamma_gamma_objective`` takes, from lifetimes' (frequency, monetary value, weights,
    penalizer)."""
    return SpendHistories.of(frequency, spend, weights), penalizer


def gamma_gamma_objective(log_params, histories: SpendHistories, penalizer: float) -> tuple[float, np.ndarray]:
    """lifetimes' ``GammaGammaFitter._negative_log_likelihood`` and its gradient.

    ll = lnG(p x + q) - lnG(p x) - lnG(q) + q ln v + (p x - 1) ln m + p x ln x - (p x + q) ln(x m + v).
    """
    params = np.exp(np.asarray(log_params, dtype=float))
    p, q, v = params
    h, x_values = histories, histories.frequencies
    px = p * x_values
    per_frequency = gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v) + px * np.log(x_values)
    d_p = x_values * (digamma(px + q) - digamma(px) + np.log(x_values))
    d_q = digamma(px + q) - digamma(q) + np.log(v)
    total = h.spend * h.frequency + v
    log_total = np.log(total)
    w = h.weights
    shape = p * h.frequency + q
    log_likelihood = (
        _dot(h.frequency_weights, per_frequency)
        + p * h.frequency_log_spend_sum
        - h.log_spend_sum
        - _dot(w * shape, log_total)
    )
    weighted_sums = np.array(
        [
            _dot(h.frequency_weights, d_p) + h.frequency_log_spend_sum - _dot(w * h.frequency, log_total),
            _dot(h.frequency_weights, d_q) - _dot(w, log_total),
            h.total_weight * q / v - _dot(w * shape, 1.0 / total),
        ]
    )
    return _mean_and_gradient(params, weighted_sums, log_likelihood, h.total_weight, penalizer)
