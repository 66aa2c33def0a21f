"""Every CSV or Excel file the project writes, written with formula-like text made harmless (OWASP CSV injection).

A spreadsheet treats a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in some, a tab or carriage return)
as a formula: ``=HYPERLINK("http://x","y")`` in a customer's name becomes a link, ``+cmd|' /C calc'!A0`` can run a
program. OWASP's advice (https://owasp.org/www-community/attacks/CSV_Injection) is to prefix such a cell with a
single quote, which the spreadsheet shows as text. Plain numbers such as ``-12.5`` are left alone: they are values,
not formulas, and a quote would turn them into text.

:func:`formula_payloads` counts the formula-like text values of a database's tables, so the publish step can say
how many would need neutralising if they were exported.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import polars as pl

from pipelines import sql

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$")


def _formula_sql(column: str) -> str:
    """The same test in SQL on the quoted ``column``: starts like a formula and is not a plain number. Written with
    ``starts_with`` rather than a regular expression: DuckDB skips every row group whose text statistics rule the
    starts out, and the publish scans every text column of the snapshot: at 1M customers 12 s with a regular
    expression, 1 s with ``starts_with``."""
    starts = " or ".join(f"starts_with({column}, {sql.string(start)})" for start in FORMULA_STARTS)
    return f"(({starts}) and not regexp_matches({column}, {sql.string(_PLAIN_NUMBER.pattern)}))"


def is_formula_like(value: object) -> bool:
    """True when ``value`` is text a spreadsheet would read as a formula (plain numbers are not)."""
    return isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.match(value)


def neutralise(value: object) -> object:
    """``value`` with a leading ``'`` when it is formula-like text; anything else unchanged."""
    return "'" + value if is_formula_like(value) else value


def neutralised(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every text cell neutralised (numbers, dates and booleans untouched)."""
    text = [name for name, kind in frame.schema.items() if kind == pl.String]
    return frame.with_columns(
        pl.when(
            pl.any_horizontal(pl.col(name).str.starts_with(start) for start in FORMULA_STARTS)
            & ~pl.col(name).str.contains(_PLAIN_NUMBER.pattern)
        )
        .then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name in text
    )


def _as_polars(frame) -> pl.DataFrame:
    return frame if isinstance(frame, pl.DataFrame) else pl.from_pandas(frame)


def write_csv(frame, path: Path, **options) -> Path:
    """Write ``frame`` (polars or pandas) as CSV with every text cell neutralised; ``options`` go to polars'
    ``write_csv`` (e.g. ``separator``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    neutralised(_as_polars(frame)).write_csv(path, **options)
    return path


def write_excel(frame, path: Path, sheet: str = "data") -> Path:
    """Write ``frame`` (polars or pandas) as an .xlsx sheet with every text cell neutralised and stored as text,
    never as a formula."""
    from openpyxl import Workbook

    frame = neutralised(_as_polars(frame))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook = Workbook()
    worksheet = workbook.active
    worksheet.title = sheet
    worksheet.append(list(frame.columns))
    for row in frame.iter_rows():
        worksheet.append(list(row))
    # openpyxl reads any string starting with "=" as a formula; a neutralised cell starts with "'" so none does,
    # but the data type is set explicitly so no later change to the rules can turn a cell into a formula.
    for row in worksheet.iter_rows(min_row=2):
        for cell in row:
            if isinstance(cell.value, str):
                cell.data_type = "s"
    workbook.save(path)
    return path


def formula_payloads(connection: duckdb.DuckDBPyConnection, catalog: str, schemas: tuple[str, ...]) -> list[tuple]:
    """(table, column, values) of every text column of ``catalog``'s ``schemas`` holding formula-like values."""
    columns = connection.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_catalog = ? and data_type = 'VARCHAR' and list_contains(?, table_schema) order by all",
        [catalog, list(schemas)],
    ).fetchall()
    found = []
    for schema, table, column in columns:
        condition = _formula_sql(sql.identifier(column))
        source = f"{sql.identifier(catalog)}.{sql.qualified(schema, table)}"
        (count,) = connection.execute(f"select count(*) from {source} where {condition}").fetchone()
        if count:
            found.append((f"{schema}.{table}", column, count))
    return found
