"""meta.model_fits on a real DuckDB: a later night reuses the last fit until its refit is due, under the same key
only; a re-run of the fitting night, a changed key or a fit that cannot be read back fits again."""

from datetime import date

import duckdb
import pytest

from pipelines.ml.model_fits import FITS_TABLE, refit_due, store_fit, stored_fit

FITTED = date(2026, 6, 30)


@pytest.fixture
def connection():
    with duckdb.connect(":memory:") as connection:
        yield connection


@pytest.mark.parametrize(
    ("days_later", "refit_days", "due"),
    [(0, 7, True), (1, 7, False), (6, 7, False), (7, 7, True), (30, 7, True), (-1, 7, True), (1, 1, True)],
)
def test_a_refit_is_due_on_the_fitting_night_before_it_and_after_refit_days(days_later, refit_days, due):
    assert refit_due(FITTED, date.fromordinal(FITTED.toordinal() + days_later), refit_days) is due


def test_a_later_night_scores_with_the_last_fit_under_the_same_key(connection):
    assert stored_fit(connection, "churn", "k1", date(2026, 7, 2), 7) is None, "nothing stored yet"
    store_fit(connection, "churn", "k1", FITTED, "churn-2026-06-30-abcd", {"trees": [1, 2, 3]})
    stored = stored_fit(connection, "churn", "k1", date(2026, 7, 2), 7)
    assert stored is not None and stored.fit == {"trees": [1, 2, 3]}
    assert (stored.fitted_as_of, stored.refit_on) == (FITTED, date(2026, 7, 7))
    assert stored_fit(connection, "churn", "k2", date(2026, 7, 2), 7) is None, "another key: fit again"
    assert stored_fit(connection, "clv", "k1", date(2026, 7, 2), 7) is None, "another model's"
    assert stored_fit(connection, "churn", "k1", date(2026, 7, 2), 1) is None, "every night: never reused"
    assert stored_fit(connection, "churn", "k1", FITTED, 7) is None, "a re-run of the fitting night fits again"
    store_fit(connection, "churn", "k2", date(2026, 7, 7), "churn-2026-07-07-ef01", {"trees": [4]})
    assert connection.execute(f"select count(*), any_value(fit_key) from {FITS_TABLE}").fetchone() == (1, "k2")


def test_a_fit_that_cannot_be_read_back_is_fitted_again(connection):
    store_fit(connection, "churn", "k1", FITTED, "churn-2026-06-30-abcd", {"trees": [1]})
    connection.execute(f"update {FITS_TABLE} set payload = 'not a pickle'::blob")
    assert stored_fit(connection, "churn", "k1", date(2026, 7, 2), 7) is None
