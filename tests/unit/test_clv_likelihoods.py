"""The likelihoods evaluated per distinct value (models_ml/clv_likelihoods.py) against lifetimes' own functions and
autograd's gradients of them, and the fits built on them against lifetimes' fitters."""

import numpy as np
import pytest
from autograd import value_and_grad
from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter
from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value

from models_ml import clv, clv_likelihoods


def _whole_day_histories(size: int, seed: int) -> tuple[np.ndarray, ...]:
    """Histories in whole days, as the pipeline's summaries are, so that they share x, t_x and T values; time
    scaled as lifetimes scales it (oldest age 1); some repeat buyers bought on their last day."""
    rng = np.random.default_rng(seed)
    age = rng.integers(1, 1_500, size).astype(float)
    frequency = np.minimum(rng.negative_binomial(1, 0.3, size), 60).astype(float)
    recency = np.where(frequency > 0, np.floor(age * rng.uniform(0, 1, size)), 0.0)
    at_end = (frequency > 0) & (rng.uniform(size=size) < 0.1)
    recency[at_end] = age[at_end]
    weights = rng.integers(1, 4, size).astype(float)
    return frequency, recency / age.max(), age / age.max(), weights


PURCHASE_MODELS = [
    (BetaGeoFitter, clv_likelihoods.bgnbd_objective),
    (ModifiedBetaGeoFitter, clv_likelihoods.mbgnbd_objective),
]


@pytest.mark.parametrize(("fitter", "objective"), PURCHASE_MODELS, ids=["BG/NBD", "MBG/NBD"])
@pytest.mark.parametrize("penalizer", [0.0, 0.01])
@pytest.mark.parametrize(
    "params", [(0.1, 0.1, 0.1, 0.1), (0.88, 0.08, 1.15, 3.38), (0.2, 3.0, 20.0, 0.4), (5.0, 0.001, 0.01, 50.0)]
)
def test_the_purchase_likelihoods_and_gradients_are_lifetimes_and_autograds(fitter, objective, penalizer, params):
    frequency, recency, age, weights = _whole_day_histories(4_000, seed=20241127)
    log_params = np.log(params)
    expected_value, expected_gradient = value_and_grad(fitter._negative_log_likelihood)(
        log_params, frequency, recency, age, weights, penalizer
    )
    histories, _ = clv_likelihoods.purchase_likelihood_args(frequency, recency, age, weights, penalizer)
    assert len(histories.recencies) < len(frequency) and len(histories.ages) < len(frequency)
    value, gradient = objective(log_params, histories, penalizer)
    assert value == pytest.approx(expected_value, rel=1e-12)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("penalizer", [0.0, 0.01])
@pytest.mark.parametrize("params", [(0.1, 0.1, 0.1), (4.63, 4.13, 0.6), (0.5, 12.0, 40.0)])
def test_the_spend_likelihood_and_gradient_are_lifetimes_and_autograds(penalizer, params):
    rng = np.random.default_rng(20241128)
    frequency = rng.integers(1, 40, 3_000).astype(float)
    spend = np.round(rng.gamma(3.0, 20.0, 3_000), 2) / 60.0
    weights = rng.integers(1, 3, 3_000).astype(float)
    log_params = np.log(params)
    expected_value, expected_gradient = value_and_grad(GammaGammaFitter._negative_log_likelihood)(
        log_params, frequency, spend, weights, penalizer
    )
    value, gradient = clv_likelihoods.gamma_gamma_objective(
        log_params, *clv_likelihoods.spend_likelihood_args(frequency, spend, weights, penalizer)
    )
    assert value == pytest.approx(expected_value, rel=1e-12)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-10, atol=1e-13)


@pytest.fixture(scope="module")
def cdnow():
    """lifetimes' CDNOW calibration summary with spend (2,357 customers, weeks)."""
    return load_cdnow_summary_data_with_monetary_value()


@pytest.mark.parametrize(("fitter", "objective"), PURCHASE_MODELS, ids=["BG/NBD", "MBG/NBD"])
def test_the_beta_geometric_fits_are_lifetimes_fits(cdnow, fitter, objective):
    frequency, recency, age = (cdnow[name].to_numpy().astype(float) for name in ("frequency", "recency", "T"))
    histories, weights = clv._distinct_rows(frequency=frequency, recency=recency, age=age)
    rows = (histories["frequency"], histories["recency"], histories["age"])
    fitted = clv._beta_geometric_fit(fitter, objective)(0.0, *rows, weights)
    reference = fitter().fit(*rows, weights=weights)
    # the same BFGS from the same start on the same function: only the order of the sums differs
    assert fitted.params_.to_dict() == pytest.approx(reference.params_.to_dict(), rel=1e-9)


def test_the_gamma_gamma_fit_is_lifetimes_fit(cdnow):
    repeat = cdnow[cdnow["frequency"] > 0]
    frequency, spend = repeat["frequency"].to_numpy().astype(float), repeat["monetary_value"].to_numpy()
    args = clv_likelihoods.spend_likelihood_args(frequency, spend, np.ones(len(spend)), 0.0)
    fitted = np.exp(clv._lifetimes_minimise(clv_likelihoods.gamma_gamma_objective, args, 3))
    reference = GammaGammaFitter().fit(frequency, spend)
    np.testing.assert_allclose(fitted, reference.params_[["p", "q", "v"]].to_numpy(), rtol=1e-9)
    # Fader & Hardie's published CDNOW estimates (note 025): p 6.25, q 3.74, v 15.44
    np.testing.assert_allclose(fitted, [6.25, 3.74, 15.44], rtol=2e-3)
