"""Turn a landing file into something DuckDB reads as text: the file itself, or a UTF-8 CSV copy of it.

DuckDB reads UTF-8, UTF-16 and Latin-1 CSV and Parquet itself. Any other encoding a Python codec knows
(Windows-1252 from Spanish-language systems, ISO-8859-15, Mac Roman...) is transcoded to a temporary UTF-8 copy,
text aligned in columns by runs of spaces (``delimiter: whitespace``) is rewritten with one tab between fields,
and Excel sheets are written out as a temporary CSV, so every format goes through the same contract checks.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.ingest.contracts import Contract, Dialect


class FileRefused(ValueError):
    """A whole file cannot be loaded under its contract; the message names the file and, where one is to blame,
    the column or line."""


@dataclasses.dataclass(frozen=True)
class Readable:
    """What DuckDB reads: a path and the dialect to read it with (a transcoded copy is plain UTF-8)."""

    path: Path
    format: str
    dialect: Dialect


WHITESPACE = "whitespace"
_RUN_OF_SPACE = re.compile(r"[ \t]+")


def _fields_tab_separated(text: str) -> str:
    """A line whose fields are separated (or padded) by runs of spaces or tabs: one tab between fields, none at
    its ends, so a line with one field too few or too many is still a malformed record."""
    body = text.rstrip("\r\n")
    return _RUN_OF_SPACE.sub("\t", body.strip(" \t")) + text[len(body) :]


def _transcode(
    source: Path, target: Path, encoding: str, shown_name: str, rewrite: Callable[[str], str] | None = None
) -> None:
    """Write ``source`` as UTF-8 to ``target``, each line through ``rewrite`` where given."""
    with (
        source.open("r", encoding=encoding, newline="") as reader,
        target.open("w", encoding="utf-8", newline="") as writer,
    ):
        line = 0
        try:
            for line, text in enumerate(reader, start=1):  # noqa: B007 - line is reported on error
                writer.write(rewrite(text) if rewrite else text)
        except UnicodeDecodeError as error:
            raise FileRefused(
                f"{shown_name}: line {line + 1} is not valid {encoding} ({error.reason}); "
                "declare the file's real encoding in its contract (csv: {encoding: ...})"
            ) from error


def _cell_text(value: object) -> str:
    """An Excel cell as the text a CSV export would hold: ISO dates, integers without '.0'."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") if value.time() != dt.time() else value.strftime("%Y-%m-%d")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _excel_to_csv(source: Path, target: Path, dialect: Dialect, shown_name: str) -> None:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(source, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many kinds for a file that is not a workbook
        raise FileRefused(f"{shown_name}: cannot be read as an Excel workbook ({error})") from error
    try:
        if dialect.sheet is None:
            sheet = workbook.worksheets[0]
        elif isinstance(dialect.sheet, int):
            sheet = workbook.worksheets[dialect.sheet]
        elif dialect.sheet in workbook.sheetnames:
            sheet = workbook[dialect.sheet]
        else:
            raise FileRefused(f"{shown_name}: no sheet {dialect.sheet!r} (sheets: {', '.join(workbook.sheetnames)})")
        with target.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n")
            for index, row in enumerate(sheet.iter_rows(values_only=True)):
                if index >= dialect.skip_rows:
                    writer.writerow([_cell_text(value) for value in row])
    finally:
        workbook.close()


@contextmanager
def readable(contract: Contract, file: Path, shown_name: str) -> Iterator[Readable]:
    """The file as DuckDB should read it; temporary copies are deleted afterwards."""
    dialect = contract.dialect
    aligned = contract.format == "csv" and dialect.delimiter == WHITESPACE
    if contract.format == "parquet" or (contract.format == "csv" and dialect.native_encoding and not aligned):
        native = dataclasses.replace(dialect, encoding=dialect.native_encoding or "utf-8")
        yield Readable(file, contract.format, native)
        return
    with tempfile.TemporaryDirectory(prefix="crm-ingest-") as folder:
        copy = Path(folder) / (file.stem + ".csv")
        if contract.format == "xlsx":
            _excel_to_csv(file, copy, dialect, shown_name)
            csv_dialect = Dialect(delimiter=",", header=dialect.header, decimal_separator=dialect.decimal_separator,
                                  thousands_separator=dialect.thousands_separator)  # fmt: skip
        elif aligned:  # no quoting: a quote character is text in such files
            _transcode(file, copy, dialect.encoding, shown_name, _fields_tab_separated)
            csv_dialect = dataclasses.replace(dialect, encoding="utf-8", delimiter="\t", quote="")
        else:
            _transcode(file, copy, dialect.encoding, shown_name)
            csv_dialect = dataclasses.replace(dialect, encoding="utf-8")
        yield Readable(copy, "csv", csv_dialect)
