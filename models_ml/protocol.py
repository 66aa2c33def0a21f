"""The protocol around a model: compare it with its baseline on data it did not see, and choose what to publish.

Every scoring model is judged against a simple baseline on held-out data (a later period for the lifetime-value
model, a later cutoff for churn), and the run publishes the model's scores only when the model does strictly
better on the figure that matters for its use (mean absolute error of spend, AUC). Otherwise, or when the data
cannot support the model at all, the run publishes the baseline's scores, and when there is not even a baseline,
no scores; in every case the :class:`Verdict` says why in plain words, for the model run.

Every model's run is one pure function from loaded frames to a :class:`ModelOutput` (the tables to write, the
verdict and the facts of the fit), so that an asset only loads, calls and writes. A model whose data cannot
support it raises :class:`~models_ml.validation.InsufficientDataError`; :func:`refusing` turns that into a run that
publishes nothing and says why, so that no model fails the night.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date

import polars as pl

from models_ml.validation import InsufficientDataError

__all__ = [
    "SCORE_SOURCES",
    "BaselineCheck",
    "Comparison",
    "ModelOutput",
    "StoredFit",
    "Verdict",
    "baseline_check",
    "compare",
    "fingerprint",
    "refuse",
    "refusing",
    "scored_with",
]

SCORE_SOURCES = ("model", "baseline", "none")
BASELINE_PUBLISHED = "The baseline's scores are published."


@dataclass(frozen=True)
class Verdict:
    """Whose scores a run publishes, the figures that decided it, and why in plain words.

    Attributes
    ----------
    score_source
        ``model``, ``baseline`` (the model did worse, could not be fitted, or could not be checked) or ``none``
        (not even a baseline could be made).
    beats_baseline
        Whether the model was shown to do better on held-out data; None when nothing was compared.
    metrics, baseline_metrics
        The held-out figures of the model and of the baseline (empty / None when not computed).
    notes
        Plain sentences for the model run: what was compared and why this source was published.
    """

    score_source: str
    beats_baseline: bool | None
    metrics: Mapping = field(default_factory=dict)
    baseline_metrics: Mapping | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.score_source not in SCORE_SOURCES:
            raise ValueError(f"Verdict: score_source must be one of {SCORE_SOURCES}, not {self.score_source!r}")


@dataclass(frozen=True)
class Comparison:
    """Whether a model beat its baseline on one held-out figure, and the sentence that says so."""

    beats: bool
    sentence: str


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def compare(
    metrics: Mapping,
    baseline_metrics: Mapping,
    figure: str,
    *,
    lower_is_better: bool,
    label: str,
    model: str = "the model",
) -> Comparison:
    """Does the model's held-out ``figure`` beat the baseline's, strictly?

    Parameters
    ----------
    metrics, baseline_metrics
        Held-out figures of the model and the baseline.
    figure
        The deciding figure, e.g. ``mae_spend`` or ``auc``.
    lower_is_better
        True for errors (MAE), False for scores (AUC).
    label
        The figure in words, e.g. ``"holdout mean absolute error of spend"``.
    model
        The model in words, for the sentence.

    Returns
    -------
    Comparison
        ``beats`` is False on a tie, a loss, or when either figure is missing or not finite: a figure that cannot
        be computed cannot show the model is better.
    """
    ours, theirs = metrics.get(figure), baseline_metrics.get(figure)
    if not (_finite(ours) and _finite(theirs)):
        missing = "the baseline's" if _finite(ours) else f"{model}'s"
        return Comparison(False, f"The {label} could not be computed for {missing} scores, so {model} cannot be "
                                 "shown to do better than the baseline.")  # fmt: skip
    beats = ours < theirs if lower_is_better else ours > theirs
    relation = ("below" if beats else "not below") if lower_is_better else ("above" if beats else "not above")
    return Comparison(beats, f"The {label} of {model}, {ours:.3f}, is {relation} the baseline's {theirs:.3f}.")


def refuse(
    reason: str, *, baseline: bool, baseline_metrics: Mapping | None = None, metrics: Mapping | None = None
) -> Verdict:
    """The verdict when the data cannot support the model: the baseline's scores if there are any, else none.

    Parameters
    ----------
    reason
        Why, in plain words (typically an :class:`~models_ml.validation.InsufficientDataError`'s ``reason``).
    baseline
        Whether the caller can publish a baseline's scores instead.
    baseline_metrics, metrics
        Held-out figures, when some were computed before the refusal; ``beats_baseline`` is False when the
        baseline has figures (the model was not shown to do better) and None when nothing was compared.
    """
    sentence = reason.strip().rstrip(".")
    outcome = BASELINE_PUBLISHED if baseline else "No scores are published this run."
    return Verdict(
        "baseline" if baseline else "none",
        None if baseline_metrics is None else False,
        dict(metrics or {}),
        None if baseline_metrics is None else dict(baseline_metrics),
        (f"{sentence[:1].upper()}{sentence[1:]}.", outcome),
    )


@dataclass(frozen=True)
class ModelOutput:
    """What one model run writes and records: the tables, whose scores they are and why, and the facts of the fit.

    Attributes
    ----------
    tables
        ml table name -> rows to write for the run's as-of date (no rows when nothing is published).
    verdict
        Score source, figures and notes; a model without a baseline to beat (RFM, tiers, segments) publishes its
        own scores with ``beats_baseline`` None.
    parameters
        What reproduces the run, for ml.model_runs.
    rows_used
        Customers (rows) the model was fitted or judged on.
    training_from, training_to
        The period of history the model read.
    fit, fit_key
        What a later night needs to score with this run's fit instead of fitting again (the ``model_refit_days``
        setting), and the fingerprint of what the fit depends on (settings, features, library versions): a night
        reuses a stored fit only under the same key. None for a run that made no fit worth keeping (a refusal, or
        a run that scored with an earlier fit).
    fitted_as_of
        The as-of date of the night whose fit made these scores, when it is an earlier night's; None when the run
        fitted its model itself.
    """

    tables: Mapping[str, pl.DataFrame]
    verdict: Verdict = field(default_factory=lambda: Verdict("model", None))
    parameters: Mapping = field(default_factory=dict)
    rows_used: int = 0
    training_from: date | None = None
    training_to: date | None = None
    fit: object | None = None
    fit_key: str | None = None
    fitted_as_of: date | None = None


@dataclass(frozen=True)
class StoredFit:
    """An earlier night's fit of a model (``ModelOutput.fit``), for a night that scores with it instead of fitting
    again: the as-of date of the night that made it, the night a refit is due (``model_refit_days``), the fit."""

    fitted_as_of: date
    refit_on: date
    fit: object


def fingerprint(**facts: object) -> str:
    """The key of a stored fit (``ModelOutput.fit_key``): a hash of the JSON of ``facts``, what the fit depends on
    besides the data (settings, features, library versions, the format of the stored fit)."""
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def scored_with(stored: StoredFit, verdict: Verdict, *, made: str = "fit", tonight: str = "") -> Verdict:
    """The verdict of a night that scores with an earlier night's fit: that night's ``verdict`` (its figures and
    choice), with a note saying when the fit (or what ``made`` names) was made and when the next refit is due,
    and ``tonight``, a sentence on what the night still did itself."""
    note = (
        f"Scored with the {made} made on the night of {stored.fitted_as_of.isoformat()} (its figures are that "
        f"night's); the next refit is due on the night of {stored.refit_on.isoformat()}."
    )
    return replace(verdict, notes=(*verdict.notes, f"{note} {tonight}" if tonight else note))


def refusing(attempt: Callable[[], ModelOutput], nothing: ModelOutput) -> ModelOutput:
    """``attempt()``; or, when the data cannot support the model, ``nothing`` with a verdict that says why.

    Parameters
    ----------
    attempt
        Fits and scores; raises :class:`~models_ml.validation.InsufficientDataError` when the data honour the
        contract but cannot support the model.
    nothing
        What the run writes then: every table with no rows, and the facts known before fitting.

    Only ``InsufficientDataError`` is caught: a frame that breaks a contract (``ValueError``) is a defect and fails
    loudly.
    """
    try:
        return attempt()
    except InsufficientDataError as error:
        return replace(nothing, verdict=refuse(error.reason, baseline=False))


@dataclass(frozen=True)
class BaselineCheck:
    """The content of a ``beats_baseline`` asset check: passed, why in words, and the figures that decided it."""

    passed: bool
    description: str
    metadata: dict


def baseline_check(verdict: Verdict, figure: str, *, lower_is_better: bool) -> BaselineCheck:
    """Did the run publish its model's scores because the model did better than the baseline on held-out data?

    Passes only when the model beat the baseline and its scores are published; otherwise the description is the
    run's notes (why the baseline's scores, or none, are published).
    """
    passed = bool(verdict.beats_baseline) and verdict.score_source == "model"
    comparison = "lower" if lower_is_better else "higher"
    description = (
        f"The model's {figure} on held-out data is {comparison} than the baseline's; its scores are published."
        if passed
        else " ".join(verdict.notes) or "The model did worse than its baseline; the baseline's scores are published."
    )
    metadata = {
        f"model_{figure}": verdict.metrics.get(figure),
        f"baseline_{figure}": (verdict.baseline_metrics or {}).get(figure),
        "score_source": verdict.score_source,
    }
    return BaselineCheck(passed, description, metadata)
