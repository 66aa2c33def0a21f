"""The load ledger (meta.load_ledger) and the quarantine (meta.quarantine): the bookkeeping of every file.

The ledger holds one row per version of a file: its content hash and its contract's, size, rows read, loaded,
quarantined, filtered (with the count per reason) and replaced, the raw tables it fed with the rows written to
each, its status (``loaded``, ``refused``, or ``replaced`` once a corrected delivery or a changed contract
superseded it), when and by which run, and the file's stat key (pipelines/ingest/landing.py) when it had settled:
a later night that finds the same key knows the content without reading it again. For every row:
rows_read = rows_loaded + rows_quarantined + rows_filtered, and rows_read is the file's records, reconciled with
its physical lines counted on its bytes (docs/contracts.md, "How rows are counted"); blank_lines are the empty
lines, which are not records.

The quarantine holds one row per problem: the record (its number, the column, the reason in words and
``reason_code``, one of missing, type, malformed, duplicate, refused, outlier, bound, empty, link, deferred,
unloaded, encoding) or, for a refused file, one row without a record number.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from pipelines import sql

if TYPE_CHECKING:
    from pipelines.ingest.loader import FileLoad

META_SCHEMA = "meta"


@dataclasses.dataclass(frozen=True)
class Entry:
    """The ledger's current version of a file."""

    file: str
    sha256: str
    status: str
    run_id: str
    contract_sha256: str = ""
    tables: tuple[str, ...] = ()
    stat_key: str | None = None


_TABLES = {
    "quarantine": """source_table varchar, file varchar, row_number bigint, column_name varchar, reason varchar,
        reason_code varchar, record json, run_id varchar, quarantined_at timestamp""",
    "load_ledger": """source_table varchar, file varchar, sha256 varchar, size_bytes bigint, rows_read bigint,
        rows_loaded bigint, rows_quarantined bigint, rows_replaced bigint, unknown_columns varchar[],
        status varchar, message varchar, run_id varchar, loaded_at timestamp, rows_filtered bigint,
        filtered_reasons json, tables_fed varchar[], rows_by_table json, contract_sha256 varchar,
        blank_lines bigint, stat_key varchar""",
}


def ensure_tables(connection: duckdb.DuckDBPyConnection) -> None:
    """Create the bookkeeping tables. Columns a newer layout adds at the end are added in place (they are empty
    for the rows before them). A ledger of any other layout cannot be trusted to say what is loaded: it is
    rebuilt, and every raw table with it, so everything reloads from the landing zone."""
    connection.execute(f"create schema if not exists {META_SCHEMA}")
    for table, columns in _TABLES.items():
        declared = [line.strip() for line in columns.split(",") if line.strip()]
        expected = [column.split()[0] for column in declared]
        actual = [row[0] for row in connection.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
            "order by ordinal_position", [META_SCHEMA, table]).fetchall()]  # fmt: skip
        if actual and actual == expected[: len(actual)]:
            for column in declared[len(actual) :]:
                name, kind = column.split(maxsplit=1)
                connection.execute(f"alter table {META_SCHEMA}.{table} add column {sql.identifier(name)} {kind}")
        elif actual and actual != expected:
            for (raw_table,) in connection.execute(
                "select table_name from information_schema.tables where table_schema = 'raw'"
            ).fetchall():
                connection.execute(f"drop table {sql.qualified('raw', raw_table)}")
            connection.execute(f"drop table {META_SCHEMA}.{table}")
        connection.execute(f"create table if not exists {META_SCHEMA}.{table} ({columns})")


def record(connection: duckdb.DuckDBPyConnection, source_table: str, file: Path, load: FileLoad, run_id: str) -> None:
    connection.execute(
        f"insert into {META_SCHEMA}.load_ledger values ({', '.join(['?'] * 12)}, now(), {', '.join(['?'] * 7)})",
        [
            source_table,
            load.file,
            load.sha256,
            file.stat().st_size if load.sha256 else 0,  # a file refused unopened (a link) is not followed
            load.rows_read,
            load.rows_loaded,
            load.rows_quarantined,
            load.rows_replaced,
            list(load.unknown_columns),
            load.status,
            load.message,
            run_id,
            load.rows_filtered,
            json.dumps(dict(load.filtered)),
            [table for table, _ in load.tables],
            json.dumps(dict(load.tables)),
            load.contract_sha256,
            load.blank_lines,
            load.stat_key or None,
        ],
    )


def remember_stat_key(connection: duckdb.DuckDBPyConnection, source_table: str, file: str, stat_key: str) -> None:
    """A file read again and found unchanged (copied, touched, restored) is known by its new stat key from now on."""
    connection.execute(
        f"update {META_SCHEMA}.load_ledger set stat_key = ? "
        "where source_table = ? and file = ? and status <> 'replaced' and stat_key is distinct from ?",
        [stat_key, source_table, file, stat_key],
    )


def mark_replaced(connection: duckdb.DuckDBPyConnection, source_table: str, file: str) -> None:
    connection.execute(
        f"update {META_SCHEMA}.load_ledger set status = 'replaced' "
        "where source_table = ? and file = ? and status <> 'replaced'",
        [source_table, file],
    )


def current_entries(connection: duckdb.DuckDBPyConnection, source_table: str) -> dict[str, Entry]:
    """The current (not replaced) version of each file of a table."""
    rows = connection.execute(
        f"select file, sha256, status, run_id, contract_sha256, tables_fed, stat_key from {META_SCHEMA}.load_ledger "
        "where source_table = ? and status <> 'replaced'",
        [source_table],
    ).fetchall()
    return {row[0]: Entry(*row[:5], tuple(row[5] or ()), row[6]) for row in rows}


_FED = "(source_table = ? or list_contains(tables_fed, ?))"


def files_that_fed(connection: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str, list[str]]]:
    """(contract, file, tables it fed) of every current file that fed a raw table."""
    return connection.execute(
        f"select source_table, file, coalesce(tables_fed, []) from {META_SCHEMA}.load_ledger "
        f"where status not in ('replaced', 'unloaded') and {_FED}",
        [table, table],
    ).fetchall()


def forget_table(connection: duckdb.DuckDBPyConnection, table: str) -> None:
    """The raw table was rebuilt: every file that fed it, under any contract, loads again; a file taken back
    (``unloaded``) stays out while its content is unchanged."""
    connection.execute(
        f"""delete from {META_SCHEMA}.quarantine where (source_table, file) in (
            select (source_table, file) from {META_SCHEMA}.load_ledger where {_FED})""",
        [table, table],
    )
    connection.execute(
        f"""delete from {META_SCHEMA}.load_ledger where {_FED} and (source_table, file) not in (
            select (source_table, file) from {META_SCHEMA}.load_ledger where status = 'unloaded')""",
        [table, table],
    )
