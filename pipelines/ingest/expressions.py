"""Row expressions in contracts: checked by DuckDB's own parser, rendered from the checked tree, never pasted.

A contract may compute a column from the row (``line_amount: quantity * unit_price``), keep rows by a condition
(``customer_no is not null``) or map a canonical column to an expression. Such text is data from outside, so it
reaches SQL only through here: DuckDB parses ``select <text>`` (the text is a bound parameter), the parse tree
is walked and refused unless every node is an allowed kind (column references to the row's own columns,
constants, operators, CASE, CAST and a fixed list of scalar functions: no subquery, table, window, aggregate,
parameter or unknown function), and the SQL that runs is rendered back from that checked tree by DuckDB, with
every column reference rewritten to a quoted name of the row.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable
from typing import Any

import duckdb

# Scalar functions and operators a row expression may use: text, numbers, dates, nulls. Nothing that reads or
# writes files, settings or other tables, and nothing that aggregates or looks at other rows.
ALLOWED_FUNCTIONS = frozenset({
    "+", "-", "*", "/", "//", "%", "**", "^", "||", "~~", "!~~", "~~*", "!~~*",
    "abs", "round", "floor", "ceil", "ceiling", "trunc", "sign", "greatest", "least",
    "lower", "upper", "lcase", "ucase", "trim", "ltrim", "rtrim", "length", "strlen", "substr", "substring", "left",
    "right", "replace", "concat", "concat_ws", "starts_with", "ends_with", "prefix", "suffix", "contains", "instr",
    "position", "strpos", "lpad", "rpad", "reverse", "repeat", "split_part", "strip_accents", "regexp_replace",
    "regexp_matches", "regexp_extract", "regexp_full_match", "nullif", "ifnull",
    "strptime", "try_strptime", "strftime", "make_date", "make_timestamp", "date_trunc", "date_part", "datepart",
    "year", "month", "day", "hour", "minute", "second", "epoch", "to_timestamp", "last_day",
})  # fmt: skip
_OPERATORS = {
    "OPERATOR_NOT", "OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL", "OPERATOR_COALESCE", "COMPARE_IN",
    "COMPARE_NOT_IN", "OPERATOR_TRY",
}  # fmt: skip
_ALLOWED_CLASSES = {"COLUMN_REF", "CONSTANT", "FUNCTION", "CONJUNCTION", "COMPARISON", "OPERATOR", "CASE", "CAST",
                    "BETWEEN", "TYPE"}  # fmt: skip
_TYPES = frozenset({"varchar", "text", "string", "integer", "int", "bigint", "smallint", "double", "float", "real",
                    "decimal", "numeric", "date", "timestamp", "boolean", "bool"})  # fmt: skip


class ExpressionError(ValueError):
    """An expression is not valid SQL, or uses something a row expression may not; the message says what."""


@dataclasses.dataclass(frozen=True)
class Expression:
    """A checked row expression: its text as written and the columns it reads."""

    text: str
    columns: tuple[str, ...]
    _tree: str  # the checked parse tree (JSON), rendered to SQL on demand

    @property
    def column(self) -> str | None:
        """The column, when the expression is nothing but one column of the row."""
        node = json.loads(self._tree)["statements"][0]["node"]["select_list"][0]
        return node["column_names"][0] if node["class"] == "COLUMN_REF" else None

    def sql(self, qualifier: str | None = None) -> str:
        """The SQL to run, with each column read as a quoted name (of ``qualifier`` where given)."""
        tree = json.loads(self._tree)
        for node in _nodes(tree["statements"][0]["node"]["select_list"][0]):
            if node.get("class") == "COLUMN_REF":
                node["column_names"] = [qualifier, node["column_names"][0]] if qualifier else node["column_names"]
        rendered = _parser().cursor().execute("select json_deserialize_sql(?)", [json.dumps(tree)]).fetchone()[0]
        return "(" + rendered.removeprefix("SELECT ").strip() + ")"


def _nodes(node: Any) -> Iterable[dict]:
    """Every expression node below ``node`` (itself included), wherever it hides in the tree."""
    if isinstance(node, dict):
        if "class" in node:
            yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for item in node:
            yield from _nodes(item)


def _refuse(text: str, what: str) -> ExpressionError:
    return ExpressionError(f"expression {text!r}: {what}")


def _check_node(text: str, node: dict, columns: set[str], read: list[str]) -> None:
    kind = node["class"]
    if kind not in _ALLOWED_CLASSES:
        raise _refuse(text, f"{kind.lower().replace('_', ' ')} is not allowed in a row expression")
    if kind == "COLUMN_REF":
        names = node["column_names"]
        if len(names) != 1:
            raise _refuse(text, f"write columns without a table name ({'.'.join(names)})")
        if names[0] not in columns:
            known = ", ".join(sorted(columns))
            raise _refuse(text, f"no column {names[0]!r} in this row (it has {known})")
        read.append(names[0])
    elif kind == "FUNCTION":
        name = str(node["function_name"]).lower()
        if node.get("schema") or node.get("catalog") or name not in ALLOWED_FUNCTIONS:
            raise _refuse(text, f"function {node['function_name']!r} is not one a row expression may use")
        if node.get("filter") or node.get("distinct") or node.get("order_bys", {}).get("orders"):
            raise _refuse(text, f"{name}: FILTER, DISTINCT and ORDER BY are for aggregates, not row expressions")
    elif kind == "TYPE" and (node.get("schema") or node.get("catalog") or node["type_name"].lower() not in _TYPES):
        raise _refuse(text, f"cast to {node['type_name']!r}: cast to one of {', '.join(sorted(_TYPES))}")
    elif kind == "OPERATOR" and node["type"] not in _OPERATORS:
        raise _refuse(text, f"operator {node['type'].lower()} is not allowed")


@functools.cache
def _parser() -> duckdb.DuckDBPyConnection:
    """An empty in-memory database that only parses."""
    return duckdb.connect()


def parse(text: object, columns: Iterable[str], connection: duckdb.DuckDBPyConnection | None = None) -> Expression:
    """Check ``text`` as an expression over a row with ``columns``; raise ExpressionError naming the problem."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ExpressionError(f"expression {text!r}: write an SQL expression as text")
    text = str(text)
    cursor = (connection or _parser()).cursor()
    serialised = json.loads(cursor.execute("select json_serialize_sql(?)", ["select " + text]).fetchone()[0])
    if serialised.get("error"):
        raise _refuse(text, f"not valid SQL ({serialised.get('error_message', 'parse error')})")
    statements = serialised["statements"]
    node = statements[0]["node"] if len(statements) == 1 else {}
    simple = (
        node.get("type") == "SELECT_NODE"
        and len(node.get("select_list", [])) == 1
        and node.get("from_table", {}).get("type") in (None, "EMPTY")
        and not node.get("where_clause")
        and not node.get("group_expressions")
        and not node.get("having")
        and not node.get("qualify")
        and not node.get("modifiers")
        and not node.get("cte_map", {}).get("map")
    )
    if not simple:
        raise _refuse(text, "must be one expression over the row (no FROM, WHERE, ';' or second statement)")
    read: list[str] = []
    for expression in _nodes(node["select_list"][0]):
        _check_node(text, expression, set(columns), read)
    return Expression(text, tuple(dict.fromkeys(read)), json.dumps(serialised))
