"""Load a source table's files into DuckDB by its contract: good rows to ``raw``, bad rows to ``meta.quarantine``.

Every value is read as text first and cast by the contract, so one unreadable cell quarantines its row (with the
file, row number, column and reason) instead of failing the file; rows read = rows loaded + rows quarantined.
A file that lacks a required column is refused whole, with an error naming the file and the column.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import duckdb

from pipelines.ingest.contracts import Column, Contract

RAW_SCHEMA = "raw"
META_SCHEMA = "meta"
# Columns the loader adds to every raw table: where each row came from and which run loaded it.
LINEAGE_COLUMNS = ("_file", "_row_number", "_run_id")


class FileRefused(ValueError):
    """A whole file cannot be loaded under its contract; the message names the file and the column."""


@dataclasses.dataclass(frozen=True)
class FileLoad:
    file: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    unknown_columns: tuple[str, ...]


def sql_string(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def reader_sql(contract: Contract, file: Path) -> str:
    """The DuckDB table function that reads one file: CSV as all text (cast later, by the contract)."""
    if contract.format == "parquet":
        return f"read_parquet({sql_string(str(file))})"
    dialect = contract.csv
    options = [
        sql_string(str(file)),
        f"delim = {sql_string(dialect.delimiter)}",
        f"quote = {sql_string(dialect.quote)}",
        f"escape = {sql_string(dialect.quote)}",
        f"header = {'true' if dialect.header else 'false'}",
        f"encoding = {sql_string(dialect.encoding)}",
        "all_varchar = true",
        "auto_detect = false" if not dialect.header else "auto_detect = true",
    ]
    if not dialect.header:
        columns = ", ".join(f"{sql_string(column.header)}: 'VARCHAR'" for column in contract.columns)
        options.append(f"columns = {{{columns}}}")
    return f"read_csv({', '.join(options)})"


def _text_value(contract: Contract, column: Column) -> str:
    """The cell as the file holds it, empty text read as missing."""
    source = sql_identifier(column.header)
    if contract.format == "parquet":
        return source
    return f"nullif(trim({source}), '')"


def cast_sql(contract: Contract, column: Column) -> str:
    """The expression that turns a cell into the column's type, NULL where it cannot be read."""
    value = _text_value(contract, column)
    kind = column.type
    if kind == "varchar":
        return f"{value}::varchar" if contract.format == "parquet" else value
    if contract.format == "csv" and contract.csv.decimal_separator != "." and kind not in ("date", "timestamp"):
        value = f"replace({value}, {sql_string(contract.csv.decimal_separator)}, '.')"
    if kind in ("date", "timestamp") and column.format and contract.format == "csv":
        parsed = f"try_strptime({value}, {sql_string(column.format)})"
        return f"{parsed}::date" if kind == "date" else parsed
    return f"try_cast({value} as {kind})"


def problems_sql(contract: Contract) -> str:
    """A list of {column, reason} structs, one per cell of the row that breaks the contract."""
    checks = []
    for column in contract.columns:
        value, cast = _text_value(contract, column), cast_sql(contract, column)
        name = sql_string(column.name)
        if column.required:
            checks.append(
                f"case when {value} is null then {{'column': {name}, 'reason': 'required value missing'}} end"
            )
        if column.type != "varchar":
            expected = column.type + (f" in format {column.format}" if column.format else "")
            reason = f"concat('cannot read ', {value}::varchar, {sql_string(' as ' + expected)})"
            checks.append(
                f"case when {value} is not null and {cast} is null then {{'column': {name}, 'reason': {reason}}} end"
            )
    if not checks:
        return "[]::struct(column varchar, reason varchar)[]"
    return f"list_filter([{', '.join(checks)}], lambda problem: problem is not null)"


def ensure_meta_tables(connection: duckdb.DuckDBPyConnection) -> None:
    connection.execute(f"create schema if not exists {RAW_SCHEMA}")
    connection.execute(f"create schema if not exists {META_SCHEMA}")
    connection.execute(
        f"""create table if not exists {META_SCHEMA}.quarantine (
            source_table varchar, file varchar, row_number bigint, column_name varchar, reason varchar,
            run_id varchar, quarantined_at timestamp)"""
    )
    connection.execute(
        f"""create table if not exists {META_SCHEMA}.load_ledger (
            source_table varchar, file varchar, sha256 varchar, size_bytes bigint, rows_read bigint,
            rows_loaded bigint, rows_quarantined bigint, unknown_columns varchar[], run_id varchar,
            loaded_at timestamp)"""
    )


def create_raw_table(connection: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    """(Re)create the empty raw table of a contract: its typed columns plus the lineage columns."""
    columns = [f"{sql_identifier(column.name)} {column.type}" for column in contract.columns]
    columns += ["_file varchar", "_row_number bigint", "_run_id varchar"]
    connection.execute(f"create or replace table {RAW_SCHEMA}.{contract.name} ({', '.join(columns)})")


def _file_columns(connection: duckdb.DuckDBPyConnection, reader: str) -> list[str]:
    return [row[0] for row in connection.execute(f"describe select * from {reader}").fetchall()]


def file_sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_file(
    connection: duckdb.DuckDBPyConnection, contract: Contract, file: Path, landing_dir: Path, run_id: str
) -> FileLoad:
    """Append one file's good rows to the raw table and its bad rows to the quarantine; record it in the ledger."""
    relative = file.relative_to(landing_dir).as_posix()
    reader = reader_sql(contract, file)
    try:
        present = _file_columns(connection, reader)
    except duckdb.Error as error:
        raise FileRefused(f"{relative}: cannot be read as {contract.format} ({error})") from error
    headers = {column.header for column in contract.columns}
    missing_required = [column for column in contract.columns if column.required and column.header not in present]
    if missing_required:
        names = ", ".join(f"{column.header!r}" for column in missing_required)
        raise FileRefused(f"{relative}: required column {names} missing (the file has {', '.join(present)})")
    unknown = tuple(name for name in present if name not in headers)
    selected = [
        f"{cast_sql(contract, column)} as {sql_identifier(column.name)}"
        if column.header in present
        else f"null::{column.type} as {sql_identifier(column.name)}"
        for column in contract.columns
    ]
    # An optional column the file lacks loads as missing; only the columns it has can break the contract.
    problems = problems_sql(
        dataclasses.replace(contract, columns=tuple(c for c in contract.columns if c.header in present))
    )
    connection.execute(
        f"""create or replace temp table _batch as
        with source as (select row_number() over () as _row_number, * from {reader})
        select {", ".join(selected)}, _row_number, {problems} as _problems from source"""
    )
    names = ", ".join(sql_identifier(column.name) for column in contract.columns)
    connection.execute(
        f"insert into {RAW_SCHEMA}.{contract.name} "
        f"select {names}, ?, _row_number, ? from _batch where len(_problems) = 0",
        [relative, run_id],
    )
    connection.execute(
        f"""insert into {META_SCHEMA}.quarantine
        select ?, ?, _row_number, problem.column, problem.reason, ?, now()
        from (select _row_number, unnest(_problems) as problem from _batch where len(_problems) > 0)""",
        [contract.name, relative, run_id],
    )
    rows_read, rows_quarantined = connection.execute(
        "select count(*), count(*) filter (where len(_problems) > 0) from _batch"
    ).fetchone()
    connection.execute("drop table _batch")
    result = FileLoad(relative, rows_read, rows_read - rows_quarantined, rows_quarantined, unknown)
    connection.execute(
        f"insert into {META_SCHEMA}.load_ledger values (?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
        [
            contract.name,
            relative,
            file_sha256(file),
            file.stat().st_size,
            result.rows_read,
            result.rows_loaded,
            result.rows_quarantined,
            list(unknown),
            run_id,
        ],
    )
    return result


def load_table(
    connection: duckdb.DuckDBPyConnection, contract: Contract, landing_dir: Path, run_id: str
) -> list[FileLoad]:
    """Rebuild a raw table from every file of its contract in the landing zone, in one transaction."""
    ensure_meta_tables(connection)
    files = contract.matching_files(landing_dir)
    connection.execute("begin transaction")
    try:
        create_raw_table(connection, contract)
        connection.execute(f"delete from {META_SCHEMA}.quarantine where source_table = ?", [contract.name])
        loads = [load_file(connection, contract, file, landing_dir, run_id) for file in files]
        connection.execute("commit")
    except BaseException:
        connection.execute("rollback")
        raise
    return loads
