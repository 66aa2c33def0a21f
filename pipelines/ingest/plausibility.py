"""Plausibility at the door: values a file may hold but no business produces, caught row by row as it loads.

One order line with a quantity of 2,147,483,647 (the largest integer) once took twelve months' revenue from EUR
305 k to EUR 2.15 bn; the largest decimal and a date in 1900 went through too. Two guards stop such rows:

- **Contract bounds.** A column's ``min``/``max`` (numbers on numeric columns, ISO dates on date and timestamp
  columns). A row outside them is quarantined with reason code ``bound`` when the column's severity is ``error``
  (the default for bounds), or loads and is counted as a warning when it is ``warn``.
- **Automatic outlier bounds**, on every numeric and date column with no configuration: a number whose size is
  more than ``factor`` times the column's 99th percentile of sizes, or a date more than ``date_span_years`` from
  the column's median date, is an outlier (reason code ``outlier``), quarantined or loaded and counted as
  ``Plausibility.severity`` says. The percentile and median are taken over the new file together with a
  repeatable sample of what the raw table already holds for the column, and only when at least ``min_values``
  values are known: a small first file has no automatic bound. Key columns, and columns declared
  ``outliers: false`` (identifiers, counters), have none; nor has a column whose 99th percentile size is 0 (most
  values zero: any other value would look a million times too big).

The checks run on the loader's temp table ``_batch`` (typed contract columns, ``_problems``): one aggregate pass
for the outlier bounds and one scan for the rows breaking any of them. A quarantined row gets a problem
``{column, kind, reason}`` in ``_problems``, so the loader sends it to meta.quarantine with the others. Every row
found, quarantined or only warned about, is recorded in ``meta.implausible_rows`` with the run, so the ingest
asset can report the warnings (its ``plausible`` check) without a change to the loader's ``FileLoad``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import duckdb

from pipelines import sql
from pipelines.ingest.contracts import TEMPORAL_TYPES, Column, Contract
from pipelines.ingest.ledger import META_SCHEMA

IMPLAUSIBLE_TABLE = f"{META_SCHEMA}.implausible_rows"
SECONDS_PER_YEAR = 365.25 * 24 * 3600
OUTLIER_SEVERITIES = ("error", "warn")

__all__ = ["IMPLAUSIBLE_TABLE", "Plausibility", "check_rows", "outlier_limits", "run_findings"]


@dataclasses.dataclass(frozen=True)
class Plausibility:
    """How the automatic outlier bounds are drawn and what an outlier does (settings outlier_*)."""

    factor: float = 1000.0
    date_span_years: int = 100
    severity: str = "error"
    min_values: int = 100
    history_sample_rows: int = 100_000

    def __post_init__(self) -> None:
        if self.severity not in OUTLIER_SEVERITIES:
            raise ValueError(f"outlier_severity {self.severity!r} must be one of {list(OUTLIER_SEVERITIES)}")
        if not self.factor > 0 or not self.date_span_years > 0:
            raise ValueError("outlier_factor and outlier_date_span_years must be above 0")

    @classmethod
    def from_settings(cls, settings: Any) -> Plausibility:
        return cls(
            factor=float(settings.outlier_factor),
            date_span_years=int(settings.outlier_date_span_years),
            severity=str(settings.outlier_severity),
        )


@dataclasses.dataclass(frozen=True)
class OutlierLimit:
    """A column's automatic bound: numbers above ``limit`` in size, or dates further than ``limit`` seconds from
    ``centre`` (epoch seconds of the median date)."""

    column: str
    limit: float
    centre: float | None
    values: int
    basis: float  # the 99th percentile of sizes (numbers) or the median's epoch seconds (dates)


@dataclasses.dataclass(frozen=True)
class Finding:
    """The rows of a file that broke one plausibility rule, as a caller reports them."""

    file: str
    column: str
    reason_code: str
    action: str  # quarantined | warned
    rows: int
    first_rows: tuple[int, ...]
    example: str

    def describe(self) -> str:
        shown = ", ".join(str(row) for row in self.first_rows) + (" ..." if self.rows > len(self.first_rows) else "")
        verb = "quarantined" if self.action == "quarantined" else "loaded with a warning"
        return f"{self.file}: column {self.column}: {self.rows:,} row(s) {verb} (rows {shown}), e.g. {self.example}"


def _key_columns(contract: Contract) -> set[str]:
    keys = set(contract.primary_key)
    for feed in contract.feeds:
        sources = feed.sources
        keys |= {sources[name] for name in feed.primary_key if name in sources}
    return keys


def _history(connection: duckdb.DuckDBPyConnection, contract: Contract) -> dict[str, tuple[str, str]]:
    """File column -> (raw table, its column) holding the column's earlier values: the first table it feeds as it
    is, when that table exists with the column and holds the same kind of value (numbers, or dates)."""
    found: dict[str, tuple[str, str]] = {}
    own = {column.name: column for column in contract.columns}
    for feed in contract.feeds:
        existing = {
            name
            for (name,) in connection.execute(
                "select column_name from information_schema.columns where table_schema = 'raw' and table_name = ?",
                [feed.table],
            ).fetchall()
        }
        kinds = {column.name: column for column in feed.columns}
        for table_column, file_column in feed.sources.items():
            source, target = own.get(file_column), kinds.get(table_column)
            if (
                table_column in existing
                and source is not None
                and target is not None
                and ((source.is_numeric, source.is_temporal) == (target.is_numeric, target.is_temporal))
            ):
                found.setdefault(file_column, (feed.table, table_column))
    return found


def _measure(column: Column, expression: str) -> str:
    """What the outlier bound is drawn on: a number's size, a date's epoch seconds."""
    return f"abs(({expression})::double)" if column.is_numeric else f"epoch({expression})"


def _sample(connection: duckdb.DuckDBPyConnection, relation: str, rows: int) -> str:
    """A repeatable sample of about ``rows`` rows of a big table (whole vectors, so it costs a fraction of a scan);
    nothing for a table that small."""
    total = connection.execute(f"select count(*) from {relation}").fetchone()[0]
    if total <= rows:
        return ""
    return f"using sample {100 * rows / total:.6f} percent (system, 17)"


def outlier_limits(
    connection: duckdb.DuckDBPyConnection, contract: Contract, plausibility: Plausibility
) -> dict[str, OutlierLimit]:
    """The automatic bound of each numeric and date column of the contract, from the file in ``_batch`` and a
    sample of the raw table's earlier values, in one aggregate pass; columns with too few values have none."""
    keys = _key_columns(contract)
    columns = [
        column
        for column in contract.columns
        if column.outliers and (column.is_numeric or column.is_temporal) and column.name not in keys
    ]
    if not columns:
        return {}
    history = _history(connection, contract)
    slots = [f"v{index}" for index in range(len(columns))]
    parts = [
        "select "
        + ", ".join(
            f"{_measure(column, sql.identifier(column.name))} as {slot}"
            for column, slot in zip(columns, slots, strict=True)
        )
        + f" from _batch {_sample(connection, '_batch', plausibility.history_sample_rows)}"
    ]
    for table in dict.fromkeys(table for table, _ in history.values()):
        picked = [
            f"{_measure(column, sql.identifier(history[column.name][1]))} as {slot}"
            if history.get(column.name, ("", ""))[0] == table
            else f"null::double as {slot}"
            for column, slot in zip(columns, slots, strict=True)
        ]
        relation = sql.qualified("raw", table)
        sample = _sample(connection, relation, plausibility.history_sample_rows)
        parts.append(f"select {', '.join(picked)} from {relation} {sample}")
    figures = ", ".join(
        f"approx_quantile({slot}, {0.99 if column.is_numeric else 0.5}), count({slot})"
        for column, slot in zip(columns, slots, strict=True)
    )
    row = connection.execute(f"select {figures} from ({' union all '.join(parts)})").fetchone()
    limits = {}
    for index, column in enumerate(columns):
        basis, values = row[2 * index], int(row[2 * index + 1])
        if basis is None or values < plausibility.min_values:
            continue
        if column.is_numeric:
            if float(basis) <= 0:
                continue
            limits[column.name] = OutlierLimit(column.name, plausibility.factor * float(basis), None, values, basis)
        else:
            span = plausibility.date_span_years * SECONDS_PER_YEAR
            limits[column.name] = OutlierLimit(column.name, span, float(basis), values, float(basis))
    return limits


# The SQL text of a date or timestamp column's type (the only non-numeric types that have bounds).
_TEMPORAL_SQL = {kind: kind for kind in TEMPORAL_TYPES}


def _bound_rules(column: Column) -> list[tuple[str, str]]:
    """(condition, reason text expression) for each of the column's contract bounds."""
    rules = []
    cell = sql.identifier(column.name)
    for bound, operator, words in ((column.min, "<", "below the contract's minimum"),
                                   (column.max, ">", "above the contract's maximum")):  # fmt: skip
        if bound is None:
            continue
        value = sql.literal(bound) if column.is_numeric else f"{sql.string(str(bound))}::{_TEMPORAL_SQL[column.type]}"
        reason = f"concat({sql.string(column.name + ' ')}, {cell}::varchar, {sql.string(f' is {words} {bound}')})"
        rules.append((f"{cell} {operator} {value}", reason))
    return rules


def _outlier_rule(column: Column, limit: OutlierLimit, plausibility: Plausibility) -> tuple[str, str]:
    cell = sql.identifier(column.name)
    if column.is_numeric:
        condition = f"abs({cell}::double) > {sql.literal(limit.limit)}"
        words = (
            f" is an outlier: more than {_shown(plausibility.factor)} times the column's usual size "
            f"(99th percentile {_shown(limit.basis)} over {limit.values:,} values)"
        )
    else:
        # an infinite date has no epoch: it is as far from the median as a date can be
        condition = f"(isinf({cell}) or abs(epoch({cell}) - {sql.literal(limit.centre)}) > {sql.literal(limit.limit)})"
        median = _epoch_date(limit.centre)
        words = (
            f" is an outlier: more than {plausibility.date_span_years} years from the column's median date "
            f"{median} (over {limit.values:,} values)"
        )
    return condition, f"concat({sql.string(column.name + ' ')}, {cell}::varchar, {sql.string(words)})"


def _shown(number: float) -> str:
    """1000.0 -> 1,000; 2.5 -> 2.5: a figure as a person writes it."""
    return f"{float(number):,.2f}".rstrip("0").rstrip(".")


def _epoch_date(epoch_seconds: float) -> str:
    return (dt.datetime(1970, 1, 1) + dt.timedelta(seconds=epoch_seconds)).date().isoformat()


def _ensure_table(connection: duckdb.DuckDBPyConnection) -> None:
    connection.execute(f"create schema if not exists {META_SCHEMA}")
    connection.execute(
        f"""create table if not exists {IMPLAUSIBLE_TABLE} (
            source_table varchar, file varchar, row_number bigint, column_name varchar, reason_code varchar,
            action varchar, reason varchar, run_id varchar, found_at timestamp)"""
    )


def check_rows(
    connection: duckdb.DuckDBPyConnection,
    contract: Contract,
    relative: str,
    run_id: str,
    plausibility: Plausibility | None = None,
) -> int:
    """Check the rows of ``_batch`` against the contract's bounds and the automatic outlier bounds: rows to
    quarantine get a problem in ``_problems``; every row found is recorded in meta.implausible_rows. Rows already
    quarantined (an unreadable or missing value) are not judged again. Returns the number of rows found."""
    plausibility = plausibility or Plausibility()
    _ensure_table(connection)
    # A file loaded again (corrected, or under a changed contract) is judged afresh.
    connection.execute(
        f"delete from {IMPLAUSIBLE_TABLE} where source_table = ? and file = ?", [contract.name, relative]
    )
    rules: list[tuple[str, str, str, str, str]] = []  # column, kind, action, condition, reason
    for column in contract.columns:
        if column.is_numeric or column.is_temporal:
            action = "quarantined" if column.bound_severity == "error" else "warned"
            rules += [(column.name, "bound", action, *rule) for rule in _bound_rules(column)]
    action = "quarantined" if plausibility.severity == "error" else "warned"
    for name, limit in outlier_limits(connection, contract, plausibility).items():
        rules.append((name, "outlier", action, *_outlier_rule(contract.column(name), limit, plausibility)))
    if not rules:
        return 0
    found = ", ".join(
        f"case when {condition} then {{'column': {sql.string(name)}, 'kind': {sql.string(kind)}, "
        f"'reason': concat({reason}, ' (row ', _row_number, ')'), 'action': {sql.string(action)}}} end"
        for name, kind, action, condition, reason in rules
    )
    try:
        connection.execute(
            f"""create or replace temp table _implausible as
            select _row_number, list_filter([{found}], lambda finding: finding is not null) as findings
            from _batch
            where len(_problems) = 0 and ({" or ".join(f"coalesce({rule[3]}, false)" for rule in rules)})"""
        )
        count = connection.execute("select count(*) from _implausible").fetchone()[0]
        if count:
            connection.execute(
                f"""insert into {IMPLAUSIBLE_TABLE}
                select ?, ?, _row_number, finding.column, finding.kind, finding.action, finding.reason, ?, now()
                from (select _row_number, unnest(findings) as finding from _implausible)""",
                [contract.name, relative, run_id],
            )
            connection.execute(
                """update _batch set _problems = list_concat(_batch._problems, list_transform(
                    list_filter(found.findings, lambda finding: finding.action = 'quarantined'),
                    lambda finding: {'column': finding.column, 'kind': finding.kind, 'reason': finding.reason}))
                from _implausible as found
                where _batch._row_number = found._row_number
                    and len(list_filter(found.findings, lambda finding: finding.action = 'quarantined')) > 0"""
            )
    finally:
        connection.execute("drop table if exists _implausible")
    return int(count)


def run_findings(connection: duckdb.DuckDBPyConnection, source_table: str, run_id: str) -> list[Finding]:
    """What a run found in a source's files, per file, column, reason code and action, largest first."""
    exists = connection.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = 'implausible_rows'",
        [META_SCHEMA],
    ).fetchone()[0]
    if not exists:
        return []
    rows = connection.execute(
        f"""select file, column_name, reason_code, action, count(*), list(row_number order by row_number)[1:5],
            min_by(reason, row_number)
        from {IMPLAUSIBLE_TABLE} where source_table = ? and run_id = ?
        group by all order by 5 desc, 1, 2""",
        [source_table, run_id],
    ).fetchall()
    return [
        Finding(file, column, code, action, int(count), tuple(first), example)
        for file, column, code, action, count, first, example in rows
    ]
