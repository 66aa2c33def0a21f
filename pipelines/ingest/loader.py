"""Load a contract's files into DuckDB: good rows to the ``raw`` tables it feeds, bad rows to ``meta.quarantine``.

Every value is read as text and cast by the contract, so one unreadable cell quarantines its row (with the file,
row number, column and reason) instead of failing the file. The contract's derived columns are computed, its
filters set aside the rows it does not want (counted with their reason), and each feed writes its columns into
its table, collapsing many rows into one where it says ``one_row_per``. Rows read = rows loaded + rows
quarantined + rows filtered, always, for every file.
A file is refused whole, with an error naming the file and the column, when it lacks a required column or when
most of a column cannot be read as its type (the export's format changed); a refused file loads nothing and stays
in the ledger as refused until a corrected file replaces it.

Loads are incremental and idempotent: a file already loaded with the same content (SHA-256) under the same
contract (its SHA-256 too) is skipped; a corrected re-delivery under the same name, or a changed contract,
replaces the rows of the earlier load; rows whose primary key was loaded before are resolved by the contract's
``duplicates`` policy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from pipelines import sql
from pipelines.ingest import landing, ledger
from pipelines.ingest.contracts import TYPES, Column, Contract, Feed, Value
from pipelines.ingest.plausibility import Plausibility, check_rows
from pipelines.ingest.readers import (
    FileRefused,
    Readable,
    Scan,
    count_lines,
    line_mode,
    open_bytes,
    readable,
    scan_file,
)

RAW_SCHEMA = "raw"
_unique = itertools.count()

__all__ = ["FileLoad", "FileRefused", "load_file", "load_table"]


@dataclasses.dataclass(frozen=True)
class FileLoad:
    """What happened to one file: loaded, refused (nothing loaded) or unchanged (skipped, same content)."""

    file: str
    sha256: str
    status: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_replaced: int = 0
    unknown_columns: tuple[str, ...] = ()
    message: str = ""
    rows_filtered: int = 0
    filtered: tuple[tuple[str, int], ...] = ()  # (reason, rows)
    tables: tuple[tuple[str, int], ...] = ()  # (raw table, rows written to it)
    contract_sha256: str = ""
    blank_lines: int = 0  # empty lines between the records: not records, counted apart
    stat_key: str = ""  # the file's stat key when it had settled (pipelines/ingest/landing.py), else ""


# The names the rest of the ingest code knows them by; the one helper is pipelines.sql.
sql_string = sql.string
sql_literal = sql.literal
sql_identifier = sql.identifier


# A contract column's type as SQL: one of the contract's type words, or decimal(p,s) with p and s numbers.
SQL_TYPES = {kind: kind for kind in TYPES}
_DECIMAL_TYPE = re.compile(r"^decimal\((\d{1,2}),(\d{1,2})\)$")


def type_sql(kind: str) -> str:
    """The SQL text of a contract column's type. The contract parser allows only these; checked again here, so
    that no other text can reach SQL as a type."""
    if kind in SQL_TYPES:
        return SQL_TYPES[kind]
    decimal = _DECIMAL_TYPE.match(kind)
    if decimal is None:
        raise ValueError(f"{kind!r} is not a column type: use one of {sorted(TYPES)} or decimal(p,s)")
    return f"decimal({int(decimal[1])},{int(decimal[2])})"


def file_sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# The column read_parquet adds with each row's position in its file (from 0), when the file has none of that name.
PARQUET_ROW_COLUMN = "file_row_number"


def reader_sql(source: Readable, rejects: str, columns: tuple[Column, ...], numbered: bool = False) -> str:
    """The DuckDB table function that reads one file; CSV as all text, malformed records to ``rejects``; Parquet
    with each row's position in the file (``PARQUET_ROW_COLUMN``) when ``numbered``."""
    if source.format == "parquet":
        return f"read_parquet({sql_string(str(source.path))}{', file_row_number = true' if numbered else ''})"
    dialect = source.dialect
    options = [
        sql_string(str(source.path)),
        f"delim = {sql_string(dialect.delimiter)}",
        f"quote = {sql_string(dialect.quote)}",
        f"escape = {sql_string(dialect.quote)}",
        f"header = {'true' if dialect.header else 'false'}",
        f"encoding = {sql_string(dialect.encoding)}",
        f"skip = {int(dialect.skip_rows)}",
        "all_varchar = true",
        "store_rejects = true",
        f"rejects_table = {sql_string(rejects)}",
        f"rejects_scan = {sql_string(rejects + '_scan')}",
    ]
    if source.compression == "gzip":  # found by the file's magic bytes, whatever its name says
        options.append("compression = 'gzip'")
    names = list(source.names)  # a line-mode copy: its header read by us, no sniffing to trip over a bad line
    if not dialect.header:
        names = [column.name for column in columns]
        if source.line_column:
            names.insert(0, source.line_column)
    if names:
        typed = ", ".join(f"{sql_string(name)}: 'VARCHAR'" for name in names)
        options += ["auto_detect = false", f"columns = {{{typed}}}"]
    return f"read_csv({', '.join(options)})"


# Characters nobody sees that make two equal-looking keys differ: zero-width space, non-joiner and joiner, word
# joiner, and the byte-order mark (U+FEFF) where it is not the first character of the file.
INVISIBLE_CHARACTERS = "\u200b\u200c\u200d\u2060\ufeff"
_INVISIBLE = r"\x{200B}\x{200C}\x{200D}\x{2060}\x{FEFF}"
# Unicode white space as Python's str.isspace knows it (RE2's \s is ASCII only): ASCII blanks and line ends, the
# information separators, NEL, and the separators of category Z (NBSP, the typographic and ideographic spaces...).
_SPACE = r"\s\x0b\x1c-\x1f\x{85}\pZ"
_CLEAN = f"^[{_SPACE}{_INVISIBLE}]+|[{_SPACE}{_INVISIBLE}]+$|[{_INVISIBLE}]+"


def clean_text_sql(value: str) -> str:
    """``value`` (text) less the invisible characters anywhere and Unicode white space at both ends. An ASCII cell
    that starts and ends with a visible character, nearly every cell, is taken as it is: the regular expression
    would cost a tenth of the load."""
    return (
        f"case when strlen({value}) = length({value}) and left({value}, 1) > ' ' and right({value}, 1) > ' ' "
        f"then {value} else regexp_replace({value}, {sql_string(_CLEAN)}, '', 'g') end"
    )


def _text_value(source: Readable, header: str) -> str:
    """The cell as the file holds it less the invisible characters anywhere and white space at both ends, empty
    text read as missing: what is cast, compared and loaded."""
    if source.format == "parquet":
        return sql_identifier(header)
    cell = sql_identifier(header)
    if source.lines is not None and source.lines.has_nul:  # only files that hold one pay for this
        cell = f"replace({cell}, chr(0), '')"
    return f"nullif({clean_text_sql(cell)}, '')"


def _formats(column: Column) -> str:
    return "[" + ", ".join(sql_string(fmt) for fmt in column.formats) + "]"


def cast_sql(source: Readable, column: Column, header: str, excel: bool = False) -> str:
    """The expression that turns a cell into the column's type, NULL where it cannot be read."""
    value = _text_value(source, header)
    if column.values:  # the export's words for a value (display labels, another language) -> the contract's
        cases = " ".join(f"when {sql_string(raw)} then {sql_string(mapped)}" for raw, mapped in column.values)
        value = f"(case {value} {cases} else {value} end)"
    kind = column.type
    if kind == "varchar":
        return f"{value}::varchar" if source.format == "parquet" else value
    if source.format == "parquet" and not (kind in ("date", "timestamp") and column.formats):
        return f"try_cast({value} as {type_sql(kind)})"
    if source.format == "parquet":  # typed in the file, or text in the declared format
        parsed = f"coalesce(try_cast({value} as timestamp), try_strptime({value}::varchar, {_formats(column)}))"
        return f"{parsed}::date" if kind == "date" else parsed
    if kind in ("date", "timestamp") and column.formats:
        parsed = f"try_strptime({value}, {_formats(column)})"
        if excel:  # a real date cell arrives as ISO text whatever the format declared for typed-in dates
            parsed = f"coalesce({parsed}, try_cast({value} as timestamp))"
        return f"{parsed}::date" if kind == "date" else parsed
    dialect = source.dialect
    if kind not in ("date", "timestamp", "boolean"):
        if dialect.thousands_separator:
            value = f"replace({value}, {sql_string(dialect.thousands_separator)}, '')"
        if dialect.decimal_separator != ".":
            value = f"replace({value}, {sql_string(dialect.decimal_separator)}, '.')"
    return f"try_cast({value} as {type_sql(kind)})"


def problems_sql(source: Readable, matched: dict[str, str], contract: Contract, excel: bool) -> str:
    """A list of {column, kind, reason} structs, one per cell of the row that breaks the contract."""
    checks = []
    for column in contract.columns:
        name = sql_string(column.name)
        header = matched.get(column.name)
        if header is None:
            continue
        value, cast = _text_value(source, header), cast_sql(source, column, header, excel)
        if column.required:
            checks.append(
                f"case when {value} is null then "
                f"{{'column': {name}, 'kind': 'missing', 'reason': 'required value missing'}} end"
            )
        if column.type != "varchar":
            expected = column.type + (f" in format {' or '.join(column.formats)}" if column.formats else "")
            quoted = f"concat({sql_string(chr(39))}, {value}::varchar, {sql_string(chr(39))})"
            reason = f"concat('cannot read ', {quoted}, {sql_string(' as ' + expected)})"
            checks.append(
                f"case when {value} is not null and {cast} is null then "
                f"{{'column': {name}, 'kind': 'type', 'reason': {reason}}} end"
            )
    if not checks:
        return '[]::struct("column" varchar, kind varchar, reason varchar)[]'
    return f"list_filter([{', '.join(checks)}], lambda problem: problem is not null)"


# Lineage of every raw row: the file and record it came from, the run and the contract that loaded it, and the
# file's columns that no contract column claims.
LINEAGE_COLUMNS = (("_file", "varchar"), ("_row_number", "bigint"), ("_run_id", "varchar"), ("_extra", "json"),
                   ("_contract", "varchar"))  # fmt: skip


def raw_table(name: str) -> str:
    """The quoted name of a raw table."""
    return f"{RAW_SCHEMA}.{sql_identifier(name)}"


def _create_feed_table(connection: duckdb.DuckDBPyConnection, feed: Feed) -> None:
    connection.execute(f"create schema if not exists {RAW_SCHEMA}")
    columns = [f"{sql_identifier(column.name)} {type_sql(column.type)}" for column in feed.columns]
    columns += [f"{name} {kind}" for name, kind in LINEAGE_COLUMNS]
    connection.execute(f"create or replace table {raw_table(feed.table)} ({', '.join(columns)})")


def create_raw_table(connection: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    """(Re)create the empty raw tables a contract feeds: their typed columns plus lineage and unknown columns."""
    for feed in contract.feeds:
        _create_feed_table(connection, feed)


def _raw_table_matches(connection: duckdb.DuckDBPyConnection, feed: Feed) -> bool:
    rows = connection.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [RAW_SCHEMA, feed.table],
    ).fetchall()
    expected = [(column.name, column.type) for column in feed.columns] + list(LINEAGE_COLUMNS)
    actual = [(name, kind.lower().replace(" ", "")) for name, kind in rows]
    return actual == expected


def _match_headers(contract: Contract, present: list[str]) -> tuple[dict[str, str], tuple[str, ...]]:
    """Which file header each contract column reads from, and the headers no column claims."""
    if contract.format != "parquet" and not contract.dialect.header:
        return {column.name: column.name for column in contract.columns}, ()
    matched: dict[str, str] = {}
    for column in contract.columns:
        header = next((header for header in present if column.matches(header)), None)
        if header is not None:
            matched[column.name] = header
    claimed = set(matched.values())
    return matched, tuple(header for header in present if header not in claimed)


def _refuse_unreadable_columns(
    connection: duckdb.DuckDBPyConnection, contract: Contract, shown_name: str, rows: int
) -> None:
    """A column most of whose values cannot be read as its type is drift, not bad rows: refuse the file."""
    failures = connection.execute(
        """select problem.column, count(*), any_value(problem.reason)
        from (select unnest(_problems) as problem from _batch) where problem.kind = 'type' group by 1"""
    ).fetchall()
    for column_name, failed, example in failures:
        column = contract.column(column_name)
        readable_values = connection.execute(f"select count({sql_identifier(column.name)}) from _batch").fetchone()[0]
        share = failed / max(failed + readable_values, 1)
        if share > contract.refuse_above_bad_share:
            raise FileRefused(
                f"{shown_name}: column {column.name!r} ({column.header}): {failed:,} of {failed + readable_values:,} "
                f"values cannot be read as {column.type} (e.g. {example.removeprefix('cannot read ')}); "
                "has the export's format changed? Fix the file or the column's type/format in the contract"
            )


def _derive_and_filter(connection: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    """Add the contract's derived columns to _batch, then mark (``_filtered``) the clean rows no table takes."""
    if contract.derived:
        query = "select * from _batch"
        for name, expression in contract.derived:  # each may read the ones before it
            query = f"select *, try({expression.sql()}) as {sql_identifier(name)} from ({query})"
        connection.execute(f"create or replace temp table _batch as {query}")
    connection.execute("alter table _batch add column _filtered varchar")
    reasons = [(f"not coalesce({rule.keep.sql()}, false)", rule.reason) for rule in contract.filters]
    if all(feed.where is not None for feed in contract.feeds):
        taken = " or ".join(f"coalesce({feed.where.sql()}, false)" for feed in contract.feeds)
        tables = ", ".join(feed.label for feed in contract.feeds)
        reasons.append((f"not ({taken})", f"no table takes it (the where of {tables})"))
    if reasons:
        cases = " ".join(f"when {condition} then {sql_string(reason)}" for condition, reason in reasons)
        connection.execute(f"update _batch set _filtered = case {cases} end where len(_problems) = 0")


def _feed_value_sql(column: Column, value: Value) -> str:
    typed = f"try_cast({{}} as {type_sql(column.type)})"
    parts = []
    if value.expression is not None:
        parts.append(typed.format(value.expression.sql()))
    if value.constant is not None:
        parts.append(typed.format(sql_literal(value.constant)))
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"


def _feed_relation(index: int, lazy: bool) -> str:
    """The name of a feed's rows: a temp table, or (``lazy``) a view over the clean rows of _batch."""
    return f"_feed_{index}_rows" if lazy else f"_feed_{index}"


def _project_feed(connection: duckdb.DuckDBPyConnection, contract: Contract, feed: Feed, index: int) -> str:
    """The feed's typed columns for the rows it takes, and its problems put onto _batch: a temp table, or a view
    over _batch when the feed can find no problem (columns taken as they are, nothing required left empty)."""
    values = dict(feed.values)
    typed = {column.name: column.type for column in contract.columns}
    required = {column.name for column in contract.columns if column.required}
    selected, checks = [], []
    for column in feed.columns:
        value = values.get(column.name)
        cell = _feed_value_sql(column, value) if value is not None else f"null::{type_sql(column.type)}"
        selected.append(f"{cell} as {sql_identifier(column.name)}")
        name, where = sql_string(column.name), f"feeds {feed.label}"
        unreadable = "false"
        as_it_is = value is not None and typed.get(value.expression.column if value.expression else None)
        if value is not None and value.expression is not None and column.type not in ("varchar", as_it_is):
            raw = value.expression.sql()
            unreadable = f"({raw} is not null and {cell} is null)"
            reason = (
                f"concat({sql_string(where + ': cannot use ')}, {sql_string(chr(39))}, {raw}::varchar, "
                f"{sql_string(chr(39) + ' as ' + column.name + ' (' + column.type + ')')})"
            )
            checks.append(f"case when {unreadable} then {{'column': {name}, 'kind': 'type', 'reason': {reason}}} end")
        if column.required and not (value is not None and value.expression and value.expression.column in required):
            reason = sql_string(f"{where}: required {column.name} is empty")
            checks.append(
                f"case when {cell} is null and not {unreadable} then "
                f"{{'column': {name}, 'kind': 'missing', 'reason': {reason}}} end"
            )
    problems = (
        f"list_filter([{', '.join(checks)}], lambda problem: problem is not null)"
        if checks
        else '[]::struct("column" varchar, kind varchar, reason varchar)[]'
    )
    taken = f" and coalesce({feed.where.sql()}, false)" if feed.where is not None else ""
    if not checks:  # nothing to find: a view, always the clean rows of _batch, saves copying the file
        table = _feed_relation(index, lazy=True)
        connection.execute(
            f"""create or replace temp view {table} as
            select _row_number, {", ".join(selected)}, _extra
            from _batch where len(_problems) = 0 and _filtered is null{taken}"""
        )
        return table
    table = _feed_relation(index, lazy=False)
    connection.execute(
        f"""create or replace temp table {table} as
        select _row_number, {", ".join(selected)}, {problems} as _feed_problems
        from _batch where len(_problems) = 0 and _filtered is null{taken}"""
    )
    if checks and connection.execute(f"select count(*) from {table} where len(_feed_problems) > 0").fetchone()[0]:
        connection.execute(
            f"""update _batch set _problems = list_concat(_batch._problems, fed._feed_problems)
            from {table} as fed where _batch._row_number = fed._row_number and len(fed._feed_problems) > 0"""
        )
    return table


def _clean(feed_table: str) -> str:
    """The rows of a feed table whose record has no problem (so far)."""
    if feed_table.endswith("_rows"):  # a view that only shows clean rows
        return feed_table
    return (
        f"(select {feed_table}.* from {feed_table} join _batch on _batch._row_number = {feed_table}._row_number "
        "where len(_batch._problems) = 0)"
    )


def _add_problems(
    connection: duckdb.DuckDBPyConnection, rows_sql: str, column: str, kind: str, parameters: list | None = None
) -> None:
    """Append a problem to the _batch rows of ``rows_sql`` (columns _row_number, reason)."""
    connection.execute(
        f"""update _batch set _problems = list_append(_problems,
            {{'column': {sql_string(column)}, 'kind': {sql_string(kind)}, 'reason': marked.reason}})
        from ({rows_sql}) as marked where _batch._row_number = marked._row_number""",
        parameters,
    )


def _key_sql(feed: Feed, qualifier: str = "") -> str:
    prefix = f"{qualifier}." if qualifier else ""
    return ", ".join(prefix + sql_identifier(name) for name in feed.primary_key)


def _quarantine_copies(connection: duckdb.DuckDBPyConnection, contract: Contract, feed: Feed, table: str) -> None:
    """Within the file: keep one row per key (the last or the first) or none, quarantine the other copies. A feed
    that makes one row per key from many (``one_row_per``) collapses its copies instead."""
    if not feed.primary_key or feed.one_row_per:
        return
    key = _key_sql(feed)
    duplicated = connection.execute(
        f"select count(*) from (select {key} from {_clean(table)} group by all having count(*) > 1)"
    ).fetchone()[0]
    if not duplicated:
        return
    key_text = " || ', ' || ".join(
        f"{sql_string(name + '=')} || coalesce({sql_identifier(name)}::varchar, '')" for name in feed.primary_key
    )
    order = "desc" if contract.duplicates == "keep_last" else "asc"
    keep = (
        "false"
        if contract.duplicates == "quarantine"
        else f"row_number() over (partition by {key} order by _row_number {order}) = 1"
    )
    kept_row = f"{'max' if contract.duplicates == 'keep_last' else 'min'}(_row_number) over (partition by {key})"
    where = f" ({feed.label})" if feed.canonical and len(contract.feeds) > 1 else ""
    ending = (
        "'; every copy quarantined'" if contract.duplicates == "quarantine" else "concat('; row ', kept_row, ' kept')"
    )
    _add_problems(
        connection,
        f"""select _row_number, concat({sql_string("duplicate primary key" + where + " (")}, key_text, ')', {ending})
            as reason
        from (
            select *, {key_text} as key_text, count(*) over (partition by {key}) as copies, {keep} as is_kept,
                {kept_row} as kept_row
            from {_clean(table)}
        )
        where copies > 1 and not is_kept""",
        feed.primary_key[0],
        "duplicate",
    )


def _overlapping_keys(connection: duckdb.DuckDBPyConnection, feed: Feed, table: str) -> tuple | None:
    """The range of the feed's first key column when rows loaded before may share a key, else None."""
    first = sql_identifier(feed.primary_key[0])
    low, high = connection.execute(f"select min({first}), max({first}) from {_clean(table)}").fetchone()
    if low is None:
        return None
    # Zone maps answer this from row-group statistics when the key ranges of the files do not overlap.
    overlapping = connection.execute(
        f"select count(*) from (select 1 from {raw_table(feed.table)} where {first} between ? and ? limit 1)",
        [low, high],
    ).fetchone()[0]
    return (low, high) if overlapping else None


def _quarantine_keys_loaded_before(connection, contract: Contract, feed: Feed, table: str) -> None:
    """Policies keep_first and quarantine: a row whose key another file loaded is quarantined."""
    if not feed.primary_key or contract.duplicates == "keep_last":
        return
    bounds = _overlapping_keys(connection, feed, table)
    if bounds is None:
        return
    same_key = " and ".join(f"new.{sql_identifier(n)} = earlier.{sql_identifier(n)}" for n in feed.primary_key)
    first = sql_identifier(feed.primary_key[0])
    _add_problems(
        connection,
        f"""select new._row_number, concat('primary key already loaded from ', earlier._file) as reason
        from {_clean(table)} as new
        join (select {_key_sql(feed)}, any_value(_file) as _file from {raw_table(feed.table)}
              where {first} between ? and ? group by all) as earlier on {same_key}""",
        feed.primary_key[0],
        "duplicate",
        list(bounds),
    )


def _replace_keys_loaded_before(connection, contract: Contract, feed: Feed, table: str) -> int:
    """Policy keep_last: rows of other files with a key this file loads are replaced; returns how many."""
    if not feed.primary_key or contract.duplicates != "keep_last" or _overlapping_keys(connection, feed, table) is None:
        return 0
    key = _key_sql(feed)
    replaced = connection.execute(
        f"delete from {raw_table(feed.table)} where ({key}) in (select ({key}) from {_clean(table)})"
    ).fetchone()[0]
    return int(replaced)


def _write_feed(connection, feed: Feed, table: str, relative: str, run_id: str, contract: Contract) -> int:
    """Insert the feed's clean rows into its raw table (one per key where it collapses); return the rows written."""
    names = ", ".join(sql_identifier(column.name) for column in feed.columns)
    picked = ", ".join(f"fed.{sql_identifier(column.name)}" for column in feed.columns)
    collapse = (
        f"qualify row_number() over (partition by {_key_sql(feed, 'fed')} order by fed._row_number) = 1"
        if feed.one_row_per
        else ""
    )
    rows = (
        f"{table} as fed"
        if table.endswith("_rows")
        else f"(select {table}.*, _batch._extra from {table} join _batch on _batch._row_number = {table}._row_number "
        "where len(_batch._problems) = 0) as fed"
    )
    written = connection.execute(
        f"""insert into {raw_table(feed.table)} ({names}, _file, _row_number, _run_id, _extra, _contract)
        select {picked}, ?, fed._row_number, ?, fed._extra, ?
        from {rows}
        {collapse}""",
        [relative, run_id, contract.name],
    ).fetchone()[0]
    return int(written)


def _renumber_after_rejects(connection: duckdb.DuckDBPyConnection, rejects: int) -> None:
    """Record numbers count every data record: shift the parsed rows past the malformed ones before them."""
    if rejects == 0:
        return
    connection.execute(
        """update _batch set _row_number = _batch._row_number + shift.before
        from (
            select parsed._row_number, count(r.record) as before
            from _batch as parsed
            left join (select record - row_number() over (order by record) as parsed_before, record
                       from _rejected) as r on r.parsed_before < parsed._row_number
            group by 1
        ) as shift
        where _batch._row_number = shift._row_number"""
    )


class _ParserFailed(FileRefused):
    """DuckDB's CSV reader gave up on the file as a whole; line mode may still read it."""


@dataclasses.dataclass(frozen=True)
class _Read:
    """What one read of a file made: its unknown headers, the malformed records, the records parsed, and the
    non-blank physical lines those records account for (a record whose quoted values hold line breaks spans
    several lines; a malformed record counts as one line)."""

    unknown: tuple[str, ...]
    rejected: int
    parsed: int
    lines: int
    blank_inside: int  # blank lines inside quoted values: part of a record, not blank lines between records
    swallowed: int = 0  # records whose quoted values hold lines that look like whole records of their own


def _line_runs_sql(present: list[str], blank_inside: bool = False) -> str:
    """The non-blank lines a record adds beyond its first: the runs of line breaks inside its values (each run
    starts one more line with text on it; the rest of a run are blank lines, counted with the file's). With
    ``blank_inside``, the blank lines inside its values instead (its line breaks less their runs)."""
    text = f"concat_ws(chr(31), {', '.join(sql_identifier(header) for header in present)})"
    count = f"len(regexp_extract_all({text}, '[\\r\\n]+'))"
    if blank_inside:
        count = f"len(regexp_extract_all({text}, '\\r\\n|\\r|\\n')) - {count}"
    return f"case when strpos({text}, chr(10)) > 0 or strpos({text}, chr(13)) > 0 then {count} else 0 end"


def _swallowed_sql(present: list[str], delimiter: str) -> str:
    """True when a value's second or later line holds as many delimiters as a whole record has: a stray quote
    opened a value and a later quote closed it, so the lines between would be swallowed into one value although
    the line count still adds up. A real note written over several lines rarely looks like that."""
    text = f"concat_ws(chr(31), {', '.join(sql_identifier(header) for header in present)})"
    mark = sql_string(delimiter)
    looks_whole = f"(length(part) - length(replace(part, {mark}, ''))) // length({mark}) >= {int(len(present) - 1)}"
    return (
        f"case when strpos({text}, chr(10)) > 0 or strpos({text}, chr(13)) > 0 then "
        f"len(list_filter(regexp_split_to_array({text}, '\\r\\n|\\r|\\n')[2:], lambda part: {looks_whole})) > 0 "
        "else false end"
    )


def _read_batch(
    connection: duckdb.DuckDBPyConnection,
    contract: Contract,
    source: Readable,
    shown_name: str,
    unbalanced: tuple[tuple[int, str], ...] = (),
) -> _Read:
    """Read the file into temp table _batch (typed columns, problems) and _rejected (malformed records).

    A line-mode copy (``source.line_column`` set) numbers each record by its physical line, and ``unbalanced``
    are its lines set apart because their quotes do not balance."""
    rejects = sql.safe_name(f"rejects_{next(_unique)}", "rejects table")
    reader = reader_sql(source, rejects, contract.columns)
    try:
        present = [row[0] for row in connection.execute(f"describe select * from {reader}").fetchall()]
    except duckdb.Error as error:
        raise _ParserFailed(
            f"{shown_name}: cannot be read as {contract.format} ({_first_line(error, source)})"
        ) from error
    numbered = source.line_column
    if numbered:
        present = [header for header in present if header != numbered]
    # Parquet rows are numbered by the reader (in parallel) rather than afterwards, unless a column has its name
    parquet_numbered = source.format == "parquet" and PARQUET_ROW_COLUMN not in present
    if parquet_numbered:
        reader = reader_sql(source, rejects, contract.columns, numbered=True)
    matched, unknown = _match_headers(contract, present)
    missing = [column for column in contract.columns if column.required and column.name not in matched]
    if missing:
        names = ", ".join(
            f"{column.name!r} (header {' or '.join(repr(h) for h in column.headers)})" for column in missing
        )
        raise FileRefused(f"{shown_name}: required column {names} missing; the file has {', '.join(present)}")
    excel = contract.format == "xlsx"
    selected = [
        f"{cast_sql(source, column, matched[column.name], excel)} as {sql_identifier(column.name)}"
        if column.name in matched
        else f"null::{type_sql(column.type)} as {sql_identifier(column.name)}"
        for column in contract.columns
    ]
    extra = (
        "json_object(" + ", ".join(f"{sql_string(h)}, {_text_value(source, h)}" for h in unknown) + ")"
        if unknown
        else "null::json"
    )
    # Lines before the first record in the landing file (a line-mode copy has lost its skipped lines).
    dialect = contract.dialect if numbered else source.dialect
    header_lines = int(dialect.skip_rows) + (1 if dialect.header else 0)
    counting = not numbered and source.format == "csv" and source.lines is not None and source.lines.has_quote
    if counting:
        selected.append(f"{_line_runs_sql(present)} as _line_runs")
        if len(present) > 1:
            selected.append(f"{_swallowed_sql(present, source.dialect.delimiter)} as _swallowed")
        if source.lines.blank:  # rare: are some of the file's blank lines inside quoted values?
            selected.append(f"{_line_runs_sql(present, blank_inside=True)} as _blank_inside")
    record = "to_json(_source_row)"
    if numbered:
        selected.append(f"try_cast({sql_identifier(numbered)} as bigint) - {header_lines} as _row_number")
        record = f"json_remove({record}, {sql_string('$.' + sql_identifier(numbered))})"
    elif parquet_numbered:
        selected.append(f"{sql_identifier(PARQUET_ROW_COLUMN)} + 1 as _row_number")
        record = f"json_remove({record}, {sql_string('$.' + PARQUET_ROW_COLUMN)})"
    try:
        connection.execute(
            # No row_number() window here: it would serialise the parallel read (twice the time). The temp
            # table keeps the file's order, so its rowid numbers the records (set just below).
            f"""create or replace temp table _batch as
            with source as (select * from {reader} as row_values),
            checked as (
                select {", ".join(selected)}, {extra} as _extra,
                    {problems_sql(source, matched, contract, excel)} as _problems,
                    source as _source_row
                from source
            )
            -- the row as the file held it, serialised only for the rows that are quarantined
            select * exclude (_source_row),
                case when len(_problems) > 0 then {record} end as _record
            from checked"""
        )
    except duckdb.Error as error:
        raise _ParserFailed(
            f"{shown_name}: cannot be read as {contract.format} ({_first_line(error, source)})"
        ) from error
    if not (numbered or parquet_numbered):
        connection.execute("alter table _batch add column _row_number bigint")
        # Temporary tables number their rows from an offset: count from the first one.
        connection.execute("update _batch set _row_number = rowid - (select min(rowid) from _batch) + 1")
    sums = "coalesce(sum(_line_runs), 0)" if counting else "0"
    sums += ", coalesce(sum(_blank_inside), 0)" if counting and source.lines.blank else ", 0"
    sums += ", count(*) filter (where _swallowed)" if counting and len(present) > 1 else ", 0"
    parsed, runs, blank_inside, swallowed = connection.execute(f"select count(*), {sums} from _batch").fetchone()
    if source.format == "parquet":
        connection.execute("create or replace temp table _rejected (record bigint, reason varchar, line varchar)")
        return _Read(unknown, 0, parsed, parsed, 0)
    # DuckDB logs one reject per missing column: one malformed record is one line. In line mode each record's
    # first field is its physical line.
    delimiter = sql_string(source.dialect.delimiter)
    record_number = (
        f"try_cast(split_part(any_value(csv_line), {delimiter}, 1) as bigint) - {header_lines}"
        if numbered
        else f"line - {header_lines}"
    )
    reason = "string_agg(distinct error_message, '; ')"
    if numbered:
        reason = f"concat('line ', format('{{:,}}', {record_number} + {header_lines}), ': ', {reason})"
    connection.execute(
        f"""create or replace temp table _rejected as
        select {record_number} as record, min(error_type) as error_type, {reason} as reason,
            any_value(csv_line) as line
        from {rejects} group by line"""
    )
    connection.execute(f"drop table {rejects}")
    connection.execute(f"drop table {rejects}_scan")
    encoding_error = connection.execute(
        "select min(record) from _rejected where error_type = 'INVALID ENCODING'"
    ).fetchone()[0]
    if encoding_error is not None:
        raise FileRefused(
            f"{shown_name}: line {encoding_error + header_lines} is not valid {contract.dialect.encoding}; "
            "declare the file's real encoding in its contract (csv: {encoding: cp1252}, for example)"
        )
    if unbalanced:
        connection.execute(
            """insert into _rejected
            select line_number - ?, 'UNQUOTED VALUE',
                concat('line ', format('{:,}', line_number), ': a quote opens a value that the line does not close'),
                text
            from (select unnest(?::bigint[]) as line_number, unnest(?::varchar[]) as text)""",
            [header_lines, [number for number, _ in unbalanced], [text for _, text in unbalanced]],
        )
    rejected = connection.execute("select count(*) from _rejected").fetchone()[0]
    if not numbered:
        _renumber_after_rejects(connection, rejected)
    return _Read(unknown, rejected, parsed, parsed + runs + rejected, int(blank_inside), int(swallowed))


def _refuse_malformed(connection: duckdb.DuckDBPyConnection, contract: Contract, read: _Read, shown_name: str) -> None:
    """Most records malformed: the delimiter or the columns are wrong, not some rows."""
    rejected, parsed = read.rejected, read.parsed
    if rejected and rejected / (rejected + parsed) > contract.refuse_above_bad_share:
        example = connection.execute("select reason from _rejected order by record limit 1").fetchone()[0]
        share = "every record is" if parsed == 0 else f"{rejected:,} of {rejected + parsed:,} records are"
        raise FileRefused(f"{shown_name}: {share} malformed ({example}); check the delimiter and the columns")


def _first_line(failure: Exception, source: Readable) -> str:
    """The first line of DuckDB's error, without the path of the file it read (a temporary copy, or a folder
    of the machine, that nobody needs to see)."""
    text = (str(failure).splitlines() or [""])[0]
    return text.replace(f' "{source.path}"', "").replace(str(source.path), "the file")[:200]


def _read_accounted(
    connection: duckdb.DuckDBPyConnection, contract: Contract, source: Readable, shown_name: str
) -> tuple[_Read, int, str]:
    """Read the file so that every physical data line is accounted for; return the read, the blank lines and a
    note for the ledger.

    The parser's records (with the lines their quoted values span) plus its malformed records plus the blank
    lines must make the file's physical data lines, counted on its bytes. When they do not (a stray quote
    swallowed the lines after it, the parser counted a line twice or gave up on the file), the file is read again
    in line mode: one record per physical line, and a line whose quotes do not balance is malformed on its own.
    """
    lines = source.lines
    if contract.format != "csv" or source.format != "csv" or lines is None:
        read = _read_batch(connection, contract, source, shown_name)
        _refuse_malformed(connection, contract, read, shown_name)
        return read, 0, ""
    header_lines = int(source.dialect.skip_rows) + (1 if source.dialect.header else 0)
    data_lines = max(lines.lines - header_lines, 0)
    try:
        read = _read_batch(connection, contract, source, shown_name)
        if read.lines + lines.blank == data_lines and not read.swallowed:
            _refuse_malformed(connection, contract, read, shown_name)
            return read, lines.blank - read.blank_inside, ""
        parser_said = (
            f"the CSV parser's {read.parsed:,} records and {read.rejected:,} malformed ones"
            if not read.swallowed
            else f"the CSV parser, whose {read.swallowed:,} record(s) hold whole lines of records in a quoted value,"
        )
    except _ParserFailed as failure:
        parser_said = f"the CSV parser, which gave up on it ({_first_line(failure.__cause__ or failure, source)}),"
    with line_mode(source) as copy:
        read = _read_batch(connection, contract, copy.readable, shown_name, copy.unbalanced)
    if read.lines + copy.blank != data_lines:
        raise FileRefused(
            f"{shown_name}: {data_lines:,} lines, but only {read.lines + copy.blank:,} could be accounted for, even "
            "line by line; check the file's delimiter and quote character in its contract"
        )
    _refuse_malformed(connection, contract, read, shown_name)
    note = (
        f"read line by line: {parser_said} did not account for the file's {data_lines:,} data lines "
        "(a stray quote?); each line is a record, and a line whose quotes do not balance is quarantined"
    )
    return read, copy.blank, note


def load_file(
    connection: duckdb.DuckDBPyConnection,
    contract: Contract,
    file: Path,
    landing_dir: Path,
    run_id: str,
    previous: ledger.Entry | None = None,
    plausibility: Plausibility | None = None,
) -> FileLoad:
    """Load one file (in one transaction) unless the ledger already holds it with the same content and contract
    (or the same content was taken back with ``crm unload``). Links and special files are refused unopened, an
    empty file is recorded as ``empty``, and a file still being written is left for the next run (``deferred``)."""
    relative = file.relative_to(landing_dir).as_posix()
    seen = landing.inspect(file, landing_dir)  # nothing is opened before this (pipelines/ingest/landing.py)
    if seen.status == "deferred":
        return FileLoad(relative, "", "deferred", message=seen.message)
    if seen.status == "refused":
        if previous is not None and previous.sha256 == "" and previous.status in ("refused", "unloaded"):
            return FileLoad(relative, "", "unchanged", message=seen.message)  # refused unopened before: same
        return _record_refusal(
            connection, contract, file, relative, "", run_id, seen.message, previous, reason_code=seen.reason_code,
            rows=0,
        )  # fmt: skip
    stat_key = seen.stat_key if seen.settled() else ""
    known = seen.readable and stat_key and previous is not None and previous.stat_key == stat_key
    if known and _holds(previous, previous.sha256, contract):
        # the ledger knows this very file (same stat key): its content is the one hashed then, unread tonight
        return _unchanged(previous, relative, previous.sha256)
    scan = None if seen.status == "empty" else scan_file(file, contract.dialect.quote, text=contract.format == "csv")
    sha256 = hashlib.sha256(b"").hexdigest() if scan is None else scan.sha256  # hash and line count: one read
    still_written = landing.changed_since(file, seen)
    if still_written:
        return FileLoad(relative, "", "deferred", message=still_written)
    if _holds(previous, sha256, contract):
        if stat_key:
            ledger.remember_stat_key(connection, contract.name, relative, stat_key)
        return _unchanged(previous, relative, sha256)
    if seen.status == "empty" and previous is not None and previous.status == "loaded":
        # A 0-byte re-delivery is a failed transfer far more often than a wish to empty the file: keep its rows.
        return FileLoad(
            relative,
            sha256,
            "deferred",
            message=f"{relative} is empty (0 bytes) but an earlier delivery of it is loaded (run {previous.run_id}): "
            f"its rows stay until a full file replaces it, or `crm unload {relative}` takes them back",
        )
    if seen.status == "empty":  # recorded, blocks nothing
        with _transaction(connection):
            replaced = _forget_earlier_delivery(connection, contract, relative, previous) if previous else 0
            empty = FileLoad(relative, sha256, "empty", rows_replaced=replaced, message=seen.message,
                             contract_sha256=contract.sha256, stat_key=stat_key)  # fmt: skip
            ledger.record(connection, contract.name, file, empty, run_id)
        return empty
    try:
        # Read before the transaction: a parser error would abort it, and line mode must still be able to read.
        with readable(contract, file, relative, scan) as source:
            read, blank_lines, note = _read_accounted(connection, contract, source, relative)
    except FileRefused as refusal:
        _drop_work_tables(connection, contract)
        return _record_refusal(
            connection, contract, file, relative, sha256, run_id, str(refusal), previous, scan=scan, stat_key=stat_key
        )
    except BaseException:
        _drop_work_tables(connection, contract)
        raise
    connection.execute("begin transaction")
    try:
        replaced = _forget_earlier_delivery(connection, contract, relative, previous) if previous is not None else 0
        unknown, rejected = read.unknown, read.rejected
        rows_read = read.parsed + rejected
        _refuse_unreadable_columns(connection, contract, relative, rows_read)
        check_rows(connection, contract, relative, run_id, plausibility)  # plausibility
        _derive_and_filter(connection, contract)
        tables = [_project_feed(connection, contract, feed, index) for index, feed in enumerate(contract.feeds)]
        for feed, table in zip(contract.feeds, tables, strict=True):
            _quarantine_copies(connection, contract, feed, table)
            _quarantine_keys_loaded_before(connection, contract, feed, table)
        written = []
        for feed, table in zip(contract.feeds, tables, strict=True):
            replaced += _replace_keys_loaded_before(connection, contract, feed, table)
            written.append((feed.table, _write_feed(connection, feed, table, relative, run_id, contract)))
        names = ", ".join(sql_identifier(column.name) for column in contract.columns)
        connection.execute(
            f"""insert into {ledger.META_SCHEMA}.quarantine
            select ?, ?, _row_number, problem.column, problem.reason, problem.kind, _record, ?, now()
            from (
                select _row_number, unnest(_problems) as problem,
                    coalesce(_record, to_json(struct_pack({names}))) as _record
                from _batch where len(_problems) > 0
            )
            union all
            select ?, ?, record, null, concat('malformed record: ', reason), 'malformed', to_json(line), ?, now()
            from _rejected""",
            [contract.name, relative, run_id] * 2,
        )
        bad_rows = connection.execute("select count(*) from _batch where len(_problems) > 0").fetchone()[0]
        filtered = connection.execute(
            "select _filtered, count(*) from _batch where len(_problems) = 0 and _filtered is not null "
            "group by 1 order by 2 desc, 1"
        ).fetchall()
        rows_filtered = sum(count for _, count in filtered)
        result = FileLoad(
            relative,
            sha256,
            "loaded",
            rows_read,
            rows_read - bad_rows - rejected - rows_filtered,
            bad_rows + rejected,
            replaced,
            unknown,
            rows_filtered=rows_filtered,
            filtered=tuple((reason, int(count)) for reason, count in filtered),
            tables=tuple(written),
            contract_sha256=contract.sha256,
            message=note,
            blank_lines=blank_lines,
            stat_key=stat_key,
        )
        ledger.record(connection, contract.name, file, result, run_id)
        connection.execute("commit")
    except FileRefused as refusal:
        connection.execute("rollback")
        return _record_refusal(
            connection, contract, file, relative, sha256, run_id, str(refusal), previous, scan=scan, stat_key=stat_key
        )
    except BaseException:
        connection.execute("rollback")
        raise
    finally:
        _drop_work_tables(connection, contract)
    return result


def _holds(previous: ledger.Entry | None, sha256: str, contract: Contract) -> bool:
    """Whether the ledger's current version of a file is this content (``sha256``), to be skipped: taken back
    (``unloaded``), or held under this very contract."""
    if previous is None or not sha256 or previous.sha256 != sha256:
        return False
    return previous.status == "unloaded" or previous.contract_sha256 == contract.sha256


def _unchanged(previous: ledger.Entry, relative: str, sha256: str) -> FileLoad:
    if previous.status == "unloaded":
        message = f"{relative} was unloaded by run {previous.run_id}; it loads again when its content changes"
        return FileLoad(relative, sha256, "unchanged", message=message)
    return FileLoad(relative, sha256, "unchanged", message=f"already {previous.status} by run {previous.run_id}")


def _drop_work_tables(connection: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    for index in range(len(contract.feeds)):
        connection.execute(f"drop view if exists {_feed_relation(index, lazy=True)}")
        connection.execute(f"drop table if exists {_feed_relation(index, lazy=False)}")
    for table in ("_batch", "_rejected"):
        connection.execute(f"drop table if exists {table}")


def _forget_earlier_delivery(
    connection: duckdb.DuckDBPyConnection, contract: Contract, relative: str, previous: ledger.Entry
) -> int:
    """A corrected re-delivery (or a changed contract) replaces the file's earlier rows and quarantine entries."""
    removed = 0
    for table in dict.fromkeys([*previous.tables, *contract.tables]):
        if _table_exists(connection, table):
            removed += connection.execute(
                f"delete from {raw_table(table)} where _file = ? and _contract = ?", [relative, contract.name]
            ).fetchone()[0]
    connection.execute(
        f"delete from {ledger.META_SCHEMA}.quarantine where source_table = ? and file = ?", [contract.name, relative]
    )
    ledger.mark_replaced(connection, contract.name, relative)
    return int(removed)


def _table_exists(connection: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        connection.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [RAW_SCHEMA, table],
        ).fetchone()[0]
    )


def _record_refusal(
    connection: duckdb.DuckDBPyConnection,
    contract: Contract,
    file: Path,
    relative: str,
    sha256: str,
    run_id: str,
    message: str,
    previous: ledger.Entry | None,
    reason_code: str = "refused",
    rows: int | None = None,
    scan: Scan | None = None,
    stat_key: str = "",
) -> FileLoad:
    """A refused file loads nothing; it is held back whole: one file-level quarantine entry, one ledger row.
    ``rows`` is its records when known (0 for a file refused unopened), else they are counted."""
    blank = 0
    if rows is None:
        rows, blank = _count_records(contract, file, scan)
    with _transaction(connection):
        replaced = _forget_earlier_delivery(connection, contract, relative, previous) if previous else 0
        connection.execute(
            f"insert into {ledger.META_SCHEMA}.quarantine values (?, ?, null, null, ?, ?, null, ?, now())",
            [contract.name, relative, f"file refused: {message}", reason_code, run_id],
        )
        result = FileLoad(
            relative, sha256, "refused", rows, 0, rows, replaced, (), message, contract_sha256=contract.sha256,
            blank_lines=blank, stat_key=stat_key,
        )  # fmt: skip
        ledger.record(connection, contract.name, file, result, run_id)
    return result


@contextmanager
def _transaction(connection: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One transaction: committed when the block ends, rolled back when it raises (earlier rows untouched)."""
    connection.execute("begin transaction")
    try:
        yield
    except BaseException:
        connection.execute("rollback")
        raise
    connection.execute("commit")


def _count_records(contract: Contract, file: Path, scan: Scan | None = None) -> tuple[int, int]:
    """Records and blank lines of a refused CSV file, as line mode would read it (its non-blank physical lines
    less the header), so the ledger still reconciles."""
    if contract.format != "csv":
        return 0, 0
    scan = scan or scan_file(file, contract.dialect.quote)
    lines = scan.lines
    if scan.byte_order_mark is not None and not scan.damaged:  # UTF-16/32: count the decoded text's lines
        with open_bytes(file, scan.gzip) as handle:
            text = handle.read().decode(scan.byte_order_mark[0], errors="replace").encode("utf-8")
        lines = count_lines([text])
    header_lines = contract.dialect.skip_rows + (1 if contract.dialect.header else 0)
    data_lines = max(lines.lines - header_lines, 0)
    blank = min(lines.blank, data_lines)
    return data_lines - blank, blank


def load_table(
    connection: duckdb.DuckDBPyConnection,
    contract: Contract,
    landing_dir: Path,
    run_id: str,
    plausibility: Plausibility | None = None,
) -> list[FileLoad]:
    """Bring the raw tables a contract feeds up to date with the landing zone: new and changed files load,
    unchanged ones are skipped, and every file loads again when the contract itself changed.

    When a table's columns changed since it was built, it is rebuilt, and every file that fed it (under any
    contract) loads again.
    """
    connection.execute("set enable_progress_bar = false")  # it slows big reads and nobody watches it here
    ledger.ensure_tables(connection)
    for feed in contract.feeds:
        if not _raw_table_matches(connection, feed):
            _forget_files_that_fed(connection, feed.table)
            _create_feed_table(connection, feed)
    current = ledger.current_entries(connection, contract.name)
    return [
        load_file(
            connection,
            contract,
            file,
            landing_dir,
            run_id,
            current.get(file.relative_to(landing_dir).as_posix()),
            plausibility,
        )
        for file in contract.matching_files(landing_dir)
    ]


def _forget_files_that_fed(connection: duckdb.DuckDBPyConnection, table: str) -> None:
    """A table is rebuilt: the files that fed it load again, so their rows leave the other tables they fed too."""
    for source_table, file, tables in ledger.files_that_fed(connection, table):
        for other in tables:
            if other != table and _table_exists(connection, other):
                connection.execute(
                    f"delete from {raw_table(other)} where _file = ? and _contract = ?", [file, source_table]
                )
    ledger.forget_table(connection, table)
