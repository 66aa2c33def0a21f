"""Contact details published apart from the general snapshot.

Names, emails and phones (the warehouse's contacts.customer_contacts) are never in the snapshot every page reads.
Each publish writes them to a file of their own beside it, ``contacts_<as_of>_<run8>.duckdb`` for the snapshot
``crm_<as_of>_<run8>.duckdb``, readable by its owner only whatever the private_files setting (it is nothing but
personal data). ``current.json`` names it under ``contacts``; the publish guard carries it along with its snapshot
(held, accepted, rolled back), and pruning removes it with its snapshot. The dashboards open it only for the roles
that see contact details (pipelines/users.py).
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import date
from pathlib import Path

import duckdb

from pipelines import sql
from pipelines.publish.snapshot import current_snapshot

CONTACTS_SCHEMA = "contacts"
CONTACTS_TABLE = "customer_contacts"
CONTACTS_CATALOG = "contacts_file"
_PREFIX = "contacts_"
_SNAPSHOT_PREFIX = "crm_"


def contacts_name(as_of: date, run_id: str) -> str:
    return f"{_PREFIX}{as_of.isoformat()}_{run_id[:8]}.duckdb"


def write_contacts(connection: duckdb.DuckDBPyConnection, target: Path) -> int | None:
    """Copy contacts.customer_contacts into a new DuckDB file ``target`` (0600, under its name only when
    complete); return its rows, or None without writing anything when the warehouse has no such table (a
    warehouse built before contact details were published apart)."""
    exists = connection.execute(
        "select count(*) from information_schema.tables "
        "where table_catalog = current_database() and table_schema = ? and table_name = ?",
        [CONTACTS_SCHEMA, CONTACTS_TABLE],
    ).fetchone()[0]
    if not exists:
        return None
    # Written in a folder of its own that only the owner can enter (mkdtemp: 0700), whatever the umask, so the
    # file is never readable by others, not even while it is written; renamed into place when complete.
    staging = Path(tempfile.mkdtemp(prefix=".contacts-", dir=target.parent))
    partial = staging / target.name
    catalog = sql.identifier(CONTACTS_CATALOG)
    table = sql.qualified(CONTACTS_SCHEMA, CONTACTS_TABLE)
    try:
        connection.execute(f"attach {sql.string(str(partial))} as {catalog}")
        try:
            connection.execute(f"create schema {catalog}.{sql.identifier(CONTACTS_SCHEMA)}")
            connection.execute(f"create table {catalog}.{table} as select * from {table}")
            rows = connection.execute(f"select count(*) from {catalog}.{table}").fetchone()[0]
        finally:
            connection.execute(f"detach {catalog}")
        partial.chmod(0o600)
        partial.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return rows


def current_contacts(published_dir: Path) -> Path | None:
    """The contacts file of the current snapshot (current.json's ``contacts``, relative to the published folder or
    absolute), or None when nothing is published or the current publish wrote none."""
    published_dir = Path(published_dir)
    pointer = current_snapshot(published_dir)
    if pointer is None or not pointer.get("contacts"):
        return None
    return published_dir / pointer["contacts"]  # an absolute name stays absolute


def prune_contacts(published_dir: Path) -> list[Path]:
    """Delete the contacts files whose snapshot is gone (pruned, or never completed); return what was deleted."""
    published_dir = Path(published_dir)
    removed = []
    for path in sorted(published_dir.glob(f"{_PREFIX}*.duckdb")):
        if not (published_dir / (_SNAPSHOT_PREFIX + path.name.removeprefix(_PREFIX))).exists():
            path.unlink()
            removed.append(path)
    return removed
