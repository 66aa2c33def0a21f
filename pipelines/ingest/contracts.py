"""Source contracts: one YAML file per source table saying where its files land and how to read and check them.

A contract is what makes an export loadable without code: the glob of its files under the landing zone, the
file format and its dialect (delimiter, encoding, decimal and thousands separators), each column's canonical
name with the header(s) it may have in the file, its type, date formats and whether it is required, the primary
key and what to do with duplicates, and the expectations its data must meet. docs/contracts.md documents every
key; the built-in contracts (pipelines/ingest/contracts/<source>/<table>.yaml) describe the demo exports.
"""

from __future__ import annotations

import codecs
import dataclasses
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

BUILT_IN_DIR = Path(__file__).resolve().parent / "contracts"

TYPES = {"varchar", "integer", "bigint", "double", "date", "timestamp", "boolean"}
_DECIMAL = re.compile(r"^decimal\(\d{1,2},\d{1,2}\)$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
FORMATS = {"csv", "xlsx", "parquet"}
DUPLICATE_POLICIES = {"keep_last", "keep_first", "quarantine"}
SEVERITIES = {"warn", "error"}
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
    min: float | None = None
    max: float | None = None
    severity: str = "warn"
    values: tuple[tuple[str, str], ...] = ()

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

    @property
    def name(self) -> str:
        return f"{self.source}__{self.table}"

    def matching_files(self, landing_dir: Path) -> list[Path]:
        """The files of this table in the landing zone, in a stable order."""
        return sorted(path for path in landing_dir.glob(self.files) if path.is_file())

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)


def _fail(path: Path, message: str) -> ContractError:
    return ContractError(f"contract {path}: {message}")


def _as_tuple(value: object) -> tuple:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list | tuple) else (value,)


_COLUMN_KEYS = {"name", "type", "header", "required", "format", "allowed", "min", "max", "severity", "values"}


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
    severity = str(raw.get("severity", "warn"))
    if severity not in SEVERITIES:
        raise _fail(path, f"column {name}: severity {severity!r} is not one of {sorted(SEVERITIES)}")
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
        min=raw.get("min"),
        max=raw.get("max"),
        severity=severity,
        values=tuple((str(key), str(value)) for key, value in values.items()),
    )


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
    "refuse_above_bad_share", "expectations",
}  # fmt: skip


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
    return Contract(
        source=source or path.parent.name,
        table=path.stem,
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
