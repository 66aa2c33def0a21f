"""One publish, start to end, without Dagster: write the snapshot, measure it against the current one, and make
it current or hold it back.

1. The published runs the warehouse knows (meta.published_runs) are brought up to date with history.json (a held
   run accepted since, a run rolled back).
2. The snapshot is written (the allowlist of :mod:`pipelines.publish.snapshot`); while it is still a partial file,
   its headline figures, what changed since the current snapshot (meta.run_changes) and its formula-like text
   values (meta.formula_payloads) are measured and stored in it and in the warehouse. The contact details go to a
   file of their own beside it (:mod:`pipelines.publish.contacts`), which follows the snapshot wherever it goes.
3. The guard (:mod:`pipelines.publish.guard`) compares the figures with the current snapshot's: within the factor
   the snapshot is made current and recorded in meta.published_runs; beyond it, held back in held.json.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from pipelines import sql
from pipelines.exports import formula_payloads
from pipelines.publish import guard
from pipelines.publish.changes import compute_changes, record_changes
from pipelines.publish.contacts import contacts_name, prune_contacts, write_contacts
from pipelines.publish.snapshot import (
    PUBLISHED_SCHEMAS,
    current_snapshot,
    prune_snapshots,
    snapshot_name,
    write_snapshot,
)

PREVIOUS_CATALOG = "previous"
PUBLISHED_RUNS_COLUMNS = "run_id varchar, as_of date, snapshot varchar, published_at timestamp, figures json"
FORMULA_PAYLOADS_COLUMNS = 'run_id varchar, table_name varchar, column_name varchar, "values" bigint'


@dataclasses.dataclass
class Release:
    """What a publish did: the snapshot written, its rows per table and figures, and whether it was held back."""

    target: Path
    rows: dict[str, int]
    figures: dict
    changes: dict
    formula_payloads: list[tuple[str, str, int]]
    held: dict | None = None
    message: str = ""
    removed: list[Path] = dataclasses.field(default_factory=list)
    contacts: Path | None = None  # the contacts file written beside the snapshot (pipelines/publish/contacts.py)
    contacts_rows: int | None = None


def sync_published_runs(connection: duckdb.DuckDBPyConnection, published_dir: Path) -> None:
    """meta.published_runs holds every run made current per history.json (runs accepted from held.json since the
    last publish included), without the runs a rollback took back."""
    connection.execute("create schema if not exists meta")
    connection.execute(f"create table if not exists meta.published_runs ({PUBLISHED_RUNS_COLUMNS})")
    history = guard.read_history(published_dir)
    taken_back = [entry["run_id"] for entry in history["rolled_back"]]
    if taken_back:
        connection.execute("delete from meta.published_runs where list_contains(?, run_id)", [taken_back])
    for entry in history["published"]:
        _record_published(connection, entry)


def _record_published(connection: duckdb.DuckDBPyConnection, entry: dict, catalog: str | None = None) -> None:
    table = f"{sql.identifier(catalog)}.meta.published_runs" if catalog else "meta.published_runs"
    connection.execute(f"delete from {table} where run_id = ?", [entry["run_id"]])
    connection.execute(
        f"insert into {table} values (?, ?, ?, ?, ?)",
        [
            entry["run_id"],
            entry["as_of"],
            entry["snapshot"],
            _utc(entry.get("published_at")),
            json.dumps(entry.get("figures"), default=str),
        ],
    )


def publish(
    connection: duckdb.DuckDBPyConnection,
    published_dir: Path,
    *,
    as_of: date,
    run_id: str,
    guard_factor: float = 3.0,
    private_files: bool = True,
    keep_snapshots: int = 7,
) -> Release:
    """Write the run's snapshot and make it current, or hold it back when a headline figure moved by more than
    ``guard_factor`` since the current snapshot (no guard on a first publish). See the module's docstring."""
    published_dir = Path(published_dir)
    published_dir.mkdir(parents=True, exist_ok=True)
    sync_published_runs(connection, published_dir)
    target = published_dir / snapshot_name(as_of, run_id)
    previous = current_snapshot(published_dir)
    if previous is not None and not Path(previous["path"]).exists():
        previous = None  # the current snapshot's file is gone: nothing to compare with
    measured: dict = {}
    published_at = datetime.now(UTC).replace(tzinfo=None)

    def finish(connection: duckdb.DuckDBPyConnection, catalog: str) -> None:
        previous_catalog = None
        if previous is not None:
            connection.execute(
                f"attach {sql.string(previous['path'])} as {sql.identifier(PREVIOUS_CATALOG)} (read_only)"
            )
            previous_catalog = PREVIOUS_CATALOG
        try:
            figures = guard.headline_figures(connection, catalog)
            before = None
            if previous is not None:
                before = {**previous, "figures": guard.headline_figures(connection, PREVIOUS_CATALOG)}
            changes = compute_changes(connection, catalog, figures, previous_catalog, before)
            responsible = guard.responsible_rows(connection, run_id, catalog)
        finally:
            if previous_catalog:
                connection.execute(f"detach {sql.identifier(PREVIOUS_CATALOG)}")
        payloads = formula_payloads(connection, catalog, (*PUBLISHED_SCHEMAS, "meta"))
        for where in (None, catalog):
            record_changes(connection, where, run_id, as_of, changes)
            _record_formula_payloads(connection, where, run_id, payloads)
        connection.execute(
            f"create table if not exists {sql.identifier(catalog)}.meta.published_runs ({PUBLISHED_RUNS_COLUMNS})"
        )
        _record_published(
            connection,
            {
                "run_id": run_id,
                "as_of": as_of,
                "snapshot": target.name,
                "published_at": published_at,
                "figures": figures,
            },
            catalog,
        )
        measured.update(
            figures=figures,
            previous_figures=(before or {}).get("figures"),
            changes=changes,
            responsible=responsible,
            payloads=payloads,
        )

    rows = write_snapshot(connection, target, run_id=run_id, private_files=private_files, finish=finish)
    release = Release(target, rows, measured["figures"], measured["changes"], measured["payloads"])
    contacts = published_dir / contacts_name(as_of, run_id)
    release.contacts_rows = write_contacts(connection, contacts)
    release.contacts = contacts if release.contacts_rows is not None else None
    reasons = guard.guard_reasons(measured["figures"], measured["previous_figures"], guard_factor)
    entry = {"run_id": run_id, "as_of": as_of.isoformat(), "snapshot": target.name, "figures": measured["figures"]}
    if release.contacts is not None:
        entry["contacts"] = release.contacts.name
    if reasons:
        release.held = {
            **entry,
            "previous": {key: previous.get(key) for key in ("run_id", "as_of", "snapshot")},
            "previous_figures": measured["previous_figures"],
            "reasons": reasons,
            "guard_factor": guard_factor,
            "responsible": measured["responsible"],
            "changes": measured["changes"],
        }
        guard.hold(published_dir, release.held)
        release.message = guard.held_message(release.held, guard_factor)
    else:
        pointer = guard.make_current(published_dir, entry, {"changes": measured["changes"], "rows": rows})
        _record_published(connection, {**entry, "published_at": pointer["published_at"]})
        held = guard.read_held(published_dir)
        if held is not None and held["run_id"] != run_id:
            (published_dir / guard.HELD_FILE).unlink()  # a newer run passed the guard: the held one is obsolete
    release.removed = prune_snapshots(published_dir, keep_snapshots, guard.protected_snapshots(published_dir))
    release.removed += prune_contacts(published_dir)  # those whose snapshot is gone
    return release


def _utc(moment) -> datetime | None:
    """A timestamp as UTC wall time (the warehouse's convention), from an ISO text or a datetime."""
    if moment is None:
        return None
    moment = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _record_formula_payloads(connection, catalog: str | None, run_id: str, payloads) -> None:
    prefix = f"{sql.identifier(catalog)}." if catalog else ""
    connection.execute(f"create table if not exists {prefix}meta.formula_payloads ({FORMULA_PAYLOADS_COLUMNS})")
    connection.execute(f"delete from {prefix}meta.formula_payloads where run_id = ?", [run_id])
    if payloads:
        connection.executemany(
            f"insert into {prefix}meta.formula_payloads values (?, ?, ?, ?)",
            [(run_id, *payload) for payload in payloads],
        )
