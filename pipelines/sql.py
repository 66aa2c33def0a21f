"""The one way names and values from outside reach SQL: quoted identifiers, string literals and typed constants.

File names, headers, contract and table names, settings and dbt vars are never formatted into SQL as they are:
an identifier goes through :func:`identifier`, a value is bound as a parameter where the statement allows one
(``connection.execute(sql, [value])``) and through :func:`string` or :func:`literal` where it cannot be (DuckDB
table-function options, ``attach``, DDL defaults). dbt models reach their vars through the macros in
``dbt_project/macros/literals.sql``, which do the same in Jinja.
"""

from __future__ import annotations

import math
import re

_SAFE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# A column type as DuckDB describes one: type words, sizes, arrays; no quotes, so no name rides along.
_COLUMN_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]*(\(\d+(, ?\d+)?\))?(\[\d*\])*$")


class UnsafeName(ValueError):
    """A name that must be a plain snake_case word is not one."""


def string(value: str) -> str:
    """A SQL string literal: single quotes doubled, NUL refused (it would end the text in C code)."""
    text = str(value)
    if "\x00" in text:
        raise ValueError("a NUL character cannot be part of a SQL string")
    return "'" + text.replace("'", "''") + "'"


def literal(value: str | int | float | bool | None) -> str:
    """A SQL constant: text quoted, numbers and booleans as numbers and booleans, NaN and infinities as null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "null"
    return string(str(value))


def identifier(name: str) -> str:
    """A quoted SQL identifier: double quotes doubled, NUL refused."""
    text = str(name)
    if not text:
        raise ValueError("an empty name cannot be a SQL name")
    if "\x00" in text:
        raise ValueError("a NUL character cannot be part of a SQL name")
    return '"' + text.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    """``schema.name``, both quoted."""
    return f"{identifier(schema)}.{identifier(name)}"


def safe_name(name: str, what: str) -> str:
    """``name`` when it is a snake_case word (letters, digits, underscores, starting with a letter), else an
    error naming ``what`` it was meant to be."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name):
        raise UnsafeName(f"{what} {name!r} must be snake_case: lower-case letters, digits and underscores")
    return name


def column_type(kind: str) -> str:
    """A column type as DuckDB describes it (``DOUBLE``, ``DECIMAL(18,2)``, ``VARCHAR[]``), checked to hold only
    type words, sizes and array brackets; anything else (a struct with quoted field names) is an error."""
    if not isinstance(kind, str) or not _COLUMN_TYPE.match(kind.strip()):
        raise UnsafeName(f"column type {kind!r} is not a plain type (word, size, array brackets)")
    return kind.strip()
