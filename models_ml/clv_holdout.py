"""Choose the lifetime-value scores to publish: purchase models against the run-rate baseline on a holdout.

The protocol (Fader, Hardie & Lee 2005a validate the BG/NBD the same way on CDNOW: calibrate on the first 39
weeks, forecast the next 39): every candidate is fitted on the customers' history up to a calibration cutoff,
predicts each customer's spend over the holdout months that follow, and is compared with what customers then
spent, beside the baseline (each customer's historical purchase rate times their average order value) on the same
customers. Every candidate is fitted (BG/NBD, MBG/NBD, Pareto/NBD), each as ``fit_clv`` fits it (lifetimes, the
likelihood maximised directly, penalised fits). Among those whose mean absolute error of spend is below the
baseline's, the one with the lowest is refitted on the whole history and its scores are published (on a tie, the
one tried first); the order of the candidates only breaks ties, it does not decide. If that one cannot be refitted,
the next best that beat the baseline is. If none beats the baseline, or the data cannot support any model (nobody
bought before the calibration cutoff, no candidate can be fitted, nobody bought in the holdout), the baseline's
scores are published, and the notes say why in plain words. A fit is never judged by its optimiser's convergence
flag, only by what it predicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from importlib.metadata import version

import polars as pl

from models_ml.clv import (
    DAYS_PER_MONTH,
    DEFAULT_PENALIZERS,
    MATRIX_SCHEMA,
    PURCHASE_MODELS,
    ClvFit,
    ClvFitError,
    baseline_clv,
    baseline_purchases,
    evaluate_holdout,
    fit_clv,
    frequency_recency_matrix,
    predict_clv,
    predict_purchases,
)
from models_ml.protocol import (
    BASELINE_PUBLISHED,
    Comparison,
    ModelOutput,
    StoredFit,
    Verdict,
    compare,
    fingerprint,
    refuse,
    refusing,
    scored_with,
)
from models_ml.validation import InsufficientDataError, validate_columns

__all__ = [
    "HOLDOUT_FIGURE",
    "CandidateRanking",
    "ClvCheck",
    "ClvChoice",
    "ClvInputs",
    "calibration_cutoff",
    "choose_clv",
    "clv_fit_key",
    "rank_candidates",
    "run_clv",
    "score_clv",
]

# The models forecast each customer's expected (mean) spend, and a mean forecast is judged by squared error: the
# absolute error is minimised by the median, which in a holdout where most customers buy nothing is zero, so it
# rewards the candidate that forecasts least (Gneiting 2011, "Making and evaluating point forecasts", JASA). On
# CDNOW it picked the MBG/NBD, 20% under the holdout's purchases, over a Pareto/NBD 15% under.
HOLDOUT_FIGURE = "rmse_spend"
_HOLDOUT_LABEL = "holdout root mean squared error of spend"
_SCORE_INPUT_COLUMNS = ("customer_id", "frequency", "recency", "T", "monetary_value")


@dataclass(frozen=True)
class ClvChoice:
    """What the lifetime-value run publishes and why.

    Attributes
    ----------
    scores
        One row per customer of ``current``: the columns of :func:`score_clv`.
    fit
        The fit on the whole history behind the scores, or None when the baseline's scores are published.
    matrix
        Expected purchases and P(alive) over a frequency x recency grid from ``fit`` (no rows without a fit).
    verdict
        Score source, holdout figures of the model and of the baseline, and the notes. ``metrics`` holds the
        holdout figures of the published candidate (else of the best that beat the baseline, else of the first
        one fitted), its ``purchase_model``, its ``calibration_parameters`` and ``candidates``: every candidate
        tried, with its figures and whether it beat the baseline, or why it failed.
    parameters
        For the model run: the fit's ``as_dict()`` (when there is one) and the holdout length.
    check
        The holdout check that chose (:class:`ClvCheck`): what a later night needs to publish without checking
        again (the ``model_refit_days`` setting).
    """

    scores: pl.DataFrame
    fit: ClvFit | None
    matrix: pl.DataFrame
    verdict: Verdict
    parameters: dict
    check: ClvCheck | None = None


@dataclass(frozen=True)
class ClvCheck:
    """The holdout check of :func:`choose_clv`, all a later night needs to publish without it: the candidates that
    beat the baseline, best first (each night refits them in that order on its own history), the figures and
    notes of the check, and the refusal when the data could not support a check at all.

    Attributes
    ----------
    ranked
        The candidates that beat the baseline on the holdout, best first.
    candidates
        Every candidate tried, with its figures and whether it beat the baseline, or why it failed.
    figures
        Per fitted candidate: its holdout figures, its name (``purchase_model``) and its ``calibration_parameters``,
        as the verdict's metrics report them.
    fallback
        The candidate whose figures are reported when none of ``ranked`` can be refitted: the best, else the
        first fitted (None without any).
    baseline_metrics, notes
        The baseline's holdout figures and the check's sentences.
    refusal
        The baseline's verdict when no check could be made (nobody bought before the calibration cutoff, or the
        baseline itself could not be computed on it); the rest is then empty.
    parameters
        The holdout length.
    """

    ranked: tuple[str, ...] = ()
    candidates: tuple[dict, ...] = ()
    figures: Mapping[str, dict] = field(default_factory=dict)
    fallback: str | None = None
    baseline_metrics: Mapping = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    refusal: Verdict | None = None
    parameters: Mapping = field(default_factory=dict)


@dataclass(frozen=True)
class CandidateRanking:
    """How each candidate's holdout figures compare with the baseline's, and the ones that beat it, best first.

    Attributes
    ----------
    comparisons
        Per candidate, in the order tried: whether its ``HOLDOUT_FIGURE`` is below the baseline's, and the
        sentence that says so.
    ranked
        The candidates that beat the baseline, lowest ``HOLDOUT_FIGURE`` first; on a tie, the one tried first.
    figures
        The ``HOLDOUT_FIGURE`` of each ranked candidate.
    """

    comparisons: dict[str, Comparison]
    ranked: tuple[str, ...]
    figures: dict[str, float]

    @property
    def best(self) -> str | None:
        """The candidate to publish, or None when none beat the baseline."""
        return self.ranked[0] if self.ranked else None

    @property
    def sentence(self) -> str | None:
        """Why the best was chosen, when more than one candidate beat the baseline."""
        if len(self.ranked) < 2:
            return None
        others = ", ".join(f"{model} {self.figures[model]:.3f}" for model in self.ranked[1:])
        return (
            f"Of the {len(self.ranked)} candidates that beat the baseline, {self.best} has the lowest"
            f" {_HOLDOUT_LABEL}, {self.figures[self.best]:.3f} ({others})."
        )


def rank_candidates(holdout_figures: Mapping[str, Mapping], baseline_metrics: Mapping) -> CandidateRanking:
    """Compare every candidate with the baseline on the holdout and rank those that beat it.

    The choice is model selection by holdout result: among the candidates whose ``HOLDOUT_FIGURE`` (root mean
    squared error of spend) is strictly below the baseline's, the lowest wins; the order of ``holdout_figures``
    (the order tried) only breaks exact ties, to the earlier. A candidate whose figure is missing or not finite
    cannot beat the baseline (:func:`~models_ml.protocol.compare`).

    Parameters
    ----------
    holdout_figures
        Per candidate, in the order tried, its holdout figures as ``evaluate_holdout`` returns them.
    baseline_metrics
        The baseline's holdout figures on the same customers.

    Returns
    -------
    CandidateRanking
    """
    comparisons = {
        model: compare(figures, baseline_metrics, HOLDOUT_FIGURE, lower_is_better=True, label=_HOLDOUT_LABEL,
                       model=model)
        for model, figures in holdout_figures.items()
    }  # fmt: skip
    # sorted() is stable, so candidates with equal figures stay in the order tried
    ranked = sorted(
        (model for model, comparison in comparisons.items() if comparison.beats),
        key=lambda model: holdout_figures[model][HOLDOUT_FIGURE],
    )
    figures = {model: float(holdout_figures[model][HOLDOUT_FIGURE]) for model in ranked}
    return CandidateRanking(comparisons=comparisons, ranked=tuple(ranked), figures=figures)


def score_clv(
    fit: ClvFit | None, current: pl.DataFrame, horizon_months: int, annual_discount_rate: float
) -> pl.DataFrame:
    """The published lifetime-value scores: the model's (``fit``), or the baseline's when ``fit`` is None.

    The baseline's 6-month spend and CLV sit beside them so every page can show the two together. Spend over 6 and
    12 months is expected purchases over that span times the expected spend per purchase, which does not depend on
    the span.

    Returns
    -------
    polars.DataFrame
        ``customer_id, frequency, recency, T, monetary_value``, the columns of ``predict_clv`` over the horizon,
        ``expected_purchases_6m``, ``expected_spend_6m``, ``expected_spend_12m``, ``baseline_expected_spend_6m``,
        ``baseline_clv`` and ``score_source`` (``model`` or ``baseline``), one row per customer in input order.
    """
    baseline = baseline_clv(current, horizon_months, annual_discount_rate)
    scores = predict_clv(fit, current, horizon_months, annual_discount_rate) if fit is not None else baseline

    def purchases_over(months: int, model: ClvFit | None) -> pl.Series:
        days = months * DAYS_PER_MONTH
        purchases = predict_purchases(model, current, days) if model is not None else baseline_purchases(current, days)
        return purchases["expected_purchases"]

    spend_per_purchase = scores["expected_spend_per_purchase"]
    six_months = purchases_over(6, fit)
    return current.select(*_SCORE_INPUT_COLUMNS).with_columns(
        *scores.drop("customer_id"),
        expected_purchases_6m=six_months,
        expected_spend_6m=six_months * spend_per_purchase,
        expected_spend_12m=purchases_over(12, fit) * spend_per_purchase,
        baseline_expected_spend_6m=purchases_over(6, None) * baseline["expected_spend_per_purchase"],
        baseline_clv=baseline["clv"],
        score_source=pl.lit("model" if fit is not None else "baseline"),
    )


def choose_clv(
    calibration: pl.DataFrame | None,
    holdout: pl.DataFrame | None,
    current: pl.DataFrame,
    *,
    holdout_months: int,
    horizon_months: int,
    annual_discount_rate: float,
    purchase_models: Sequence[str] = PURCHASE_MODELS,
    penalizers: Sequence[float] = DEFAULT_PENALIZERS,
    stored: StoredFit | None = None,
) -> ClvChoice:
    """Validate the candidates on the holdout, choose model or baseline, and score every customer of ``current``;
    given an earlier night's check (``stored``, from ``model_refit_days``), publish as it chose without checking
    again: its best candidates refitted on tonight's history, its figures, a note saying so.

    Parameters
    ----------
    calibration
        Summary (``fit_clv``'s contract, in days, with ``average_order_value`` for the baseline) as of the
        calibration cutoff: the run's cutoff less ``holdout_months``.
    holdout
        ``customer_id``, ``purchases``, ``spend``: what each customer did from the calibration cutoff to the run's
        cutoff (absent: nothing).
    current
        Summary as of the run's cutoff: the customers to score, and the history the published model is fitted on.
    holdout_months
        Length of the holdout, in months of 365.25 / 12 days.
    horizon_months, annual_discount_rate
        Of the published CLV, as for ``predict_clv``.
    purchase_models
        Candidates, in the order tried; the order only breaks exact ties of the holdout figure.
    penalizers
        As for ``fit_clv``.
    stored
        An earlier night's check (:class:`ClvCheck`), under the key of :func:`clv_fit_key` (the caller checks the
        key and that no refit is due); ``calibration`` and ``holdout`` are then not read (None will do).

    Returns
    -------
    ClvChoice

    Raises
    ------
    InsufficientDataError
        When not even the baseline can score ``current``: no customer, or no spend figure for anyone.
    ValueError
        When a frame breaks its contract, naming the column, or ``purchase_models`` is empty or names a candidate
        twice.
    """
    if stored is None:
        validate_columns(holdout, ("purchases", "spend"), "choose_clv", numeric=("purchases", "spend"))
    if not purchase_models or len(set(purchase_models)) != len(purchase_models):
        raise ValueError(f"choose_clv: purchase_models must name each candidate once, not {purchase_models!r}")
    if current.is_empty():
        raise InsufficientDataError(
            "no customer has a purchase occasion (a day with a positive net value) before the cutoff, so there is"
            " nobody to score"
        )
    check = (
        stored.fit
        if stored is not None
        else _holdout_check(calibration, holdout, holdout_months, purchase_models, penalizers)
    )
    choice = _publish(check, current, penalizers, horizon_months, annual_discount_rate)
    if stored is None:
        return choice
    tonight = "The model it chose was refitted on tonight's history." if choice.fit is not None else ""
    return replace(
        choice, verdict=scored_with(stored, choice.verdict, made="holdout check", tonight=tonight), check=None
    )


def _holdout_check(
    calibration: pl.DataFrame,
    holdout: pl.DataFrame,
    holdout_months: int,
    purchase_models: Sequence[str],
    penalizers: Sequence[float],
) -> ClvCheck:
    """The check of :func:`choose_clv`: every candidate fitted on the calibration period and judged on the
    holdout beside the baseline."""
    holdout = holdout.select("customer_id", "purchases", "spend")
    parameters: dict = {"holdout_months": holdout_months}
    if calibration.is_empty():
        reason = (
            f"no customer had bought before the calibration cutoff, {holdout_months} months before the run's"
            " cutoff: the history is shorter than the holdout, so no model can be checked against the baseline"
        )
        return ClvCheck(refusal=refuse(reason, baseline=True), parameters=parameters)
    try:
        baseline_metrics = evaluate_holdout(baseline_clv(calibration, holdout_months, 0.0), holdout)
    except InsufficientDataError as error:
        reason = f"the baseline cannot be computed on the calibration period, so no model can be checked ({error})"
        return ClvCheck(refusal=refuse(reason, baseline=True), parameters=parameters)

    # Nothing happened in the holdout: a model that says everyone has lapsed cannot lose, and stale exports look the
    # same, so no model can be shown to be better.
    nobody_bought = not baseline_metrics["total_actual_purchases"]
    tried = _fit_candidates(calibration, holdout, holdout_months, purchase_models, penalizers, first_only=nobody_bought)
    fitted = {candidate.model: candidate for candidate in tried if candidate.fit is not None}
    holdout_figures = {} if nobody_bought else {model: candidate.metrics for model, candidate in fitted.items()}
    ranking = rank_candidates(holdout_figures, baseline_metrics)
    candidates, notes = _describe_candidates(tried, ranking, holdout_months)
    return ClvCheck(
        ranked=ranking.ranked,
        candidates=tuple(candidates),
        figures={
            model: {**candidate.metrics, "purchase_model": model, "calibration_parameters": candidate.fit.as_dict()}
            for model, candidate in fitted.items()
        },
        fallback=ranking.best or next(iter(fitted), None),
        baseline_metrics=baseline_metrics,
        notes=tuple(notes),
        parameters=parameters,
    )


def _publish(
    check: ClvCheck,
    current: pl.DataFrame,
    penalizers: Sequence[float],
    horizon_months: int,
    annual_discount_rate: float,
) -> ClvChoice:
    """The scores the check chose: the best candidate that beat the baseline refitted on the whole history (if it
    cannot be, the next best), else the baseline's."""
    parameters = dict(check.parameters)

    def publish_baseline(verdict: Verdict) -> ClvChoice:
        scores = score_clv(None, current, horizon_months, annual_discount_rate)
        matrix = pl.DataFrame(schema=MATRIX_SCHEMA)
        return ClvChoice(scores=scores, fit=None, matrix=matrix, verdict=verdict, parameters=parameters, check=check)

    if check.refusal is not None:
        return publish_baseline(check.refusal)
    # The best that beat the baseline is published; if it cannot be refitted on the whole history, the next best.
    fit, notes = None, list(check.notes)
    for model in check.ranked:
        try:
            fit = fit_clv(current, penalizers, purchase_model=model)
            break
        except ClvFitError as error:
            notes.append(
                f"{model} beat the baseline on the holdout but could not be refitted on the whole history:"
                f" {error.reason}."
            )
    reported = fit.purchase_model if fit else check.fallback
    # the reported candidate's figures, its name and calibration parameters, then every candidate
    model_metrics = {**(check.figures[reported] if reported is not None else {}), "candidates": list(check.candidates)}
    if fit is None:
        return publish_baseline(
            Verdict("baseline", False, model_metrics, check.baseline_metrics, (*notes, BASELINE_PUBLISHED))
        )

    typical_age = float(current["T"].quantile(0.9))
    matrix = (
        frequency_recency_matrix(fit, T=typical_age, days=horizon_months * DAYS_PER_MONTH)
        if typical_age > 0
        else pl.DataFrame(schema=MATRIX_SCHEMA)
    )
    return ClvChoice(
        scores=score_clv(fit, current, horizon_months, annual_discount_rate),
        fit=fit,
        matrix=matrix,
        verdict=Verdict("model", True, model_metrics, check.baseline_metrics, (*notes, *fit.notes)),
        parameters={**fit.as_dict(), **parameters},
        check=check,
    )


@dataclass(frozen=True)
class _Tried:
    """One candidate on the calibration period: its fit and holdout figures, or why it could not be fitted."""

    model: str
    fit: ClvFit | None = None
    metrics: dict | None = None
    failure: str | None = None


def _fit_candidates(
    calibration: pl.DataFrame,
    holdout: pl.DataFrame,
    holdout_months: int,
    purchase_models: Sequence[str],
    penalizers: Sequence[float],
    *,
    first_only: bool,
) -> list[_Tried]:
    """Fit each candidate on the calibration period and measure it on the holdout; with ``first_only``, stop at the
    first that can be fitted (when nothing can be compared, fitting the others would only cost time)."""
    tried = []
    for model in purchase_models:
        try:
            fit = fit_clv(calibration, penalizers, purchase_model=model)
        except ClvFitError as error:
            tried.append(_Tried(model, failure=error.reason))
            continue
        metrics = evaluate_holdout(predict_clv(fit, calibration, holdout_months, 0.0), holdout)
        tried.append(_Tried(model, fit=fit, metrics=metrics))
        if first_only:
            break
    return tried


def _describe_candidates(
    tried: Sequence[_Tried], ranking: CandidateRanking, holdout_months: int
) -> tuple[list[dict], list[str]]:
    """Each candidate's record for the model run's ``candidates`` and its sentence for the notes, in the order
    tried, then why the best was chosen. A fitted candidate that ``ranking`` did not compare is one that nothing
    could be compared for: nobody bought in the holdout."""
    candidates, notes = [], []
    for candidate in tried:
        if candidate.fit is None:
            candidates.append({"purchase_model": candidate.model, "failure": candidate.failure})
            notes.append(f"On the calibration period, {candidate.failure}.")
            continue
        record = {"purchase_model": candidate.model, "method": candidate.fit.purchase_method}
        comparison = ranking.comparisons.get(candidate.model)
        if comparison is None:
            notes.append(
                f"No customer bought in the {holdout_months}-month holdout, so {candidate.model} cannot be shown to"
                " forecast better than the baseline (are the exports up to date?)."
            )
        else:
            record["beats_baseline"] = comparison.beats
            notes.append(comparison.sentence)
        candidates.append({**record, **candidate.metrics})
    if ranking.sentence:
        notes.append(ranking.sentence)
    return candidates, notes


def calibration_cutoff(as_of: date, holdout_months: int) -> tuple[date, int]:
    """The calibration cutoff, ``holdout_months`` before ``as_of``, and the holdout's length in days (the months
    in days of 365.25 / 12, rounded: 183 for 6 months)."""
    holdout_days = round(holdout_months * DAYS_PER_MONTH)
    return as_of - timedelta(days=holdout_days), holdout_days


@dataclass(frozen=True)
class ClvInputs:
    """What the lifetime-value run reads, as of its cutoff (pipelines/ml/features.py loads it).

    Attributes
    ----------
    as_of
        The run's cutoff.
    calibration, holdout, current
        As for :func:`choose_clv`; the calibration cutoff is :func:`calibration_cutoff` of ``as_of``. The
        calibration and holdout are None on a night that publishes with a stored check (they are not read).
    first_order_date
        The first order of the history (None without orders): where the history the model reads begins.
    """

    as_of: date
    calibration: pl.DataFrame | None
    holdout: pl.DataFrame | None
    current: pl.DataFrame
    first_order_date: date | None = None


# Bumped when what a stored check holds, or what it means, changes: a check stored by other code is never reused.
CLV_FIT_FORMAT = 1


def clv_fit_key(
    holdout_months: int,
    purchase_models: Sequence[str] = PURCHASE_MODELS,
    penalizers: Sequence[float] = DEFAULT_PENALIZERS,
) -> str:
    """The fingerprint of what a check depends on besides the data: the holdout, the candidates and penalisers,
    the versions of the libraries that fit them and the format of the stored check. A night reuses a stored check
    only under the same key."""
    return fingerprint(
        format=CLV_FIT_FORMAT,
        holdout_months=holdout_months,
        purchase_models=list(purchase_models),
        penalizers=list(penalizers),
        versions={name: version(name) for name in ("lifetimes", "scipy", "numpy")},
    )


def run_clv(
    inputs: ClvInputs,
    *,
    holdout_months: int,
    horizon_months: int,
    annual_discount_rate: float,
    stored: StoredFit | None = None,
) -> ModelOutput:
    """The lifetime-value run (``ml.clv_scores``, ``ml.clv_matrices``): :func:`choose_clv`, or no rows and the
    reason when not even the baseline can score anybody. A run that checks returns its check (``ModelOutput.fit``,
    under :func:`clv_fit_key`) for the nights that reuse it; given one (``stored``), the run publishes as it chose
    without checking again."""
    facts = {"rows_used": inputs.current.height, "training_from": inputs.first_order_date, "training_to": inputs.as_of}

    def attempt() -> ModelOutput:
        choice = choose_clv(
            inputs.calibration,
            inputs.holdout,
            inputs.current,
            holdout_months=holdout_months,
            horizon_months=horizon_months,
            annual_discount_rate=annual_discount_rate,
            stored=stored,
        )
        tables = {"clv_scores": choice.scores, "clv_matrices": choice.matrix}
        if stored is not None:
            return ModelOutput(tables, choice.verdict, choice.parameters, **facts, fitted_as_of=stored.fitted_as_of)
        return ModelOutput(tables, choice.verdict, parameters=choice.parameters, **facts, fit=choice.check,
                           fit_key=clv_fit_key(holdout_months))  # fmt: skip

    nothing = {
        "clv_scores": score_clv(None, inputs.current.head(0), horizon_months, annual_discount_rate),
        "clv_matrices": pl.DataFrame(schema=MATRIX_SCHEMA),
    }
    return refusing(attempt, ModelOutput(nothing, **facts))
