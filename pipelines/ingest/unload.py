"""Take a loaded file back (``crm unload FILE``): its rows leave every raw table it fed and its quarantine entries
go, and the ledger records it as ``unloaded``.

The ledger's new row keeps the file's SHA-256, so the next run does not load the same content again while it stays
in the landing zone; a changed file (another SHA-256) loads as usual. The file itself is not touched: move it away
or deliver a corrected one. A refused file can be unloaded too: it then no longer blocks its source.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import os
import posixpath
from pathlib import Path

import duckdb

from pipelines.ingest import ledger
from pipelines.ingest.loader import RAW_SCHEMA, raw_table

UNLOADED = "unloaded"


class UnloadError(ValueError):
    """The file cannot be unloaded; the message says why and what to give instead."""


@dataclasses.dataclass(frozen=True)
class UnloadResult:
    """What ``unload_file`` did: rows removed per raw table, quarantine entries removed, the contracts whose
    ledger rows it marked ``unloaded`` (and their status before)."""

    file: str
    contracts: tuple[tuple[str, str], ...]  # (contract, status before)
    rows_removed: dict[str, int]
    quarantine_removed: int
    already_unloaded: bool = False

    @property
    def total_rows_removed(self) -> int:
        return sum(self.rows_removed.values())

    def describe(self) -> str:
        if self.already_unloaded:
            return f"{self.file} was already unloaded; nothing changed"
        tables = ", ".join(f"{rows:,} from raw.{table}" for table, rows in self.rows_removed.items()) or "no rows"
        return (
            f"{self.file}: removed {tables} and {self.quarantine_removed:,} quarantine entries; the ledger marks it "
            "unloaded, so the same content is not loaded again (a changed file loads as usual)"
        )


def landing_relative(landing_dir: Path, given: str | Path) -> str:
    """The file's name as the ledger holds it (``erp/orders.csv``), from that name, a path under the landing zone
    (``data/landing/erp/orders.csv``) or an absolute path."""
    text = str(given).replace("\\", "/").strip()
    if not text:
        raise UnloadError("give the file's path under the landing zone, e.g. erp/orders.csv")
    candidates = [os.path.abspath(text)] if os.path.isabs(text) or os.path.lexists(text) else []
    for full in candidates:
        for root in (os.path.abspath(landing_dir), os.path.realpath(landing_dir)):
            relative = os.path.relpath(full, root)
            if not relative.startswith(".."):
                return Path(relative).as_posix()
    if os.path.isabs(text):
        raise UnloadError(f"{Path(text).name} is not under the landing zone; give its path under the landing zone")
    relative = posixpath.normpath(text)
    if relative.startswith("../") or relative in ("..", "."):
        raise UnloadError(f"{text} is not under the landing zone; give its path under the landing zone")
    return relative


def _known_files(connection: duckdb.DuckDBPyConnection) -> list[str]:
    rows = connection.execute(
        f"select distinct file from {ledger.META_SCHEMA}.load_ledger where status <> 'replaced' order by 1"
    ).fetchall()
    return [row[0] for row in rows]


def _unknown_file(connection: duckdb.DuckDBPyConnection, relative: str) -> UnloadError:
    known = _known_files(connection)
    alike = difflib.get_close_matches(relative, known, n=5, cutoff=0.6)
    alike += [file for file in known if posixpath.basename(file) == posixpath.basename(relative) and file not in alike]
    if alike:
        hint = "files the ledger knows with a similar name: " + ", ".join(alike[:5])
    elif known:
        hint = f"the ledger knows {len(known):,} files, e.g. " + ", ".join(known[:3])
    else:
        hint = "the ledger holds no file yet"
    return UnloadError(
        f"{relative} is not in the load ledger, so nothing was loaded from it; {hint}. "
        "Give the file's path under the landing zone as the ledger names it (meta.load_ledger.file)"
    )


def _ledger_exists(connection: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        connection.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = 'load_ledger'",
            [ledger.META_SCHEMA],
        ).fetchone()[0]
    )


def _raw_tables(connection: duckdb.DuckDBPyConnection) -> set[str]:
    rows = connection.execute(
        "select table_name from information_schema.tables where table_schema = ?", [RAW_SCHEMA]
    ).fetchall()
    return {row[0] for row in rows}


def unload_file(
    connection: duckdb.DuckDBPyConnection, landing_dir: Path, relative_file: str | Path, run_id: str | None = None
) -> UnloadResult:
    """Remove what ``relative_file`` loaded, under every contract that loaded it, in one transaction, and record
    it in the ledger as ``unloaded`` (same SHA-256, no rows). Raises :class:`UnloadError` for a file the ledger
    does not know, naming the known files that look alike."""
    relative = landing_relative(landing_dir, relative_file)
    run_id = run_id or "unload-" + dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    if not _ledger_exists(connection):
        raise UnloadError(f"{relative}: the warehouse has no load ledger yet, so nothing was loaded from it")
    entries = connection.execute(
        f"select source_table, status, coalesce(tables_fed, []) from {ledger.META_SCHEMA}.load_ledger "
        "where file = ? and status <> 'replaced' order by source_table",
        [relative],
    ).fetchall()
    # Tables where this file's rows replaced rows of other files with the same key (duplicates: keep_last):
    # those rows are gone, so every other file of such a table loads again on the next run.
    overriding = {
        table
        for (tables,) in connection.execute(
            f"select coalesce(tables_fed, []) from {ledger.META_SCHEMA}.load_ledger "
            "where file = ? and status = 'loaded' and rows_replaced > 0",
            [relative],
        ).fetchall()
        for table in tables
    }
    if not entries:
        raise _unknown_file(connection, relative)
    if all(status == UNLOADED for _, status, _ in entries):
        return UnloadResult(relative, tuple((name, status) for name, status, _ in entries), {}, 0, True)
    existing = _raw_tables(connection)
    removed: dict[str, int] = {}
    quarantined = 0
    connection.execute("begin transaction")
    try:
        for contract, status, tables_fed in entries:
            if status == UNLOADED:
                continue
            from_contract = 0
            for table in dict.fromkeys([*tables_fed, contract]):
                if table not in existing:
                    continue
                rows = connection.execute(
                    f"delete from {raw_table(table)} where _file = ? and _contract = ?", [relative, contract]
                ).fetchone()[0]
                if rows or table in tables_fed:
                    removed[table] = removed.get(table, 0) + int(rows)
                from_contract += int(rows)
            quarantined += connection.execute(
                f"delete from {ledger.META_SCHEMA}.quarantine where source_table = ? and file = ?", [contract, relative]
            ).fetchone()[0]
            message = (
                f"unloaded (crm unload): {from_contract:,} rows removed; the same content is not loaded again, "
                "a changed file loads"
            )
            connection.execute(
                f"""create or replace temp table _unloaded as
                select * replace (
                    'unloaded' as status, ? as message, ? as run_id, now()::timestamp as loaded_at,
                    0::bigint as rows_read, 0::bigint as rows_loaded, 0::bigint as rows_quarantined,
                    0::bigint as rows_filtered, ?::bigint as rows_replaced, []::varchar[] as unknown_columns,
                    '{{}}'::json as filtered_reasons, []::varchar[] as tables_fed, '{{}}'::json as rows_by_table
                )
                from {ledger.META_SCHEMA}.load_ledger
                where source_table = ? and file = ? and status <> 'replaced'""",
                [message, run_id, from_contract, contract, relative],
            )
            ledger.mark_replaced(connection, contract, relative)
            connection.execute(f"insert into {ledger.META_SCHEMA}.load_ledger by name select * from _unloaded")
            connection.execute("drop table _unloaded")
        for table in sorted(overriding & existing):
            _reload_others(connection, table)
        connection.execute("commit")
    except BaseException:
        connection.execute("rollback")
        raise
    return UnloadResult(relative, tuple((name, status) for name, status, _ in entries), removed, int(quarantined))


def _reload_others(connection: duckdb.DuckDBPyConnection, table: str) -> None:
    """Empty a raw table and forget the files that fed it (their rows leave the other tables they fed too), so
    the next run loads them again, without the unloaded file whose rows had replaced some of theirs."""
    for source_table, file, tables in ledger.files_that_fed(connection, table):
        for other in tables:
            if other != table:
                connection.execute(
                    f"delete from {raw_table(other)} where _file = ? and _contract = ?", [file, source_table]
                )
    connection.execute(f"delete from {raw_table(table)}")
    ledger.forget_table(connection, table)
