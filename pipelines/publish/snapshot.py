"""Publishing: a consistent read-only copy of the warehouse for the dashboards, swapped in atomically.

The dashboards read the snapshot that ``current.json`` names. A run writes a new snapshot file beside the old
ones and only then replaces ``current.json`` (an atomic rename), so a failed or half-finished run never changes
what the dashboards show; the older snapshots stay for rollback.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

# What the dashboards may read: the marts, the scores, the history and the load bookkeeping (never raw or staging).
PUBLISHED_SCHEMAS = ("marts", "ml", "meta", "snapshots")
# Columns that never leave the working warehouse: a quarantined row as the export held it carries contact details,
# and analysts see customers only with masked contact fields.
WITHHELD_COLUMNS = {("meta", "quarantine"): ("record",)}
POINTER_FILE = "current.json"


def snapshot_name(as_of: date, run_id: str) -> str:
    return f"crm_{as_of.isoformat()}_{run_id[:8]}.duckdb"


def write_snapshot(connection: duckdb.DuckDBPyConnection, target: Path) -> dict[str, int]:
    """Copy every table of the published schemas into a new DuckDB file; return rows per table."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    tables = connection.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_catalog = current_database() and table_schema in "
        f"({', '.join('?' for _ in PUBLISHED_SCHEMAS)}) order by 1, 2",
        list(PUBLISHED_SCHEMAS),
    ).fetchall()
    connection.execute(f"attach '{partial}' as snapshot")
    rows: dict[str, int] = {}
    try:
        for schema in sorted({schema for schema, _ in tables}):
            connection.execute(f"create schema snapshot.{schema}")
        for schema, table in tables:
            withheld = ", ".join(f'"{column}"' for column in WITHHELD_COLUMNS.get((schema, table), ()))
            columns = f"* exclude ({withheld})" if withheld else "*"
            connection.execute(f'create table snapshot.{schema}."{table}" as select {columns} from {schema}."{table}"')
            rows[f"{schema}.{table}"] = connection.execute(
                f'select count(*) from snapshot.{schema}."{table}"'
            ).fetchone()[0]
    finally:
        connection.execute("detach snapshot")
    partial.replace(target)
    return rows


def point_to(published_dir: Path, snapshot: Path, *, as_of: date, run_id: str) -> Path:
    """Make ``snapshot`` the current one: write the pointer beside it and rename it into place."""
    pointer = published_dir / POINTER_FILE
    content = {
        "snapshot": snapshot.name,
        "as_of": as_of.isoformat(),
        "run_id": run_id,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    temporary = pointer.with_suffix(".tmp")
    temporary.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, pointer)
    return pointer


def current_snapshot(published_dir: Path) -> dict | None:
    """The pointer's content with the snapshot's full ``path``, or None when nothing is published yet."""
    pointer = published_dir / POINTER_FILE
    if not pointer.exists():
        return None
    content = json.loads(pointer.read_text(encoding="utf-8"))
    content["path"] = str(published_dir / content["snapshot"])
    return content


def prune_snapshots(published_dir: Path, keep: int) -> list[Path]:
    """Delete the oldest snapshots beyond ``keep``, never the current one; return what was deleted."""
    current = (current_snapshot(published_dir) or {}).get("snapshot")
    snapshots = sorted(published_dir.glob("crm_*.duckdb"), key=lambda path: path.stat().st_mtime, reverse=True)
    removed = [path for path in snapshots[max(keep, 1) :] if path.name != current]
    for path in removed:
        path.unlink()
    return removed
