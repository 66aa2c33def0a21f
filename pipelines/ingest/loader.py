"""Load a source table's files into DuckDB by its contract: good rows to ``raw``, bad rows to ``meta.quarantine``.

Every value is read as text and cast by the contract, so one unreadable cell quarantines its row (with the file,
row number, column and reason) instead of failing the file: rows read = rows loaded + rows quarantined, always.
A file is refused whole, with an error naming the file and the column, when it lacks a required column or when
most of a column cannot be read as its type (the export's format changed); a refused file loads nothing and stays
in the ledger as refused until a corrected file replaces it.

Loads are incremental and idempotent: a file already loaded with the same content (SHA-256) is skipped; a
corrected re-delivery under the same name replaces the rows of the earlier one; rows whose primary key was
loaded before are resolved by the contract's ``duplicates`` policy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from pathlib import Path

import duckdb

from pipelines.ingest import ledger
from pipelines.ingest.contracts import Column, Contract
from pipelines.ingest.readers import FileRefused, Readable, readable

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


def sql_string(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def file_sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def reader_sql(source: Readable, rejects: str, columns: tuple[Column, ...]) -> str:
    """The DuckDB table function that reads one file; CSV as all text, malformed records to ``rejects``."""
    if source.format == "parquet":
        return f"read_parquet({sql_string(str(source.path))})"
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
    if not dialect.header:
        names = ", ".join(f"{sql_string(column.name)}: 'VARCHAR'" for column in columns)
        options += ["auto_detect = false", f"columns = {{{names}}}"]
    return f"read_csv({', '.join(options)})"


def _text_value(source: Readable, header: str) -> str:
    """The cell as the file holds it, empty text read as missing."""
    if source.format == "parquet":
        return sql_identifier(header)
    return f"nullif(trim({sql_identifier(header)}), '')"


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
        return f"try_cast({value} as {kind})"
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
    return f"try_cast({value} as {kind})"


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
        return "[]::struct(column varchar, kind varchar, reason varchar)[]"
    return f"list_filter([{', '.join(checks)}], lambda problem: problem is not null)"


def create_raw_table(connection: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    """(Re)create the empty raw table of a contract: its typed columns plus lineage and unknown columns."""
    connection.execute(f"create schema if not exists {RAW_SCHEMA}")
    columns = [f"{sql_identifier(column.name)} {column.type}" for column in contract.columns]
    columns += ["_file varchar", "_row_number bigint", "_run_id varchar", "_extra json"]
    connection.execute(f"create or replace table {RAW_SCHEMA}.{contract.name} ({', '.join(columns)})")


def _raw_table_matches(connection: duckdb.DuckDBPyConnection, contract: Contract) -> bool:
    rows = connection.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [RAW_SCHEMA, contract.name],
    ).fetchall()
    expected = [(column.name, column.type) for column in contract.columns]
    actual = [(name, kind.lower().replace(" ", "")) for name, kind in rows if not name.startswith("_")]
    return bool(rows) and actual == expected


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


def _mark_duplicates(connection: duckdb.DuckDBPyConnection, contract: Contract) -> int:
    """Resolve primary-key duplicates within the file and against rows loaded from other files.

    Returns the number of rows of other files that this file's rows replace (policy keep_last).
    """
    if not contract.primary_key:
        return 0
    key = ", ".join(sql_identifier(name) for name in contract.primary_key)
    duplicated = connection.execute(
        f"select count(*) from (select {key} from _batch where len(_problems) = 0 group by all having count(*) > 1)"
    ).fetchone()[0]
    if duplicated:
        _quarantine_copies(connection, contract, key)
    return _resolve_keys_loaded_before(connection, contract, key)


def _quarantine_copies(connection: duckdb.DuckDBPyConnection, contract: Contract, key: str) -> None:
    """Within the file: keep one row per key (the last or the first) or none, quarantine the other copies."""
    key_text = " || ', ' || ".join(
        f"{sql_string(name + '=')} || coalesce({sql_identifier(name)}::varchar, '')" for name in contract.primary_key
    )
    order = "desc" if contract.duplicates == "keep_last" else "asc"
    keep = (
        "false"
        if contract.duplicates == "quarantine"
        else f"row_number() over (partition by {key} order by _row_number {order}) = 1"
    )
    kept_row = f"{'max' if contract.duplicates == 'keep_last' else 'min'}(_row_number) over (partition by {key})"
    connection.execute(
        f"""create or replace temp table _duplicates as
        select _row_number, key_text, kept_row
        from (
            select *, {key_text} as key_text, count(*) over (partition by {key}) as copies, {keep} as is_kept,
                {kept_row} as kept_row
            from _batch where len(_problems) = 0
        )
        where copies > 1 and not is_kept"""
    )
    reason = "concat('duplicate primary key (', _duplicates.key_text, ')" + (
        "; every copy quarantined')"
        if contract.duplicates == "quarantine"
        else "; row ', _duplicates.kept_row, ' kept')"
    )
    connection.execute(
        f"""update _batch set _problems = list_append(_problems,
            {{'column': {sql_string(contract.primary_key[0])}, 'kind': 'duplicate', 'reason': {reason}}})
        from _duplicates where _batch._row_number = _duplicates._row_number"""
    )
    connection.execute("drop table _duplicates")


def _resolve_keys_loaded_before(connection: duckdb.DuckDBPyConnection, contract: Contract, key: str) -> int:
    """Against the rows of other files: replace them (keep_last) or quarantine the new copies."""
    raw = f"{RAW_SCHEMA}.{contract.name}"
    first = sql_identifier(contract.primary_key[0])
    low, high = connection.execute(f"select min({first}), max({first}) from _batch where len(_problems) = 0").fetchone()
    if low is None:
        return 0
    # Zone maps answer this from row-group statistics when the key ranges of the files do not overlap.
    overlapping = connection.execute(
        f"select count(*) from (select 1 from {raw} where {first} between ? and ? limit 1)", [low, high]
    ).fetchone()[0]
    if not overlapping:
        return 0
    if contract.duplicates == "keep_last":
        replaced = connection.execute(
            f"""delete from {raw} where ({key}) in (select ({key}) from _batch where len(_problems) = 0)"""
        ).fetchone()[0]
        return int(replaced)
    same_key = " and ".join(f"_batch.{sql_identifier(n)} = earlier.{sql_identifier(n)}" for n in contract.primary_key)
    connection.execute(
        f"""update _batch set _problems = list_append(_problems,
            {{'column': {sql_string(contract.primary_key[0])}, 'kind': 'duplicate',
              'reason': concat('primary key already loaded from ', earlier._file)}})
        from (select {key}, any_value(_file) as _file from {raw} where {first} between ? and ? group by all) as earlier
        where len(_batch._problems) = 0 and {same_key}""",
        [low, high],
    )
    return 0


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


def _read_batch(
    connection: duckdb.DuckDBPyConnection, contract: Contract, source: Readable, shown_name: str
) -> tuple[tuple[str, ...], int, int]:
    """Read the file into temp table _batch (typed columns, problems) and _rejected; return unknown headers,
    the number of malformed records and the number of records parsed."""
    rejects = f"_rejects_{next(_unique)}"
    reader = reader_sql(source, rejects, contract.columns)
    try:
        present = [row[0] for row in connection.execute(f"describe select * from {reader}").fetchall()]
    except duckdb.Error as error:
        raise FileRefused(f"{shown_name}: cannot be read as {contract.format} ({error})") from error
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
        else f"null::{column.type} as {sql_identifier(column.name)}"
        for column in contract.columns
    ]
    extra = (
        "json_object(" + ", ".join(f"{sql_string(h)}, {_text_value(source, h)}" for h in unknown) + ")"
        if unknown
        else "null::json"
    )
    header_lines = int(source.dialect.skip_rows) + (1 if source.dialect.header else 0)
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
                case when len(_problems) > 0 then to_json(_source_row) end as _record
            from checked"""
        )
    except duckdb.Error as error:
        raise FileRefused(f"{shown_name}: cannot be read as {contract.format} ({error})") from error
    connection.execute("alter table _batch add column _row_number bigint")
    # Temporary tables number their rows from an offset: count from the first one.
    connection.execute("update _batch set _row_number = rowid - (select min(rowid) from _batch) + 1")
    parsed = connection.execute("select count(*) from _batch").fetchone()[0]
    if source.format == "parquet":
        connection.execute("create or replace temp table _rejected (record bigint, reason varchar, line varchar)")
        return unknown, 0, parsed
    connection.execute(
        # DuckDB logs one reject per missing column: one malformed record is one line.
        f"""create or replace temp table _rejected as
        select line - {header_lines} as record, min(error_type) as error_type,
            string_agg(distinct error_message, '; ') as reason, any_value(csv_line) as line
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
    rejected = connection.execute("select count(*) from _rejected").fetchone()[0]
    if rejected and rejected / (rejected + parsed) > contract.refuse_above_bad_share:
        example = connection.execute("select reason from _rejected order by record limit 1").fetchone()[0]
        share = "every record is" if parsed == 0 else f"{rejected:,} of {rejected + parsed:,} records are"
        raise FileRefused(f"{shown_name}: {share} malformed ({example}); check the delimiter and the columns")
    _renumber_after_rejects(connection, rejected)
    return unknown, rejected, parsed


def load_file(
    connection: duckdb.DuckDBPyConnection,
    contract: Contract,
    file: Path,
    landing_dir: Path,
    run_id: str,
    previous: ledger.Entry | None = None,
) -> FileLoad:
    """Load one file (in one transaction) unless the ledger already holds it with the same content."""
    relative = file.relative_to(landing_dir).as_posix()
    sha256 = file_sha256(file)
    if previous is not None and previous.sha256 == sha256:
        return FileLoad(relative, sha256, "unchanged", message=f"already {previous.status} by run {previous.run_id}")
    connection.execute("begin transaction")
    try:
        replaced = _forget_earlier_delivery(connection, contract, relative) if previous is not None else 0
        with readable(contract, file, relative) as source:
            unknown, rejected, parsed = _read_batch(connection, contract, source, relative)
        rows_read = parsed + rejected
        _refuse_unreadable_columns(connection, contract, relative, rows_read)
        replaced += _mark_duplicates(connection, contract)
        names = ", ".join(sql_identifier(column.name) for column in contract.columns)
        connection.execute(
            f"insert into {RAW_SCHEMA}.{contract.name} "
            f"select {names}, ?, _row_number, ?, _extra from _batch where len(_problems) = 0",
            [relative, run_id],
        )
        connection.execute(
            f"""insert into {ledger.META_SCHEMA}.quarantine
            select ?, ?, _row_number, problem.column, problem.reason, _record, ?, now()
            from (
                select _row_number, unnest(_problems) as problem,
                    coalesce(_record, to_json(struct_pack({names}))) as _record
                from _batch where len(_problems) > 0
            )
            union all
            select ?, ?, record, null, concat('malformed record: ', reason), to_json(line), ?, now() from _rejected""",
            [contract.name, relative, run_id] * 2,
        )
        bad_rows = connection.execute("select count(*) from _batch where len(_problems) > 0").fetchone()[0]
        result = FileLoad(
            relative,
            sha256,
            "loaded",
            rows_read,
            rows_read - bad_rows - rejected,
            bad_rows + rejected,
            replaced,
            unknown,
        )
        ledger.record(connection, contract.name, file, result, run_id)
        connection.execute("commit")
    except FileRefused as refusal:
        connection.execute("rollback")
        return _record_refusal(connection, contract, file, relative, sha256, run_id, str(refusal), previous)
    except BaseException:
        connection.execute("rollback")
        raise
    finally:
        for table in ("_batch", "_rejected"):
            connection.execute(f"drop table if exists {table}")
    return result


def _forget_earlier_delivery(connection: duckdb.DuckDBPyConnection, contract: Contract, relative: str) -> int:
    """A corrected re-delivery replaces the file's earlier rows and quarantine entries."""
    removed = connection.execute(f"delete from {RAW_SCHEMA}.{contract.name} where _file = ?", [relative]).fetchone()[0]
    connection.execute(
        f"delete from {ledger.META_SCHEMA}.quarantine where source_table = ? and file = ?", [contract.name, relative]
    )
    ledger.mark_replaced(connection, contract.name, relative)
    return int(removed)


def _record_refusal(
    connection: duckdb.DuckDBPyConnection,
    contract: Contract,
    file: Path,
    relative: str,
    sha256: str,
    run_id: str,
    message: str,
    previous: ledger.Entry | None,
) -> FileLoad:
    """A refused file loads nothing; it is held back whole: one file-level quarantine entry, one ledger row."""
    connection.execute("begin transaction")
    replaced = _forget_earlier_delivery(connection, contract, relative) if previous is not None else 0
    rows = _count_records(contract, file)
    connection.execute(
        f"insert into {ledger.META_SCHEMA}.quarantine values (?, ?, null, null, ?, null, ?, now())",
        [contract.name, relative, f"file refused: {message}", run_id],
    )
    result = FileLoad(relative, sha256, "refused", rows, 0, rows, replaced, (), message)
    ledger.record(connection, contract.name, file, result, run_id)
    connection.execute("commit")
    return result


def _count_records(contract: Contract, file: Path) -> int:
    """Data records of a refused file (its lines less the header), so the ledger still reconciles."""
    if contract.format != "csv":
        return 0
    with file.open("rb") as handle:
        lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
        handle.seek(max(file.stat().st_size - 1, 0))
        if file.stat().st_size and handle.read(1) != b"\n":
            lines += 1
    return max(lines - contract.dialect.skip_rows - (1 if contract.dialect.header else 0), 0)


def load_table(
    connection: duckdb.DuckDBPyConnection, contract: Contract, landing_dir: Path, run_id: str
) -> list[FileLoad]:
    """Bring a raw table up to date with the landing zone: new and changed files load, unchanged ones are skipped.

    When the contract's columns changed since the table was built, the table is rebuilt from every file.
    """
    connection.execute("set enable_progress_bar = false")  # it slows big reads and nobody watches it here
    ledger.ensure_tables(connection)
    if not _raw_table_matches(connection, contract):
        create_raw_table(connection, contract)
        ledger.forget_table(connection, contract.name)
    current = ledger.current_entries(connection, contract.name)
    return [
        load_file(
            connection, contract, file, landing_dir, run_id, current.get(file.relative_to(landing_dir).as_posix())
        )
        for file in contract.matching_files(landing_dir)
    ]
