"""meta.model_fits: each model's last fit, for the nights that score with it instead of fitting again.

With ``model_refit_days`` above 1, a model that supports it (churn, the behaviour segments, the basket rules, and the
lifetime value's and next best offers' checks) stores the fit a night made (``ModelOutput.fit``), and the nights
after it, until the refit is due, score tonight's customers with that fit instead of fitting and testing again: the
costly part of the run, at a million customers most of it.
A fit is reused only under the same key (``ModelOutput.fit_key``: the settings, features and library versions it depends
on) and only by a later night: a re-run of the night that fitted, or a night before it, fits again.

The fits are the warehouse's own bookkeeping, written only by the night: schema meta is published only through
pipelines/publish/snapshot.py's list of columns, which does not name this table, so a fit never leaves the
warehouse. A fit is a pickle of the model's objects (scikit-learn's estimators have no other complete format), so
reading one back runs what its writer put there: only this module writes the table, from the night's own fits,
and nothing from the landing zone, the settings or a user reaches it; whoever can write the warehouse file can
change every score anyway. A fit that cannot be read back (written by other code) is fitted again, never a
failed night.
"""

from __future__ import annotations

import logging
import pickle
from datetime import date, datetime, timedelta

import duckdb

from models_ml import StoredFit

log = logging.getLogger(__name__)

FITS_TABLE = "meta.model_fits"
_COLUMNS = (
    "model varchar primary key, fit_key varchar not null, fitted_as_of date not null, model_run_id varchar, "
    "stored_at timestamp, payload blob not null"
)


def ensure_model_fits(connection: duckdb.DuckDBPyConnection) -> None:
    connection.execute("create schema if not exists meta")
    connection.execute(f"create table if not exists {FITS_TABLE} ({_COLUMNS})")


def store_fit(
    connection: duckdb.DuckDBPyConnection, model: str, fit_key: str, fitted_as_of: date, model_run_id: str, fit: object
) -> None:
    """Keep ``fit`` as ``model``'s last fit, made on the night of ``fitted_as_of`` (replacing the one before)."""
    ensure_model_fits(connection)
    payload = pickle.dumps(fit, protocol=pickle.HIGHEST_PROTOCOL)
    connection.execute(
        f"insert or replace into {FITS_TABLE} (model, fit_key, fitted_as_of, model_run_id, stored_at, payload) "
        "values (?, ?, ?, ?, ?, ?)",
        [model, fit_key, fitted_as_of, model_run_id, datetime.now().replace(microsecond=0), payload],
    )


def refit_due(fitted_as_of: date, as_of: date, refit_days: int) -> bool:
    """Whether the night of ``as_of`` fits again rather than score with a fit made on ``fitted_as_of``: when the
    fit is ``refit_days`` old or older, or not older than tonight (a re-run of its night, or an earlier night)."""
    return not 0 < (as_of - fitted_as_of).days < refit_days


def stored_fit(
    connection: duckdb.DuckDBPyConnection, model: str, fit_key: str, as_of: date, refit_days: int
) -> StoredFit | None:
    """``model``'s last fit if the night of ``as_of`` may score with it: stored under ``fit_key`` and no refit
    due (:func:`refit_due`); else None, and the night fits."""
    if refit_days <= 1:
        return None
    stored = "select 1 from duckdb_tables() where schema_name = 'meta' and table_name = 'model_fits'"
    if not connection.execute(stored).fetchall():
        return None
    rows = connection.execute(
        f"select fitted_as_of, payload from {FITS_TABLE} where model = ? and fit_key = ?", [model, fit_key]
    ).fetchall()
    if not rows or refit_due(rows[0][0], as_of, refit_days):
        return None
    row = rows[0]
    try:
        fit = pickle.loads(row[1])
    except (pickle.UnpicklingError, AttributeError, EOFError, ImportError, IndexError, TypeError, ValueError) as error:
        log.warning("The stored %s fit of %s cannot be read back (%s): it is fitted again.", model, row[0], error)
        return None
    return StoredFit(row[0], row[0] + timedelta(days=refit_days), fit)
