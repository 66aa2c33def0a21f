"""ml.model_runs: one row per model fit or scoring, with its parameters, its figures beside its baseline's, which
scores the run published (the model's, or the baseline's when the model did worse or failed) and which canonical
inputs fed it (``inputs``: the feature groups that had data, e.g. ``["sales"]`` when only sales exports exist)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime

import duckdb
import polars as pl

from models_ml import ModelOutput, Verdict
from pipelines import sql

ML_SCHEMA = "ml"

_COLUMNS = {
    "model_run_id": "varchar primary key",
    "model": "varchar",
    "as_of": "date",
    "run_id": "varchar",
    "parameters": "json",
    "metrics": "json",
    "rows_used": "bigint",
    "started_at": "timestamp",
    "finished_at": "timestamp",
    "training_from": "date",
    "training_to": "date",
    "baseline_metrics": "json",
    "beats_baseline": "boolean",
    "score_source": "varchar",
    "notes": "varchar",
    "duration_seconds": "double",
    "inputs": "json",
    "fitted_as_of": "date",
}


@dataclass
class ModelRun:
    """What a model asset reports about one fit: written to ml.model_runs by :func:`record_model_run`."""

    model: str
    as_of: date
    run_id: str
    started_at: datetime
    parameters: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    baseline_metrics: dict | None = None
    beats_baseline: bool | None = None
    score_source: str = "model"
    rows_used: int = 0
    training_from: date | None = None
    training_to: date | None = None
    notes: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    fitted_as_of: date | None = None

    def judged(self, verdict: Verdict) -> None:
        """Take the verdict of the model's protocol: whose scores are published, the figures and why."""
        self.score_source, self.beats_baseline = verdict.score_source, verdict.beats_baseline
        self.metrics = dict(verdict.metrics)
        self.baseline_metrics = None if verdict.baseline_metrics is None else dict(verdict.baseline_metrics)
        self.notes.extend(verdict.notes)

    def took(self, output: ModelOutput) -> None:
        """Take what the model's run function reports: its verdict and the facts of the fit."""
        self.judged(output.verdict)
        self.parameters = dict(output.parameters)
        self.rows_used = output.rows_used
        self.training_from, self.training_to = output.training_from, output.training_to
        self.fitted_as_of = output.fitted_as_of

    @property
    def verdict(self) -> Verdict:
        """The run as a verdict, with every note (the inputs' too), for the ``beats_baseline`` check."""
        return Verdict(self.score_source, self.beats_baseline, self.metrics, self.baseline_metrics, tuple(self.notes))

    @property
    def model_run_id(self) -> str:
        """``<model>-<as_of>-<dagster run id prefix>``."""
        return f"{self.model}-{self.as_of.isoformat()}-{self.run_id[:8]}"


def ensure_model_runs(connection: duckdb.DuckDBPyConnection) -> None:
    connection.execute(f"create schema if not exists {ML_SCHEMA}")
    columns = ", ".join(f"{name} {kind}" for name, kind in _COLUMNS.items())
    connection.execute(f"create table if not exists {ML_SCHEMA}.model_runs ({columns})")
    for name, kind in _COLUMNS.items():  # a warehouse made by an earlier version gains the new columns
        connection.execute(f"alter table {ML_SCHEMA}.model_runs add column if not exists {name} {kind.split()[0]}")


def record_model_run(connection: duckdb.DuckDBPyConnection, run: ModelRun) -> str:
    """Write a model run and return its id."""
    ensure_model_runs(connection)
    finished_at = datetime.now(run.started_at.tzinfo)
    values = {
        "model_run_id": run.model_run_id,
        "model": run.model,
        "as_of": run.as_of,
        "run_id": run.run_id,
        "parameters": _json(run.parameters),
        "metrics": _json(run.metrics),
        "rows_used": run.rows_used,
        "started_at": run.started_at,
        "finished_at": finished_at,
        "training_from": run.training_from,
        "training_to": run.training_to,
        "baseline_metrics": None if run.baseline_metrics is None else _json(run.baseline_metrics),
        "beats_baseline": run.beats_baseline,
        "score_source": run.score_source,
        "notes": _without_paths(" ".join(note if note.endswith((".", "?", "!")) else f"{note}." for note in run.notes))
        or None,
        "duration_seconds": (finished_at - run.started_at).total_seconds(),
        "inputs": _json(run.inputs),
        "fitted_as_of": run.fitted_as_of or run.as_of,
    }
    connection.execute(f"delete from {ML_SCHEMA}.model_runs where model_run_id = ?", [run.model_run_id])
    names = ", ".join(sql.identifier(name) for name in values)
    connection.execute(
        f"insert into {ML_SCHEMA}.model_runs ({names}) values ({', '.join('?' for _ in values)})", list(values.values())
    )
    return run.model_run_id


def write_scores(connection: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, run: ModelRun) -> None:
    """Replace the rows of the run's as-of date in ``ml.<table>`` with ``frame``, stamped with the as-of date and
    the model run's id (the table keeps every earlier as-of)."""
    as_of = run.as_of
    frame = frame.with_columns(as_of=pl.lit(as_of), model_run_id=pl.lit(run.model_run_id))
    connection.execute(f"create schema if not exists {ML_SCHEMA}")
    connection.register("_frame", frame.to_arrow())
    target = sql.qualified(ML_SCHEMA, sql.safe_name(table, "score table"))
    try:
        connection.execute(f"create table if not exists {target} as select * from _frame limit 0")
        # a score added by a newer version of the model becomes a new column; earlier as-ofs read null there
        for name, kind in connection.execute(
            "select column_name, column_type from (describe select * from _frame)"
        ).fetchall():
            connection.execute(
                f"alter table {target} add column if not exists {sql.identifier(name)} {sql.column_type(kind)}"
            )
        # one transaction: a run killed here leaves the earlier scores of the as-of, never none
        connection.begin()
        try:
            connection.execute(f"delete from {target} where as_of = ?", [as_of])
            connection.execute(f"insert into {target} by name select * from _frame")
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
    finally:
        connection.unregister("_frame")


# An absolute path (POSIX or Windows) inside a sentence, e.g. from an error a library raised while fitting.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])(?:[A-Za-z]:[\\/]|/)(?:[^\s/\\'\"]+[\\/])+([^\s/\\'\"]*)")


def _without_paths(text: str) -> str:
    """Notes are published: an absolute path in one (a library's error message) keeps only its last part, so the
    snapshot never tells where the warehouse or the landing zone live."""
    return _ABSOLUTE_PATH.sub(lambda match: match.group(1) or "(path)", text)


def _json(value: object) -> str:
    return json.dumps(_clean(value), sort_keys=True, default=str)


def _clean(value: object) -> object:
    """NaN and infinities become null: JSON has no NaN."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value
