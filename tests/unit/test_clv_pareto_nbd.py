"""The Pareto/NBD fit against lifetimes' own: the same likelihood and maximum with far fewer evaluations (the BG/NBD's,
MBG/NBD's and Gamma-Gamma's are in test_clv_likelihoods.py)."""

import numpy as np
import polars as pl
import pytest
from autograd import grad
from lifetimes import BetaGeoFitter, ParetoNBDFitter
from lifetimes.datasets import load_cdnow_summary
from scipy.optimize import OptimizeResult
from scipy.special import gammaln

from models_ml import clv
from models_ml.clv import DIRECT_MAXIMUM_LIKELIHOOD, MAXIMUM_LIKELIHOOD, fit_clv, predict_purchases
from tests.unit.test_clv import PARETO_NBD_PARAMETERS, simulate_pareto_nbd_summary, simulate_summary

PARAMETERS = ("r", "alpha", "s", "beta")


@pytest.fixture(scope="module")
def cdnow_summary():
    """lifetimes' CDNOW calibration summary (2,357 customers, weeks), as fit_clv reads it."""
    summary = load_cdnow_summary()
    return pl.DataFrame(
        {
            "customer_id": summary.index.to_numpy(),
            "frequency": summary["frequency"].to_numpy(),
            "recency": summary["recency"].to_numpy(),
            "T": summary["T"].to_numpy(),
            "monetary_value": [None] * len(summary),
        },
        schema_overrides={"monetary_value": pl.Float64},
    )


def lifetimes_log_likelihood(params: dict[str, float], summary) -> float:
    """Summed over customers by lifetimes' own eq. 18, in the summary's time unit."""
    values = [params[name] for name in PARAMETERS]
    frequency, recency, age = (summary[name].to_numpy().astype(float) for name in ("frequency", "recency", "T"))
    return float(ParetoNBDFitter._conditional_log_likelihood(values, frequency, recency, age).sum())


def test_cdnow_pareto_nbd_equals_lifetimes_nelder_mead_to_four_significant_figures(cdnow_summary):
    fit = fit_clv(cdnow_summary, spend=False, purchase_model="Pareto/NBD")
    frequency, recency, age = (cdnow_summary[name].to_numpy() for name in ("frequency", "recency", "T"))
    reference = ParetoNBDFitter().fit(frequency, recency, age, initial_params=np.ones(4))
    expected = {name: float(reference.params_[name]) for name in PARAMETERS}
    assert fit.purchase_method == MAXIMUM_LIKELIHOOD and not fit.is_penalised
    assert fit.bgnbd == pytest.approx(expected, rel=1e-4)
    # Fader & Hardie's published CDNOW estimates (note 009): r 0.5533, alpha 10.5776, s 0.6061, beta 11.6650
    assert fit.bgnbd == pytest.approx({"r": 0.5533, "alpha": 10.5776, "s": 0.6061, "beta": 11.6650}, rel=1e-3)
    # The maximum found is at least as high as lifetimes'.
    assert lifetimes_log_likelihood(fit.bgnbd, cdnow_summary) >= lifetimes_log_likelihood(expected, cdnow_summary)
    assert fit.bgnbd_log_likelihood == pytest.approx(lifetimes_log_likelihood(fit.bgnbd, cdnow_summary), rel=1e-12)


@pytest.mark.parametrize(
    "params",
    [(0.5533, 10.5776, 0.6061, 11.6650), (0.9, 100.0, 0.6, 250.0), (1.7, 240.0, 4.3, 2817.0), (2.0, 5.0, 3.0, 1.0)],
    ids=["cdnow", "alpha below beta", "1M bench", "alpha above beta"],
)
def test_the_likelihood_of_the_distinct_pairs_is_lifetimes_likelihood_customer_by_customer(params):
    summary = simulate_pareto_nbd_summary(5_000, seed=20240610, parameters=PARETO_NBD_PARAMETERS)
    # whole days, as the pipeline's summaries are, so that histories share (x, t_x) and (x, T) pairs
    frequency, recency, age = (np.floor(summary[name].to_numpy()) for name in ("frequency", "recency", "T"))
    histories = clv._ParetoNBDHistories.of(frequency, recency, age, np.ones(len(frequency)))
    assert len(histories.recency) < len(frequency) and len(histories.age) < len(frequency)
    fast = clv._pareto_nbd_log_likelihoods(np.array(params), histories)
    with np.errstate(all="ignore"):
        reference = ParetoNBDFitter._conditional_log_likelihood(params, frequency, recency, age)
    # lifetimes gives NaN for some customers who bought at T (see _bought_at_the_end); they are surely alive
    at_end = recency >= age
    assert np.isfinite(fast).all()
    np.testing.assert_allclose(fast[~at_end], reference[~at_end], rtol=1e-12)
    r, alpha, s, beta = params
    x, T = frequency[at_end], age[at_end]
    alive = (gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
             - (r + x) * np.log(alpha + T) - s * np.log(beta + T))  # fmt: skip
    np.testing.assert_allclose(fast[at_end], alive, rtol=1e-12)


def test_central_differences_give_the_exact_gradient_to_eight_digits():
    # Checked where autograd can differentiate exactly: the BG/NBD's likelihood on simulated histories.
    rng = np.random.default_rng(20240611)
    age = rng.uniform(0.1, 1.0, 2_000)
    frequency = rng.poisson(3, 2_000).astype(float)
    recency = np.where(frequency > 0, age * rng.uniform(0, 1, 2_000), 0.0)
    args = (frequency, recency, age, np.ones(2_000), 0.0)
    log_params = np.log([0.9, 0.3, 1.2, 3.6])
    value, gradient = clv._central_differences(BetaGeoFitter._negative_log_likelihood)(log_params, *args)
    exact = grad(BetaGeoFitter._negative_log_likelihood)(log_params, *args)
    assert value == BetaGeoFitter._negative_log_likelihood(log_params, *args)
    np.testing.assert_allclose(gradient, exact, rtol=1e-8, atol=1e-10)


def test_when_the_pareto_nbd_fit_gives_up_the_likelihood_is_maximised_directly(monkeypatch):
    summary = simulate_pareto_nbd_summary(3_000, seed=20240612, parameters=PARETO_NBD_PARAMETERS)
    converged = fit_clv(summary, spend=False, purchase_model="Pareto/NBD")
    monkeypatch.setattr(clv, "_PARETO_NBD_OPTIONS", {**clv._PARETO_NBD_OPTIONS, "maxiter": 2})
    fit = fit_clv(summary, spend=False, purchase_model="Pareto/NBD")
    assert fit.purchase_method == DIRECT_MAXIMUM_LIKELIHOOD and not fit.is_penalised
    assert fit.notes[0].startswith("Pareto/NBD was not usable with no penalty, it did not converge (")
    assert fit.notes[0].endswith("; refitted with the likelihood maximised directly")
    # the direct fit, from two starts, finds the same maximum
    assert fit.bgnbd == pytest.approx(converged.bgnbd, rel=1e-3)
    assert fit.bgnbd_log_likelihood == pytest.approx(converged.bgnbd_log_likelihood, rel=1e-9)


def test_pareto_nbd_forecasts_are_lifetimes_customer_by_customer():
    summary = simulate_pareto_nbd_summary(3_000, seed=20240613, parameters=PARETO_NBD_PARAMETERS)
    frequency, recency, age = (np.floor(summary[name].to_numpy()) for name in ("frequency", "recency", "T"))
    # some repeat buyers bought at T, whom lifetimes cannot always score (see _bought_at_the_end)
    at_end = (frequency > 0) & (np.arange(len(frequency)) % 10 == 0)
    recency = np.where(at_end, age, recency)
    model = clv._purchase_fitter("Pareto/NBD", PARETO_NBD_PARAMETERS)
    r, alpha, s, beta = (PARETO_NBD_PARAMETERS[name] for name in PARAMETERS)
    forecast = clv._purchases_forecast(model, frequency, recency, age)
    for days in (0.0, 30.0, 182.625, 365.25):
        expected = forecast(days)
        with np.errstate(all="ignore"):
            reference = model.conditional_expected_number_of_purchases_up_to_time(days, frequency, recency, age)
        np.testing.assert_allclose(expected[~at_end], reference[~at_end], rtol=1e-10)
        # Fader & Hardie note 009, eq. 41 with P(alive) = 1
        x, T = frequency[at_end], age[at_end]
        alive = (r + x) * (beta + T) / ((alpha + T) * (s - 1)) * (1 - ((beta + T) / (beta + T + days)) ** (s - 1))
        np.testing.assert_allclose(expected[at_end], alive, rtol=1e-10)
    p_alive = clv._p_alive(model, frequency, recency, age)
    np.testing.assert_allclose(p_alive[~at_end], model.conditional_probability_alive(frequency, recency, age)[~at_end])
    assert (p_alive[at_end] == 1).all()


# --- Purchases with one dropout pattern: the s, beta -> infinity ridge -------------------------------------------


def ridge_path(gains: list[float], s_steps: list[float], customers: float = 1000.0) -> list[OptimizeResult]:
    """L-BFGS-B iterates for ``_RidgeStop``: the mean negative log-likelihood falling so that the total
    log-likelihood gains ``gains`` nats an iteration, while log s and log beta move by ``s_steps``."""
    value, log_s, path = 1.0, 0.0, []
    for gain, step in zip(gains, s_steps, strict=True):
        value, log_s = value - gain / customers, log_s + step
        path.append(OptimizeResult(fun=value, x=np.array([0.5, -1.0, log_s, log_s + 0.3])))
    return path


def stops_at(path: list[OptimizeResult], customers: float = 1000.0, lost: bool = False) -> int | None:
    ridge = clv._RidgeStop(customers)
    for iteration, result in enumerate(path, start=1):
        try:
            ridge(result)
        except StopIteration:
            assert (ridge.stopped, ridge.lost) == (not lost, lost)
            return iteration
    assert not (ridge.stopped or ridge.lost)
    return None


def test_a_pareto_nbd_fit_stops_on_the_ridge_only_when_s_and_beta_climb_for_next_to_nothing_or_when_lost():
    # ten iterations after the first, s and beta up, 0.009 nats in all: stop
    assert stops_at(ridge_path([1.0] + [0.0009] * 20, [0.05] * 21)) == 11
    # the same gains over 10,000 customers are 0.09 nats: a likelihood still rising measurably goes on
    assert stops_at(ridge_path([1.0] + [0.0009] * 20, [0.05] * 21), customers=10_000.0) is None
    # as slow, but s and beta not climbing (an ordinary slow approach to a maximum): go on
    assert stops_at(ridge_path([1.0] + [0.0009] * 20, [0.0] * 21)) is None
    assert stops_at(ridge_path([1.0] + [0.0009] * 20, [-0.05] * 21)) is None
    # climbing for a gain worth having (0.05 nats in ten iterations): go on
    assert stops_at(ridge_path([1.0] + [0.005] * 20, [0.05] * 21)) is None
    # an iterate worse than the one before (the line search misled by likelihoods that are not finite): lost
    assert stops_at(ridge_path([1.0, 0.5, -3000.0, 0.5], [0.05] * 4), lost=True) == 3
    assert stops_at(ridge_path([1.0, 0.5, float("nan"), 0.5], [0.05] * 4), lost=True) == 3


def test_the_pareto_nbd_fit_on_purchases_with_one_dropout_pattern_stops_on_its_ridge_and_says_so():
    # BG/NBD-drawn purchases: the Pareto/NBD fits them best as s, beta -> infinity (docs/models.md)
    fit = fit_clv(simulate_summary(1_000, seed=1), spend=False, purchase_model="Pareto/NBD")
    assert (fit.purchase_method, fit.is_penalised) == (MAXIMUM_LIKELIHOOD, False)
    assert fit.bgnbd["s"] > 50, "stopped on the ridge, where the dropout rates hardly vary (1 / sqrt(s) < 15%)"
    assert fit.notes == (
        "Pareto/NBD: the likelihood was still rising, by less than 0.01 in 10 iterations, as s and beta grew together"
        f" (s = {fit.bgnbd['s']:.4g}): customers drop out at nearly one rate, which the model reaches only as s and"
        " beta grow without bound; the fit stopped there",
    )


@pytest.mark.slow
def test_where_the_pareto_nbd_stops_on_its_ridge_climbing_on_would_change_next_to_nothing(monkeypatch):
    # Measured when written: stopped after 4 s, the climb on to its end 40 s (and 180 s at 5,000 customers).
    summary = simulate_summary(1_000, seed=1)
    stopped = fit_clv(summary, spend=False, purchase_model="Pareto/NBD")
    monkeypatch.setattr("models_ml.clv._RIDGE_NATS", 0.0)
    climbed = fit_clv(summary, spend=False, purchase_model="Pareto/NBD")
    assert climbed.bgnbd["s"] > stopped.bgnbd["s"]
    assert not any(note.startswith("Pareto/NBD: the likelihood was still rising") for note in climbed.notes)
    assert 0 <= climbed.bgnbd_log_likelihood - stopped.bgnbd_log_likelihood < 0.01
    ahead, on = (predict_purchases(fit, summary, 180.0) for fit in (stopped, climbed))
    for column in ("expected_purchases", "p_alive"):
        assert ahead[column].to_numpy() == pytest.approx(on[column].to_numpy(), rel=2e-3), column
