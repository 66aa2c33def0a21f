"""Source contracts: one YAML file per source table saying where its files land and how to read them.

A contract is what makes an export loadable without code: the glob of its files under the landing zone, the
file format and its dialect (delimiter, encoding, decimal separator), and each column's canonical name, the
header it has in the file, its type, its date or time format and whether it is required.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import yaml

BUILT_IN_DIR = Path(__file__).resolve().parent / "contracts"

TYPES = {"varchar", "integer", "bigint", "double", "date", "timestamp", "boolean"}
_DECIMAL = re.compile(r"^decimal\(\d{1,2},\d{1,2}\)$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
FORMATS = {"csv", "parquet"}


class ContractError(ValueError):
    """A contract file is malformed; the message names the file and the field."""


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    type: str
    header: str
    required: bool = False
    format: str | None = None


@dataclasses.dataclass(frozen=True)
class CsvDialect:
    delimiter: str = ","
    header: bool = True
    encoding: str = "utf-8"
    decimal_separator: str = "."
    quote: str = '"'


@dataclasses.dataclass(frozen=True)
class Contract:
    """How to read one source table's files. ``name`` is ``<source>__<table>``, the raw table's name."""

    source: str
    table: str
    description: str
    files: str
    format: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    csv: CsvDialect
    path: Path

    @property
    def name(self) -> str:
        return f"{self.source}__{self.table}"

    def matching_files(self, landing_dir: Path) -> list[Path]:
        """The files of this table in the landing zone, in a stable order."""
        return sorted(path for path in landing_dir.glob(self.files) if path.is_file())


def _fail(path: Path, message: str) -> ContractError:
    return ContractError(f"contract {path}: {message}")


def _column(path: Path, index: int, raw: object) -> Column:
    if not isinstance(raw, dict) or "name" not in raw or "type" not in raw:
        raise _fail(path, f"columns[{index}] needs at least 'name' and 'type'")
    unknown = set(raw) - {"name", "type", "header", "required", "format"}
    if unknown:
        raise _fail(path, f"columns[{index}] ({raw['name']}): unknown keys {sorted(unknown)}")
    name, kind = str(raw["name"]), str(raw["type"]).lower().replace(" ", "")
    if not _NAME.match(name):
        raise _fail(path, f"column name {name!r} must be snake_case (letters, digits, underscores)")
    if kind not in TYPES and not _DECIMAL.match(kind):
        raise _fail(path, f"column {name}: unknown type {raw['type']!r}; use one of {sorted(TYPES)} or decimal(p,s)")
    return Column(
        name=name,
        type=kind,
        header=str(raw.get("header", name)),
        required=bool(raw.get("required", False)),
        format=raw.get("format"),
    )


def load_contract(path: Path) -> Contract:
    """Read and check one contract file; the source is its folder's name, the table its file's stem."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise _fail(path, f"not valid YAML: {error}") from error
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
    primary_key = tuple(raw.get("primary_key", ()))
    for key in primary_key:
        if key not in names:
            raise _fail(path, f"primary_key column {key!r} is not among the columns")
    csv_options = raw.get("csv", {}) or {}
    unknown = set(csv_options) - {field.name for field in dataclasses.fields(CsvDialect)}
    if unknown:
        raise _fail(path, f"csv: unknown keys {sorted(unknown)}")
    return Contract(
        source=path.parent.name,
        table=path.stem,
        description=str(raw.get("description", "")),
        files=str(raw["files"]),
        format=str(raw["format"]),
        columns=columns,
        primary_key=primary_key,
        csv=CsvDialect(**csv_options),
        path=path,
    )


def load_contracts(directory: Path = BUILT_IN_DIR) -> list[Contract]:
    """Every contract below ``directory`` (``<source>/<table>.yaml``), sorted by name."""
    contracts = [load_contract(path) for path in sorted(directory.glob("*/*.yaml"))]
    return sorted(contracts, key=lambda contract: contract.name)
