"""Source contracts: one YAML file per kind of export file, saying where its files land, how to read and check
them, and which canonical tables their rows feed.

A contract is what makes an export loadable without code: the glob of its files under the landing zone, the
file format and its dialect (delimiter, encoding, decimal and thousands separators), each column's name with the
header(s) it may have in the file, its type, date formats and whether it is required, the primary key and what
to do with duplicates, and the expectations its data must meet. It can compute columns from the row
(``derive``), keep only some rows with a recorded reason (``filter``) and feed several canonical tables from one
file (``feeds``: orders, lines, customers and products from one invoice-line export). The canonical tables, the
warehouse's own shape, are declared in canonical.yaml beside this file. docs/contracts.md documents every key;
the built-in contracts (pipelines/ingest/contracts/<source>/<table>.yaml) describe the demo exports.
"""

from __future__ import annotations

import codecs
import dataclasses
import datetime as dt
import functools
import hashlib
import math
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from pipelines.ingest import landing
from pipelines.ingest.expressions import Expression, ExpressionError, parse

BUILT_IN_DIR = Path(__file__).resolve().parent / "contracts"
CANONICAL_FILE = Path(__file__).resolve().parent / "canonical.yaml"
# The file's record number (data rows counted from 1 after the header): usable in expressions, e.g. as a line
# number when the export has none.
ROW_NUMBER = "_row_number"

TYPES = {"varchar", "integer", "bigint", "double", "date", "timestamp", "boolean"}
_DECIMAL = re.compile(r"^decimal\(\d{1,2},\d{1,2}\)$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
FORMATS = {"csv", "xlsx", "parquet"}
DUPLICATE_POLICIES = {"keep_last", "keep_first", "quarantine"}
SEVERITIES = {"warn", "error"}
NUMERIC_TYPES = {"integer", "bigint", "double"}  # and every decimal(p,s)
TEMPORAL_TYPES = {"date", "timestamp"}
# How often a source is expected to deliver a file (``cadence``), in days; ``expected_every_days`` says it in days.
CADENCES = {"daily": 1, "weekly": 7, "monthly": 31}
# Encodings DuckDB reads itself (by Python codec name); any other Python codec is transcoded to UTF-8 first.
NATIVE_ENCODINGS = {"utf-8": "utf-8", "utf-8-sig": "utf-8", "utf-16": "utf-16", "iso8859-1": "latin-1"}


class ContractError(ValueError):
    """A contract file is malformed; the message names the file and the field."""


def normalise_header(header: str) -> str:
    """Headers match whatever their case, accents, spacing or byte-order mark: 'Nº  Pedido ' ~ 'nº pedido'."""
    text = unicodedata.normalize("NFKC", header).replace("\ufeff", "").strip().casefold()
    return " ".join(text.split())


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    type: str
    headers: tuple[str, ...]
    required: bool = False
    formats: tuple[str, ...] = ()
    allowed: tuple[Any, ...] | None = None
    # Plausibility bounds, checked row by row: numbers for numeric columns, ISO dates/timestamps (text) for dates.
    min: int | float | str | None = None
    max: int | float | str | None = None
    severity: str | None = None  # as declared; see allowed_severity and bound_severity
    values: tuple[tuple[str, str], ...] = ()
    description: str = ""
    outliers: bool = True  # automatic outlier bounds (pipelines/ingest/plausibility.py); off for identifiers

    @property
    def allowed_severity(self) -> str:
        """An ``allowed`` list is a Great Expectations expectation: reported (``warn``) unless declared ``error``."""
        return self.severity or "warn"

    @property
    def bound_severity(self) -> str:
        """A row outside ``min``/``max`` is quarantined (``error``) unless declared ``warn`` (loaded, counted)."""
        return self.severity or "error"

    @property
    def is_numeric(self) -> bool:
        return self.type in NUMERIC_TYPES or self.type.startswith("decimal")

    @property
    def is_temporal(self) -> bool:
        return self.type in TEMPORAL_TYPES

    @property
    def header(self) -> str:
        """The header the contract names first (what a file is expected to have)."""
        return self.headers[0]

    def matches(self, header: str) -> bool:
        return normalise_header(header) in {normalise_header(alias) for alias in self.headers}


@dataclasses.dataclass(frozen=True)
class Dialect:
    """How a CSV or Excel file is laid out."""

    delimiter: str = ","
    header: bool = True
    encoding: str = "utf-8"
    decimal_separator: str = "."
    thousands_separator: str | None = None
    quote: str = '"'
    skip_rows: int = 0
    sheet: str | int | None = None

    @property
    def native_encoding(self) -> str | None:
        """The DuckDB name of the encoding, or None when the file must be transcoded to UTF-8 first."""
        return NATIVE_ENCODINGS.get(codecs.lookup(self.encoding).name)


@dataclasses.dataclass(frozen=True)
class Expectation:
    """A table-level Great Expectations expectation: its class name, its arguments and its severity."""

    expectation: str
    arguments: dict[str, Any]
    severity: str = "warn"


@dataclasses.dataclass(frozen=True)
class CanonicalTable:
    """One of the warehouse's canonical tables (canonical.yaml): what the staging models read."""

    name: str
    description: str
    primary_key: tuple[str, ...]
    capabilities: tuple[str, ...]
    columns: tuple[Column, ...]

    @property
    def label(self) -> str:
        return self.name.replace("__", "/")

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)


@dataclasses.dataclass(frozen=True)
class Value:
    """What a feed writes into one column of its table: an expression over the row, a constant, or both (the
    constant where the expression is empty)."""

    expression: Expression | None = None
    constant: str | int | float | bool | None = None


@dataclasses.dataclass(frozen=True)
class Feed:
    """The rows a file gives one table: which rows (``where``), each column's value, and, for a table with one row
    per key made from many rows of the file (orders from invoice lines), the key to collapse on."""

    table: str
    columns: tuple[Column, ...]
    values: tuple[tuple[str, Value], ...]
    primary_key: tuple[str, ...]
    where: Expression | None = None
    one_row_per: tuple[str, ...] = ()
    canonical: bool = True

    @property
    def label(self) -> str:
        return self.table.replace("__", "/")

    @property
    def sources(self) -> dict[str, str]:
        """Table column -> the file's column it takes as it is (no expression around it)."""
        return {
            name: value.expression.column
            for name, value in self.values
            if value.expression is not None and value.expression.column and value.constant is None
        }


@dataclasses.dataclass(frozen=True)
class RowFilter:
    """Rows the contract keeps: the others are excluded at the door, counted in the ledger with the reason."""

    keep: Expression
    reason: str


@dataclasses.dataclass(frozen=True)
class Contract:
    """How to read and check one source table's files. ``name`` is ``<source>__<table>``, the raw table's name."""

    source: str
    table: str
    description: str
    files: str
    format: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    dialect: Dialect
    path: Path
    duplicates: str = "keep_last"
    refuse_above_bad_share: float = 0.5
    expectations: tuple[Expectation, ...] = ()
    derived: tuple[tuple[str, Expression], ...] = ()
    filters: tuple[RowFilter, ...] = ()
    feeds: tuple[Feed, ...] = ()
    sha256: str = ""
    cadence: str = ""  # daily, weekly, monthly, "every N days", or "" (not declared)
    expected_every_days: int | None = None  # a new file is expected at least this often

    @property
    def name(self) -> str:
        return f"{self.source}__{self.table}"

    @property
    def tables(self) -> tuple[str, ...]:
        """The raw tables this contract's files feed."""
        return tuple(feed.table for feed in self.feeds)

    def matching_files(self, landing_dir: Path) -> list[Path]:
        """The files of this table in the landing zone (``files``, or the same name with ``.gz``), in a stable
        order. Links are listed, never followed, and refused when loaded; copies in progress are not listed
        (pipelines/ingest/landing.py, docs/contracts.md "The landing zone")."""
        return landing.matching_files(Path(landing_dir), self.files)

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)


def _fail(path: Path, message: str) -> ContractError:
    return ContractError(f"contract {path}: {message}")


def _as_tuple(value: object) -> tuple:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list | tuple) else (value,)


_COLUMN_KEYS = {
    "name", "type", "header", "required", "format", "allowed", "min", "max", "severity", "values", "description",
    "outliers",
}  # fmt: skip


def _bound(path: Path, name: str, kind: str, key: str, raw: object) -> int | float | str | None:
    """A ``min``/``max``: a number on a numeric column, an ISO date (or timestamp) on a date or timestamp column."""
    if raw is None:
        return None
    if kind in NUMERIC_TYPES or kind.startswith("decimal"):
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise _fail(path, f"column {name}: {key} {raw!r} must be a finite number for a {kind} column")
        return raw
    if kind in TEMPORAL_TYPES:
        try:  # YAML reads an unquoted 2000-01-01 as a date already
            parsed = dt.datetime.fromisoformat(str(raw).strip())
        except ValueError as error:
            raise _fail(path, f"column {name}: {key} {raw!r} must be an ISO date such as 2000-01-01") from error
        return parsed.date().isoformat() if kind == "date" else parsed.isoformat(sep=" ")
    raise _fail(path, f"column {name}: {key} applies to numbers and dates, not to a {kind} column")


def _column(path: Path, index: int, raw: object) -> Column:
    if not isinstance(raw, dict) or "name" not in raw or "type" not in raw:
        raise _fail(path, f"columns[{index}] needs at least 'name' and 'type'")
    unknown = set(raw) - _COLUMN_KEYS
    if unknown:
        raise _fail(path, f"columns[{index}] ({raw['name']}): unknown keys {sorted(unknown)}")
    name, kind = str(raw["name"]), str(raw["type"]).lower().replace(" ", "")
    if not _NAME.match(name):
        raise _fail(path, f"column name {name!r} must be snake_case (letters, digits, underscores)")
    if kind not in TYPES and not _DECIMAL.match(kind):
        raise _fail(path, f"column {name}: unknown type {raw['type']!r}; use one of {sorted(TYPES)} or decimal(p,s)")
    severity = None if raw.get("severity") is None else str(raw["severity"])
    if severity is not None and severity not in SEVERITIES:
        raise _fail(path, f"column {name}: severity {severity!r} is not one of {sorted(SEVERITIES)}")
    low, high = (_bound(path, name, kind, key, raw.get(key)) for key in ("min", "max"))
    if low is not None and high is not None and _sortable(low) > _sortable(high):
        raise _fail(path, f"column {name}: min {low} is above max {high}")
    if not isinstance(raw.get("outliers", True), bool):
        raise _fail(path, f"column {name}: outliers must be true or false")
    values = raw.get("values") or {}
    if not isinstance(values, dict):
        raise _fail(path, f"column {name}: values must map the file's values to yours, e.g. {{Tienda: store}}")
    return Column(
        name=name,
        type=kind,
        headers=tuple(str(header) for header in _as_tuple(raw.get("header", name))),
        required=bool(raw.get("required", False)),
        formats=tuple(str(value) for value in _as_tuple(raw.get("format"))),
        allowed=_as_tuple(raw["allowed"]) if "allowed" in raw else None,
        min=low,
        max=high,
        severity=severity,
        values=tuple((str(key), str(value)) for key, value in values.items()),
        description=str(raw.get("description", "")),
        outliers=bool(raw.get("outliers", True)),
    )


def _sortable(bound: int | float | str) -> int | float | dt.datetime:
    return dt.datetime.fromisoformat(bound) if isinstance(bound, str) else bound


def _expectation(path: Path, index: int, raw: object) -> Expectation:
    if not isinstance(raw, dict) or "expectation" not in raw:
        raise _fail(path, f"expectations[{index}] needs 'expectation' (a Great Expectations class name)")
    arguments = {key: value for key, value in raw.items() if key not in {"expectation", "severity"}}
    severity = str(raw.get("severity", "warn"))
    if severity not in SEVERITIES:
        raise _fail(path, f"expectations[{index}]: severity {severity!r} is not one of {sorted(SEVERITIES)}")
    return Expectation(str(raw["expectation"]), arguments, severity)


_TOP_KEYS = {
    "description", "files", "format", "csv", "xlsx", "columns", "primary_key", "duplicates",
    "refuse_above_bad_share", "expectations", "derive", "filter", "feeds", "cadence", "expected_every_days",
}  # fmt: skip


def _cadence(path: Path, raw: dict) -> tuple[str, int | None]:
    """``cadence: daily|weekly|monthly`` or ``expected_every_days: N`` (not both): how often files should arrive."""
    cadence, every = raw.get("cadence"), raw.get("expected_every_days")
    if cadence is not None and every is not None:
        raise _fail(path, "declare either cadence or expected_every_days, not both")
    if cadence is not None:
        if str(cadence) not in CADENCES:
            raise _fail(path, f"cadence {cadence!r} is not one of {list(CADENCES)}; or use expected_every_days: N")
        return str(cadence), CADENCES[str(cadence)]
    if every is not None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise _fail(path, f"expected_every_days {every!r} must be a whole number of days, at least 1")
        return f"every {every} days", every
    return "", None


def table_name(label: str) -> str:
    """``erp/orders`` or ``erp__orders`` -> ``erp__orders``."""
    return str(label).strip().replace("/", "__").removesuffix(".yaml")


@functools.cache
def canonical_tables() -> dict[str, CanonicalTable]:
    """The canonical tables of canonical.yaml by raw table name (``erp__orders``)."""
    raw = yaml.safe_load(CANONICAL_FILE.read_text(encoding="utf-8"))
    tables = {}
    for label, spec in raw.items():
        columns = tuple(_column(CANONICAL_FILE, index, column) for index, column in enumerate(spec["columns"]))
        tables[table_name(label)] = CanonicalTable(
            name=table_name(label),
            description=str(spec.get("description", "")),
            primary_key=tuple(spec.get("primary_key") or ()),
            capabilities=tuple(spec.get("capabilities") or ()),
            columns=columns,
        )
    return tables


def _derived(path: Path, raw: object, known: list[str]) -> tuple[tuple[str, Expression], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise _fail(path, "derive must map new column names to expressions, e.g. {line_amount: quantity * price}")
    derived = []
    for name, text in raw.items():
        if not _NAME.match(str(name)) or str(name) in known:
            raise _fail(path, f"derive: {name!r} must be a new snake_case name (not one of the columns)")
        try:
            derived.append((str(name), parse(text, known)))
        except ExpressionError as error:
            raise _fail(path, f"derive {name}: {error}") from error
        known.append(str(name))
    return tuple(derived)


def _filters(path: Path, raw: object, known: list[str]) -> tuple[RowFilter, ...]:
    if raw is None:
        return ()
    rules = raw if isinstance(raw, list) else [raw]
    filters = []
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict) or set(rule) != {"keep", "reason"}:
            raise _fail(path, f"filter[{index}] needs exactly 'keep' (an expression) and 'reason' (words)")
        try:
            filters.append(RowFilter(parse(rule["keep"], known), str(rule["reason"])))
        except ExpressionError as error:
            raise _fail(path, f"filter[{index}]: {error}") from error
    return tuple(filters)


def _value(path: Path, where: str, raw: object, known: list[str]) -> Value:
    """A feed column's value: ``expression`` text, a YAML number/boolean, or {value: ...} / {expression, default}."""
    try:
        if isinstance(raw, bool | int | float):
            return Value(constant=raw)
        if isinstance(raw, str):
            return Value(expression=parse(raw, known))
        if isinstance(raw, dict) and set(raw) == {"value"}:
            return Value(constant=raw["value"] if isinstance(raw["value"], bool | int | float) else str(raw["value"]))
        if isinstance(raw, dict) and "expression" in raw and set(raw) <= {"expression", "default"}:
            default = raw.get("default")
            return Value(parse(raw["expression"], known), None if default is None else default)
    except ExpressionError as error:
        raise _fail(path, f"{where}: {error}") from error
    raise _fail(path, f"{where}: write an expression, a number, {{value: TEXT}} or {{expression: ..., default: ...}}")


def _feed(path: Path, label: str, raw: object, known: list[str]) -> Feed:
    target = table_name(label)
    table = canonical_tables().get(target)
    if table is None:
        names = ", ".join(sorted(t.label for t in canonical_tables().values()))
        raise _fail(path, f"feeds: {label!r} is not a canonical table (they are: {names}; docs/canonical_tables.md)")
    raw = raw or {}
    if not isinstance(raw, dict) or set(raw) - {"columns", "where", "one_row_per"}:
        raise _fail(path, f"feeds {label}: keys are columns, where and one_row_per")
    mapped = raw.get("columns") or {}
    if not isinstance(mapped, dict):
        raise _fail(path, f"feeds {label}: columns must map the table's columns to values")
    unknown = sorted(set(map(str, mapped)) - {column.name for column in table.columns})
    if unknown:
        names = ", ".join(column.name for column in table.columns)
        raise _fail(path, f"feeds {label}: {unknown} are not columns of {label} (it has {names})")
    values = []
    for column in table.columns:
        if column.name in mapped:
            values.append((column.name, _value(path, f"feeds {label} {column.name}", mapped[column.name], known)))
        elif column.name in known:  # a column of the file with the table's column name feeds it as it is
            values.append((column.name, Value(expression=parse(_quoted(column.name), known))))
        elif column.required:
            raise _fail(
                path,
                f"feeds {label}: required column {column.name!r} has no value; map it, e.g. {column.name}: <column>",
            )
    try:
        where = parse(raw["where"], known) if raw.get("where") is not None else None
    except ExpressionError as error:
        raise _fail(path, f"feeds {label} where: {error}") from error
    one_row_per = tuple(str(name) for name in _as_tuple(raw.get("one_row_per")))
    if one_row_per and one_row_per != table.primary_key:
        raise _fail(path, f"feeds {label}: one_row_per must be the table's key {list(table.primary_key)}")
    return Feed(target, table.columns, tuple(values), table.primary_key, where, one_row_per)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _feeds(path: Path, name: str, raw: object, columns: tuple[Column, ...], primary_key, known) -> tuple[Feed, ...]:
    """The tables the file feeds; without ``feeds``, the table named like the contract, column for column."""
    if raw is not None:
        if not isinstance(raw, dict) or not raw:
            raise _fail(path, "feeds must map canonical table names (erp/orders...) to how the file feeds them")
        return tuple(_feed(path, str(label), spec, known) for label, spec in raw.items())
    table = canonical_tables().get(name)
    if table is None:  # a table of the contract's own, shaped by its columns
        values = tuple((c.name, Value(expression=parse(_quoted(c.name), known))) for c in columns)
        return (Feed(name, columns, values, primary_key, canonical=False),)
    strangers = [column.name for column in columns if column.name not in {c.name for c in table.columns}]
    if strangers:
        raise _fail(
            path,
            f"columns {strangers} are not columns of the canonical table {table.label} "
            f"(it has {', '.join(c.name for c in table.columns)}); rename them, or declare feeds (docs/contracts.md)",
        )
    return (_feed(path, table.label, {}, known),)


def load_contract(path: Path, source: str | None = None) -> Contract:
    """Read and check one contract file; the source is its folder's name, the table its file's stem."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise _fail(path, f"not valid YAML: {error}") from error
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise _fail(path, f"unknown keys {sorted(unknown)}; known: {sorted(_TOP_KEYS)}")
    for key in ("files", "format", "columns"):
        if key not in raw:
            raise _fail(path, f"missing required key {key!r}")
    if raw["format"] not in FORMATS:
        raise _fail(path, f"format {raw['format']!r} is not one of {sorted(FORMATS)}")
    columns = tuple(_column(path, index, column) for index, column in enumerate(raw["columns"]))
    names = [column.name for column in columns]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise _fail(path, f"columns named twice: {duplicated}")
    primary_key = tuple(_as_tuple(raw.get("primary_key")))
    for key in primary_key:
        if key not in names:
            raise _fail(path, f"primary_key column {key!r} is not among the columns")
    duplicates = str(raw.get("duplicates", "keep_last"))
    if duplicates not in DUPLICATE_POLICIES:
        raise _fail(path, f"duplicates {duplicates!r} is not one of {sorted(DUPLICATE_POLICIES)}")
    options = raw.get(raw["format"], {}) or {} if raw["format"] != "parquet" else {}
    known_options = {field.name for field in dataclasses.fields(Dialect)}
    if set(options) - known_options:
        raise _fail(path, f"{raw['format']}: unknown keys {sorted(set(options) - known_options)}")
    dialect = Dialect(**options)
    try:
        codecs.lookup(dialect.encoding)
    except LookupError as error:
        raise _fail(path, f"unknown encoding {dialect.encoding!r}") from error
    source, table = source or path.parent.name, path.stem
    for part in (source, table):
        if not _NAME.match(part):
            raise _fail(path, f"{part!r}: a contract's folder and file name must be snake_case (letters, digits, _)")
    known = [*names, ROW_NUMBER]
    derived = _derived(path, raw.get("derive"), known)
    filters = _filters(path, raw.get("filter"), known)
    feeds = _feeds(path, f"{source}__{table}", raw.get("feeds"), columns, primary_key, known)
    checked = {source for feed in feeds for source in feed.sources.values()}
    for column in columns:
        if column.allowed is not None and column.name not in checked:
            raise _fail(
                path,
                f"column {column.name}: allowed is checked on the table column it feeds as it is, and it "
                "feeds none; check the table's column under expectations instead (docs/contracts.md)",
            )
    cadence, expected_every_days = _cadence(path, raw)
    return Contract(
        source=source,
        table=table,
        description=str(raw.get("description", "")),
        files=str(raw["files"]),
        format=str(raw["format"]),
        columns=columns,
        primary_key=primary_key,
        dialect=dialect,
        path=path,
        duplicates=duplicates,
        refuse_above_bad_share=float(raw.get("refuse_above_bad_share", 0.5)),
        expectations=tuple(_expectation(path, i, spec) for i, spec in enumerate(raw.get("expectations") or [])),
        derived=derived,
        filters=filters,
        feeds=feeds,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        cadence=cadence,
        expected_every_days=expected_every_days,
    )


def load_contracts(*directories: Path | None) -> list[Contract]:
    """Every contract below the directories (``<source>/<table>.yaml``), later directories overriding earlier.

    With no directory, the built-in contracts. A user's contract named like a built-in one replaces it.
    """
    by_name: dict[str, Contract] = {}
    for directory in _existing(directories or (BUILT_IN_DIR,)):
        for path in sorted(directory.glob("*/*.yaml")):
            contract = load_contract(path)
            by_name[contract.name] = contract
    return sorted(by_name.values(), key=lambda contract: contract.name)


def _existing(directories: Iterable[Path | None]) -> list[Path]:
    return [directory for directory in directories if directory is not None and directory.is_dir()]


def find_contract(name: str, *directories: Path | None) -> Contract:
    """The contract called ``name`` (``<source>__<table>`` or ``<source>/<table>``)."""
    wanted = name.replace("/", "__").removesuffix(".yaml")
    contracts = load_contracts(*directories)
    for contract in contracts:
        if contract.name == wanted:
            return contract
    raise ContractError(f"no contract named {name!r}; known: {', '.join(c.name for c in contracts)}")
