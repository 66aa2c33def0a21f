"""What the night records about its own health, for the Model quality and Data health pages.

The pages read only the published snapshot, so what they show of a run is written by the run into the warehouse's
bookkeeping (schema meta), one set of rows per run:

- ``meta.readiness``: what the data supports as of the run's date, one verdict per capability
  (:func:`pipelines.readiness.readiness`);
- ``meta.dbt_test_results``: every dbt data test of each dbt build step, with its status and failing-row count,
  read from dbt's run_results.json and manifest through :func:`pipelines.diagnosis.dbt_failures`;
- ``meta.source_freshness``: each contract's newest file against its cadence
  (:func:`pipelines.ingest.freshness.source_freshness`).

The snapshot's allowlist (``PUBLISHED_META``) publishes them (``HEALTH_TABLES``). What is recorded is
codes, counts, the checks' own words and file names relative to the landing zone: never a row's values (a dbt
error's quoted text is masked) nor where the landing zone or the warehouse live.

Recording is bookkeeping: when it fails, the night goes on and publishes, with a warning in the run's log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from pipelines import sql
from pipelines.diagnosis import dbt_error, dbt_failures
from pipelines.ingest.contracts import BUILT_IN_DIR, load_contracts
from pipelines.ingest.freshness import source_freshness
from pipelines.publish.snapshot import HEALTH_TABLES
from pipelines.readiness import readiness
from pipelines.resources import Warehouse
from pipelines.settings import Settings

META_SCHEMA = "meta"
# The statuses dbt gives a test in run_results.json.
TEST_STATUSES = ("pass", "warn", "fail", "error", "skipped")
MESSAGE_LENGTH = 200

_TABLES: dict[str, dict[str, str]] = {
    "readiness": {
        "run_id": "varchar",
        "as_of": "date",
        "capability": "varchar",
        "status": "varchar",
        "reason": "varchar",
        "recorded_at": "timestamp",
    },
    "dbt_test_results": {
        "run_id": "varchar",
        "step": "varchar",
        "test_name": "varchar",
        "model": "varchar",
        "column_name": "varchar",
        "status": "varchar",
        "failures": "bigint",
        "message_short": "varchar",
        "recorded_at": "timestamp",
    },
    "source_freshness": {
        "run_id": "varchar",
        "source_table": "varchar",
        "cadence": "varchar",
        "late": "boolean",
        "last_file": "varchar",
        "last_file_at": "timestamp",
        "message": "varchar",
    },
}

# The tables for the snapshot's allowlist (pipelines/publish/snapshot.py PUBLISHED_META), every column as it is.
assert tuple(_TABLES) == HEALTH_TABLES, "the snapshot publishes exactly the tables recorded here"

# Text in quotes inside a database error is a value from the data or a path ('abc', "/srv/crm/..."): masked.
_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")

log = dg.get_dagster_logger("health")


def _now() -> datetime:
    """UTC wall time, as the warehouse stores timestamps."""
    return datetime.now(UTC).replace(tzinfo=None)


def _replace_rows(
    connection: duckdb.DuckDBPyConnection, table: str, where: Mapping[str, Any], rows: Sequence[Sequence[Any]]
) -> int:
    """Replace the rows of ``meta.<table>`` that match ``where`` (the run, the step) with ``rows``, in one
    transaction: a failure leaves the rows recorded before, never half of them."""
    columns = _TABLES[table]
    target = sql.qualified(META_SCHEMA, table)
    definition = ", ".join(f"{sql.identifier(name)} {kind}" for name, kind in columns.items())
    connection.execute(f"create schema if not exists {sql.identifier(META_SCHEMA)}")
    connection.execute(f"create table if not exists {target} ({definition})")
    condition = " and ".join(f"{sql.identifier(name)} = ?" for name in where)
    names = ", ".join(sql.identifier(name) for name in columns)
    placeholders = ", ".join("?" for _ in columns)
    connection.begin()
    try:
        connection.execute(f"delete from {target} where {condition}", list(where.values()))
        if rows:
            connection.executemany(f"insert into {target} ({names}) values ({placeholders})", [list(r) for r in rows])
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    return len(rows)


# --- readiness and freshness, recorded by the publish step -----------------------------------------------------


def readiness_rows(connection: duckdb.DuckDBPyConnection, settings: Settings, as_of: date, run_id: str) -> list[tuple]:
    """meta.readiness rows: one verdict per capability of what the raw tables support as of ``as_of``."""
    recorded_at = _now()
    found = readiness(connection, as_of, settings)
    return [
        (run_id, as_of, verdict.capability, verdict.status, verdict.reason, recorded_at) for verdict in found.verdicts
    ]


def freshness_rows(settings: Settings, run_id: str, now: datetime) -> list[tuple]:
    """meta.source_freshness rows: each contract's newest file in the landing zone against its cadence at ``now``
    (the file named relative to the landing zone, as :mod:`pipelines.ingest.freshness` names it)."""
    contracts = load_contracts(BUILT_IN_DIR, settings.contracts_dir)
    rows = []
    for item in source_freshness(contracts, settings.landing_dir, now):
        arrived = item.newest_modified_at.astimezone(UTC).replace(tzinfo=None) if item.newest_modified_at else None
        rows.append(
            (run_id, item.source_table, item.cadence or None, item.late, item.newest_file, arrived, item.message)
        )
    return rows


def record_health(
    connection: duckdb.DuckDBPyConnection, settings: Settings, as_of: date, run_id: str
) -> dict[str, int | None]:
    """Record the run's readiness verdicts and source freshness in meta.readiness and meta.source_freshness.

    Never raises: a part that fails is logged as a warning and left as it was (its count is None), so that the
    night still publishes. Returns the rows recorded per table.
    """
    parts = {
        "readiness": lambda: readiness_rows(connection, settings, as_of, run_id),
        "source_freshness": lambda: freshness_rows(settings, run_id, datetime.now(UTC)),
    }
    recorded: dict[str, int | None] = {}
    for table, rows in parts.items():
        try:
            recorded[table] = _replace_rows(connection, table, {"run_id": run_id}, rows())
        except Exception as error:  # bookkeeping for the pages must not stop the night
            log.warning(f"meta.{table} was not recorded for run {run_id}: {type(error).__name__}: {error}")
            recorded[table] = None
    return recorded


# --- dbt tests, recorded after each dbt step ---------------------------------------------------------------------


def short_message(status: str, message: str) -> str | None:
    """A test result's words for the page: dbt's own message ("Got 3 results, configured to fail if != 0"), or for
    an error the database's first line without dbt's header; quoted text (values, paths) masked; None for a pass."""
    if status == "pass":
        return None
    words = dbt_error(message)[0] if status == "error" else next(iter(message.strip().splitlines()), "")
    words = _QUOTED.sub(lambda quoted: f"{quoted.group()[0]}…{quoted.group()[0]}", words).strip()
    if not words or words == "no message":
        return None
    return words if len(words) <= MESSAGE_LENGTH else words[: MESSAGE_LENGTH - 1] + "…"


def dbt_test_rows(run_id: str, step: str, run_results: Mapping[str, Any], manifest: Mapping[str, Any]) -> list[tuple]:
    """meta.dbt_test_results rows of one dbt invocation: one per data test it ran (unit tests are not data)."""
    recorded_at = _now()
    return [
        (run_id, step, result.name, result.shown_relation, result.column, result.status, result.failures,
         short_message(result.status, result.message), recorded_at)
        for result in dbt_failures(run_results, manifest, test_statuses=TEST_STATUSES)
        if result.resource_type == "test"
    ]  # fmt: skip


def record_dbt_tests(warehouse: Warehouse, run_id: str, step: str, target_dir: Path) -> int | None:
    """Record the data tests of the dbt invocation whose target folder is ``target_dir`` (its run_results.json
    and manifest.json) as the step ``step`` of the run, once dbt has let go of the warehouse. Never raises: a
    failure is logged as a warning and the count is None."""
    try:
        artifacts = [json.loads((Path(target_dir) / name).read_text(encoding="utf-8"))
                     for name in ("run_results.json", "manifest.json")]  # fmt: skip
        rows = dbt_test_rows(run_id, step, *artifacts)
        with warehouse.connect() as connection:
            return _replace_rows(connection, "dbt_test_results", {"run_id": run_id, "step": step}, rows)
    except Exception as error:  # bookkeeping for the pages must not stop the night
        log.warning(f"meta.dbt_test_results was not recorded for step {step}: {type(error).__name__}: {error}")
        return None
