"""No name or value from outside becomes SQL text: a static check of our code, and the quoting helpers under attack.

The static check parses every module under pipelines/, models_ml/ and dashboards/ and looks at the SQL they build
with f-strings, ``str.format`` and ``%``: the text passed to ``.execute(``, ``.sql(``, ``.query(`` (and the names
assigned such text before being passed), and any f-string whose own words are SQL (``select ... from``,
``create table``, ``read_csv(`` ...). Every value interpolated into it must be safe by construction:

- a call of a ``pipelines.sql`` helper (``identifier``, ``string``, ``literal``, ``qualified``, ``safe_name``), of
  the loader's aliases (``sql_identifier``, ``sql_string``, ``sql_literal``) or of ``raw_table``; an ``int(...)``;
  an Expression's ``.sql()``;
- a module-level UPPER_CASE constant (text written in our code), or one looked up by key (``COLUMNS[kind]``);
- a local name whose every assignment in its function is itself safe (so ``columns = ", ".join(identifier(c)
  for c in names)`` is): ``=``, ``+=``, ``.append(x)``/``.extend(xs)`` on a list, and the loop variables of
  ``for`` and of comprehensions (each comprehension has its own names, read from the scope around it); a name
  unpacked from pairs is judged by its own part (``for condition, reason in rules``, ``rule[3]``, ``enumerate``,
  ``zip``);
- text built only from safe parts: f-strings, ``+``, ``%``, ``.format``, ``sep.join(parts)``, ``str``/``len``/
  ``range``, a value written with a number format (``{share:.6f}``, never with a fill character);
- a call of a function of the same module whose every ``return`` is safe, its parameters safe where this call
  passes safe values; a private function (``_name``) that the module only calls, and that no scanned module
  imports or reaches as an attribute, also has each parameter safe that every one of its calls passes safe;
- one listed with its reason in ``ALLOWED_NAMES`` below.

A module that breaks the rule fails its own test case, which lists every offender as ``file:line``.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb
import pytest

from pipelines import sql
from pipelines.settings import PROJECT_ROOT

SCANNED = ("pipelines", "models_ml", "dashboards")
SINKS = {"execute", "executemany", "sql", "query"}
HELPERS = {
    "identifier",
    "string",
    "literal",
    "qualified",
    "safe_name",
    "column_type",
    "sql_identifier",
    "sql_string",
    "sql_literal",
    "raw_table",
    "int",
}
TEXT_METHODS = {
    "split",
    "strip",
    "lstrip",
    "rstrip",
    "lower",
    "upper",
    "items",
    "values",
    "keys",
    "replace",
    "removeprefix",
    "removesuffix",
}
CONSTANT = re.compile(r"^_?[A-Z][A-Z0-9_]*$")
# Words that make an f-string SQL wherever it is built (a fragment returned to a caller that runs it).
SQL_WORDS = re.compile(
    r"\bselect\b[\s\S]*\bfrom\b|\binsert\s+into\b|\bcreate\s+(or\s+replace\s+)?(temp\w*\s+)?"
    r"(table|view|schema|macro|sequence)\b|\bdelete\s+from\b|\bdrop\s+(table|view|schema)\b|\balter\s+table\b"
    r"|^\s*attach\b|\bread_(csv|parquet|json)\w*\s*\(|\bcopy\s*\(",
    re.IGNORECASE,
)

# Local names (and functions of the module) that are SQL text not built here from the helpers, each with why it is
# safe. Keep it short: a name belongs here only when its text cannot come from a file, a header, a setting or a user.
ALLOWED_NAMES: dict[str, dict[str, str]] = {
    "pipelines/diagnosis.py": {
        "_relation": "returns a relation name from dbt's manifest only when it is dotted plain or quoted words",
        "compiled_sql": "the SQL dbt compiled from our own project's test: run as dbt itself ran it",
    },
    "pipelines/publish/snapshot.py": {
        "select": "expressions from PUBLISHED_META (constant SQL in this module) named through sql.identifier; "
        "the ml filter is the module's own template with quoted names",
    },
}


@dataclass(frozen=True)
class Offender:
    path: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text} is interpolated into SQL without a pipelines.sql helper"


def _modules() -> list[str]:
    return sorted(
        path.relative_to(PROJECT_ROOT).as_posix()
        for folder in SCANNED
        for path in (PROJECT_ROOT / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    )


def _is_string_constant(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _literal_text(node: ast.AST) -> str:
    """The constant words of a string-building expression, placeholders as ``?``: what SQL_WORDS reads."""
    if _is_string_constant(node):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if _is_string_constant(part) else "?" for part in node.values)
    return ""


class _Element(ast.AST):
    """What a loop variable is assigned: part ``path`` of each element of ``iterable`` (``for key, value in pairs``
    gives ``key`` part (0,)). The first iterable of a comprehension is read in the scope around it (``outer``)."""

    def __init__(self, iterable: ast.AST, path: tuple[int, ...] = (), outer: bool = False) -> None:
        super().__init__()
        self.iterable, self.path, self.outer = iterable, path, outer


class _Part(ast.AST):
    """What a name unpacked from a value is assigned: part ``path`` of ``value`` (``a, b = pair()``)."""

    def __init__(self, value: ast.AST, path: tuple[int, ...]) -> None:
        super().__init__()
        self.value, self.path = value, path


class _Safe(ast.AST):
    """A parameter that every call of its function (or the call being judged) passes safe text."""


COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
SCOPES = (*FUNCTIONS, ast.Lambda, ast.ClassDef, *COMPREHENSIONS)
NUMBERS = {"len", "range"}  # their result is a number (or numbers), whatever they are given
PASSING = {"str", "list", "tuple", "set", "sorted", "reversed", "enumerate", "zip", "min", "max"}  # text in, text out
# A format spec with no fill character and a numeric presentation type writes a number or fails: f"{share:.6f}".
# (Not "c", which writes the character of a code point, and no fill, which could be a quote.)
NUMERIC_SPEC = re.compile(r"^[+\- ]?z?#?0?\d*[,_]?(\.\d+)?[bdeEfFgGnoxX%]$")


def _target_paths(target: ast.AST, path: tuple[int, ...] = ()) -> Iterator[tuple[str, tuple[int, ...]]]:
    """The names a target binds and where each sits in the value: ``i, (a, b)`` -> i (0,), a (1, 0), b (1, 1)."""
    if isinstance(target, ast.Name):
        yield target.id, path
    elif isinstance(target, (ast.Tuple, ast.List)):
        starred = any(isinstance(element, ast.Starred) for element in target.elts)
        for index, element in enumerate(target.elts):
            if starred:  # where a name sits after a starred one depends on the value's length: unknown
                yield from ((name, (-1,)) for name in _names(element))
            else:
                yield from _target_paths(element, (*path, index))
    else:  # an attribute or a subscript: binds no local name
        return


class _Scope:
    """The safe names of one function, comprehension, lambda, class or module body: a name is safe when every
    assignment to it is (and a parameter when every call passes safe text). A comprehension reads the names it does
    not bind from the scope around it (``parent``); a function reads none from its enclosing function."""

    def __init__(
        self, body: ast.AST, module: _Module, parent: _Scope | None = None, safe_parameters: frozenset = frozenset()
    ) -> None:
        self.body, self.module, self.parent = body, module, parent
        self.assignments: dict[str, list[ast.AST | None]] = {}
        self._asking: set = set()
        if isinstance(body, ast.Module):
            for name in module.rebound:
                self._add(name, None)
        if isinstance(body, COMPREHENSIONS):
            for index, generator in enumerate(body.generators):
                for name, path in _target_paths(generator.target):
                    self._add(name, _Element(generator.iter, path, outer=index == 0) if path != (-1,) else None)
        for node in _own_nodes(body):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    self._collect(target, node.value)
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                self._collect(node.target, node.value)
            elif isinstance(node, (ast.For, ast.AsyncFor)):
                for name, path in _target_paths(node.target):  # a loop over our constant yields our constants
                    self._add(name, _Element(node.iter, path) if path != (-1,) else None)
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                self._add(node.target.id, node.value)
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Subscript):
                self._collect(node.target, node.value)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):  # bound elsewhere too: not judged here
                for name in node.names:
                    self._add(name, None)
            elif isinstance(node, (ast.With, ast.AsyncWith, ast.NamedExpr)):
                for target in _targets(node):
                    self._add(target, None)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    self._add((alias.asname or alias.name).split(".")[0], None)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                self._add(node.name, None)
            elif _is_growing(node):  # parts.append(x), parts.extend(xs), parts.insert(0, x): what the list holds
                value = node.args[-1] if node.args else None
                grown = ast.List(elts=[value]) if node.func.attr != "extend" and value is not None else value
                self._add(node.func.value.id, grown)
            elif isinstance(node, ast.arguments):
                for argument in [*node.posonlyargs, *node.args, *node.kwonlyargs, node.vararg, node.kwarg]:
                    if argument is not None:
                        self._add(argument.arg, _Safe() if argument.arg in safe_parameters else None)
        # The largest set of names consistent with their assignments, so that text built in a loop from itself
        # (query = f"select ... from ({query})") is safe when every piece added is.
        self.safe = {name for name, values in self.assignments.items() if None not in values}
        changed = True
        while changed:
            changed = False
            for name, values in self.assignments.items():
                if name in self.safe and not all(self.is_safe(value) for value in values):
                    self.safe.discard(name)
                    changed = True

    def _add(self, name: str, value: ast.AST | None) -> None:
        self.assignments.setdefault(name, []).append(value)

    def _collect(self, target: ast.AST, value: ast.AST) -> None:
        if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):  # parts[0] = x: parts holds x
            self._add(target.value.id, ast.List(elts=[value]))
            return
        if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)):
            plain = not any(isinstance(element, ast.Starred) for element in [*target.elts, *value.elts])
            if plain and len(value.elts) == len(target.elts):
                for element, part in zip(target.elts, value.elts, strict=True):
                    self._collect(element, part)
                return
        for name, path in _target_paths(target):
            self._add(name, None if path == (-1,) else _Part(value, path) if path else value)

    def binder(self, name: str) -> _Scope | None:
        """The scope that binds ``name``: this one, or one around this comprehension; None for a global."""
        scope = self
        while scope is not None and name not in scope.assignments:
            scope = scope.parent
        return scope

    def _name_safe(self, name: str) -> bool:
        if CONSTANT.match(name) or name in self.module.allowed:
            return True
        scope = self.binder(name)
        return scope is not None and name in scope.safe

    def _ask(self, key: tuple, question) -> bool:
        """``question()``, False when asked again while it is being answered (a name built from itself)."""
        if key in self._asking:
            return False
        self._asking.add(key)
        try:
            return question()
        finally:
            self._asking.discard(key)

    def _calls_module_function(self, node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and self.binder(node.func.id) is None
            and node.func.id in self.module.functions
        )

    def is_safe(self, node: ast.AST) -> bool:
        if isinstance(node, (ast.Constant, _Safe)):
            return True
        if isinstance(node, _Element):
            scope = self.parent if node.outer and self.parent is not None else self
            return scope.element_safe(node.iterable, node.path)
        if isinstance(node, _Part):
            return self.part_safe(node.value, node.path)
        if isinstance(node, ast.Name):
            return self._name_safe(node.id)
        if isinstance(node, ast.Attribute):
            return bool(CONSTANT.match(node.attr))
        if isinstance(node, ast.Subscript):
            index = _index(node.slice)
            if index is not None:
                return self.part_safe(node.value, (index,))
            return self.is_safe(node.value)  # a part of our constant is our constant, whatever the key
        if isinstance(node, ast.Starred):
            return self.is_safe(node.value)
        if isinstance(node, ast.FormattedValue):
            spec = node.format_spec
            if spec is not None and all(_is_string_constant(part) for part in spec.values):
                return NUMERIC_SPEC.match("".join(part.value for part in spec.values)) is not None or (
                    self.is_safe(node.value)  # a number (or an error), or our text padded with our characters
                )
            return self.is_safe(node.value) and (spec is None or self.is_safe(spec))
        if isinstance(node, ast.JoinedStr):
            return all(self.is_safe(part) for part in node.values)
        if isinstance(node, ast.IfExp):
            return self.is_safe(node.body) and self.is_safe(node.orelse)
        if isinstance(node, ast.BoolOp):
            return all(self.is_safe(value) for value in node.values)
        if isinstance(node, ast.BinOp):  # "a" + b, "%s" % (b,), "?, " * n: the parts' text, repeated or combined
            return self.is_safe(node.left) and self.is_safe(node.right)
        if isinstance(node, ast.UnaryOp):
            return self.is_safe(node.operand)
        if isinstance(node, ast.DictComp):
            inner = _Scope(node, self.module, self)
            return inner.is_safe(node.key) and inner.is_safe(node.value)
        if isinstance(node, COMPREHENSIONS):
            return _Scope(node, self.module, self).is_safe(node.elt)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return all(self.is_safe(element) for element in node.elts)
        if isinstance(node, ast.Call):
            return self._safe_call(node)
        return False

    def part_safe(self, node: ast.AST, path: tuple[int, ...]) -> bool:
        """Whether part ``path`` of the value of ``node`` is safe: ``pair[0]``, ``first, second = pair``."""
        if not path:
            return self.is_safe(node)
        first, rest = path[0], path[1:]
        if isinstance(node, (ast.Tuple, ast.List)):
            starred = next((i for i, e in enumerate(node.elts) if isinstance(e, ast.Starred)), len(node.elts))
            if 0 <= first < starred:
                return self.part_safe(node.elts[first], rest)
            if starred == len(node.elts):  # beyond the literal: an element put there later (append, insert)
                return self.is_safe(node)
            return all(self.is_safe(element) for element in node.elts[min(starred, max(first, 0)) :])
        if isinstance(node, ast.Name):
            if self._name_safe(node.id):
                return True
            scope = self.binder(node.id)
            return scope is not None and scope._ask(
                ("part", node.id, path),
                lambda: all(value is not None and scope.part_safe(value, path) for value in scope.assignments[node.id]),
            )
        if isinstance(node, _Element):
            scope = self.parent if node.outer and self.parent is not None else self
            return scope.element_safe(node.iterable, node.path + path)
        if isinstance(node, _Part):
            return self.part_safe(node.value, node.path + path)
        if isinstance(node, ast.IfExp):
            return self.part_safe(node.body, path) and self.part_safe(node.orelse, path)
        if isinstance(node, ast.Subscript) and _index(node.slice) is not None:
            return self.part_safe(node.value, (_index(node.slice), *path))
        if self._calls_module_function(node):
            return self.module.call_safe(node, self, path, element=False)
        return self.is_safe(node)

    def element_safe(self, iterable: ast.AST, path: tuple[int, ...]) -> bool:
        """Whether part ``path`` of every element of ``iterable`` is safe (``for name, _ in pairs``)."""
        if isinstance(iterable, (ast.List, ast.Tuple, ast.Set)):
            return all(
                self.element_safe(element.value, path)
                if isinstance(element, ast.Starred)
                else self.part_safe(element, path)
                for element in iterable.elts
            )
        if isinstance(iterable, COMPREHENSIONS) and not isinstance(iterable, ast.DictComp):
            return _Scope(iterable, self.module, self).part_safe(iterable.elt, path)
        if isinstance(iterable, ast.Name):
            if self._name_safe(iterable.id):
                return True
            scope = self.binder(iterable.id)
            return scope is not None and scope._ask(
                ("element", iterable.id, path),
                lambda: all(
                    value is not None and scope.element_safe(value, path) for value in scope.assignments[iterable.id]
                ),
            )
        if isinstance(iterable, ast.IfExp):
            return self.element_safe(iterable.body, path) and self.element_safe(iterable.orelse, path)
        if isinstance(iterable, ast.BoolOp):
            return all(self.element_safe(value, path) for value in iterable.values)
        if isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name):
            name, arguments = iterable.func.id, iterable.args
            plain = self.binder(name) is None and not any(isinstance(a, ast.Starred) for a in arguments)
            if plain and name == "range":
                return True
            if plain and name == "enumerate" and path and arguments:
                return path[0] == 0 or (path[0] == 1 and self.element_safe(arguments[0], path[1:]))
            if plain and name == "zip" and path:
                return 0 <= path[0] < len(arguments) and self.element_safe(arguments[path[0]], path[1:])
            if plain and name in ("sorted", "reversed", "list", "tuple", "set") and arguments:
                return self.element_safe(arguments[0], path)
            if self._calls_module_function(iterable):
                return self.module.call_safe(iterable, self, path, element=True)
        return self.is_safe(iterable)

    def _safe_call(self, node: ast.Call) -> bool:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id in self.module.allowed:
                return True
            if self.binder(func.id) is not None:
                return False  # a local name called: whatever it was given
            if func.id in HELPERS or func.id in NUMBERS:
                return True
            if func.id in PASSING:
                return all(self.is_safe(argument) for argument in node.args)
            if func.id in self.module.functions:
                return self.module.call_safe(node, self, (), element=False)
            return False
        if not isinstance(func, ast.Attribute):
            return False
        if func.attr in TEXT_METHODS and self.is_safe(func.value):
            return all(self.is_safe(argument) for argument in node.args)  # CONSTANT.split()[0]: our text, reshaped
        if func.attr == "get" and self.is_safe(func.value):
            return len(node.args) < 2 or self.is_safe(node.args[1])  # CONSTANT.get(key, default)
        if func.attr in HELPERS and isinstance(func.value, ast.Name) and func.value.id.endswith("sql"):
            return True  # sql.identifier(...), the module imported as a whole
        if func.attr == "sql" and not node.args and not node.keywords:
            return True  # a sqlglot Expression written out as SQL: it quotes its own names
        if func.attr == "join" and len(node.args) == 1:
            return self.is_safe(func.value) and self.is_safe(node.args[0])
        if func.attr == "format" and self.is_safe(func.value):
            return all(self.is_safe(argument) for argument in [*node.args, *(k.value for k in node.keywords)])
        return False


def _index(node: ast.AST) -> int | None:
    """The constant index of a subscript (``pair[0]``), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value if node.value >= 0 else None
    return None


def _bind(function: ast.FunctionDef, call: ast.Call) -> dict[str, tuple[str, ast.AST | None]] | None:
    """Each parameter of ``function`` with what ``call`` gives it: ("argument", node), ("default", node) or
    ("missing", None); None when the call spreads ``*args``/``**kwargs`` or does not fit."""
    signature = function.args
    positional = [*signature.posonlyargs, *signature.args]
    if any(isinstance(argument, ast.Starred) for argument in call.args) or any(k.arg is None for k in call.keywords):
        return None
    if len(call.args) > len(positional) and signature.vararg is None:
        return None
    bound = {parameter.arg: ("argument", argument) for parameter, argument in zip(positional, call.args, strict=False)}
    names = [parameter.arg for parameter in [*positional, *signature.kwonlyargs]]
    for keyword in call.keywords:
        if keyword.arg in names:
            bound[keyword.arg] = ("argument", keyword.value)
        elif signature.kwarg is None:
            return None
    with_default = names[len(positional) - len(signature.defaults) : len(positional)]
    defaults = dict(zip(with_default, signature.defaults, strict=True))
    defaults |= {p.arg: d for p, d in zip(signature.kwonlyargs, signature.kw_defaults, strict=True) if d is not None}
    for name in names:
        if name not in bound:
            bound[name] = ("default", defaults[name]) if name in defaults else ("missing", None)
    return bound


class _Module:
    """What is known of one module's functions: a call of one counts as safe when every ``return`` of the function
    is, its parameters judged by what the call passes. A private function (``_name``) that this module only calls,
    and that no scanned module imports or reaches as an attribute, has each parameter safe that every one of its
    calls passes safe text: the largest such set, found by narrowing from all of them."""

    def __init__(self, tree: ast.Module, allowed: set[str], exported: frozenset[str]) -> None:
        self.tree, self.allowed = tree, allowed
        self.parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        # Module names a function rebinds (``global name``): the module's own assignments do not tell their text.
        self.rebound = {name for node in ast.walk(tree) if isinstance(node, ast.Global) for name in node.names}
        self.functions: dict[str, list[ast.FunctionDef]] = {}
        calls: dict[str, list[ast.Call]] = {}
        references: dict[str, int] = {}
        for node in ast.walk(tree):
            if isinstance(node, FUNCTIONS) and not isinstance(self.parents.get(node), ast.ClassDef):
                self.functions.setdefault(node.name, []).append(node)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                calls.setdefault(node.func.id, []).append(node)
            if isinstance(node, ast.Name):
                references[node.id] = references.get(node.id, 0) + 1
        self.assumed: dict[ast.AST, frozenset[str]] = {}
        for name, defined in self.functions.items():
            function = defined[0]
            if (
                name.startswith("_")
                and not name.startswith("__")
                and len(defined) == 1
                and not function.decorator_list
                and name not in exported
                and references.get(name, 0) == len(calls.get(name, []))  # only ever called, never passed on
            ):
                signature = function.args
                self.assumed[function] = frozenset(p.arg for p in [*signature.posonlyargs, *signature.args,
                                                                    *signature.kwonlyargs])  # fmt: skip
        self._reset()
        while True:
            narrowed = {}
            for function, parameters in self.assumed.items():
                kept = set(parameters)
                for call in calls.get(function.name, []):
                    bound = _bind(function, call) if self._visible(function, call) else None
                    if bound is None:
                        kept = set()
                        break
                    scope = self.scope_of(call)
                    kept = {name for name in kept if self._given_safe(bound[name], scope)}
                narrowed[function] = frozenset(kept)
            if narrowed == self.assumed:
                break
            self.assumed = narrowed
            self._reset()

    def _reset(self) -> None:
        self._returns: dict[tuple, bool] = {}
        self._computing: set[tuple] = set()
        self._scopes: dict[tuple, _Scope] = {}
        self._building: set[tuple] = set()
        self._module_scope: _Scope | None = None

    def _visible(self, function: ast.AST, call: ast.AST) -> bool:
        """Whether ``function`` is the one a call by its name reaches: module-level, or nested in a function
        around the call."""
        enclosing = self.parents.get(function)
        while enclosing is not None and not isinstance(enclosing, (*FUNCTIONS, ast.Lambda, ast.ClassDef)):
            enclosing = self.parents.get(enclosing)
        if enclosing is None:
            return True
        node = call
        while node is not None and node is not enclosing:
            node = self.parents.get(node)
        return node is enclosing

    def _given_safe(self, given: tuple[str, ast.AST | None], scope: _Scope) -> bool:
        how, node = given
        if how == "argument":
            return scope.is_safe(node)
        # A default is read where the function is defined: our constant, or not judged safe.
        return how == "default" and (
            isinstance(node, ast.Constant)
            or (isinstance(node, ast.Name) and bool(CONSTANT.match(node.id)))
            or (isinstance(node, ast.Attribute) and bool(CONSTANT.match(node.attr)))
        )

    def call_safe(self, call: ast.Call, scope: _Scope, path: tuple[int, ...], element: bool) -> bool:
        """Whether what ``call`` returns (part ``path`` of it, or of each of its elements) is safe."""
        functions = [function for function in self.functions[call.func.id] if self._visible(function, call)]
        if not functions:
            return False
        for function in functions:
            bound = _bind(function, call)
            if bound is None:
                return False
            safe = self.assumed.get(function, frozenset()) | {
                name for name, given in bound.items() if self._given_safe(given, scope)
            }
            if not self.returns_safe(function, frozenset(safe), path, element):
                return False
        return True

    def returns_safe(self, function: ast.AST, safe: frozenset[str], path: tuple[int, ...], element: bool) -> bool:
        key = (function, safe, path, element)
        if key in self._returns:
            return self._returns[key]
        if key in self._computing:
            return False  # a function that calls itself: judged without that call's text
        self._computing.add(key)
        try:
            scope = self.function_scope(function, safe)
            own = list(_own_nodes(function))
            if scope is None or any(isinstance(node, (ast.Yield, ast.YieldFrom)) for node in own):
                result = False
            else:
                judge = scope.element_safe if element else scope.part_safe
                result = all(judge(node.value, path) for node in own if isinstance(node, ast.Return) and node.value)
        finally:
            self._computing.discard(key)
        self._returns[key] = result
        return result

    def function_scope(self, function: ast.AST, safe: frozenset[str]) -> _Scope | None:
        key = (function, safe)
        if key not in self._scopes:
            if key in self._building:
                return None
            self._building.add(key)
            try:
                self._scopes[key] = _Scope(function, self, None, safe)
            finally:
                self._building.discard(key)
        return self._scopes[key]

    def module_scope(self) -> _Scope:
        if self._module_scope is None:
            self._module_scope = _Scope(self.tree, self)
        return self._module_scope

    def scope_of(self, node: ast.AST) -> _Scope:
        """The scope ``node`` is read in: its function (parameters as every call passes them), and the
        comprehensions around it."""
        comprehensions = []
        around = self.parents.get(node)
        while around is not None and not isinstance(around, (*FUNCTIONS, ast.Lambda, ast.ClassDef)):
            if isinstance(around, COMPREHENSIONS):
                comprehensions.append(around)
            around = self.parents.get(around)
        if around is None:
            scope = self.module_scope()
        else:
            scope = self.function_scope(around, self.assumed.get(around, frozenset()))
            scope = scope if scope is not None else _Scope(around, self)
        for comprehension in reversed(comprehensions):
            scope = _Scope(comprehension, self, scope)
        return scope


def _own_nodes(body: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a scope that are not inside a nested function, class or comprehension (which bind their own
    names)."""
    pending = list(ast.iter_child_nodes(body))
    while pending:
        node = pending.pop()
        yield node
        if not isinstance(node, SCOPES):
            pending.extend(ast.iter_child_nodes(node))


def _is_growing(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("append", "extend", "insert")
        and isinstance(node.func.value, ast.Name)
    )


def _names(node: ast.AST) -> list[str]:
    return [child.id for child in ast.walk(node) if isinstance(child, ast.Name)]


def _targets(node: ast.AST) -> list[str]:
    if isinstance(node, (ast.AugAssign, ast.For, ast.comprehension, ast.NamedExpr)):
        return _names(node.target)
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return [name for item in node.items if item.optional_vars for name in _names(item.optional_vars)]
    return []


def _interpolated(node: ast.AST) -> list[ast.AST] | None:
    """The values a string-building expression puts into its text, or None when it builds none."""
    if isinstance(node, ast.JoinedStr):
        return [part.value for part in node.values if isinstance(part, ast.FormattedValue)]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return [node.func.value, *node.args, *(keyword.value for keyword in node.keywords)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and _is_string_constant(node.left):
        return list(node.right.elts) if isinstance(node.right, ast.Tuple) else [node.right]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        parts = [node.left, node.right]
        if any(_is_string_constant(part) or isinstance(part, ast.JoinedStr) for part in parts):
            return [
                value
                for part in parts
                for value in ([] if _is_string_constant(part) else (_interpolated(part) or [part]))
            ]
    return None


@functools.cache
def _exported() -> frozenset[str]:
    """The names any scanned module imports from another (``from x import _name``) or reaches as an attribute
    (``loader._name``): a private function so named may be called with text this module does not see."""
    names = set()
    for path in _modules():
        for node in ast.walk(ast.parse((PROJECT_ROOT / path).read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
    return frozenset(names)


def offenders(path: str, source: str | None = None) -> list[Offender]:
    """Every value interpolated into SQL text in the module at ``path`` (relative to the project) that is not
    safe by construction."""
    source = (PROJECT_ROOT / path).read_text(encoding="utf-8") if source is None else source
    tree = ast.parse(source, filename=path)
    module = _Module(tree, set(ALLOWED_NAMES.get(path, {})), _exported())
    checked: list[ast.AST] = []
    sunk: set[tuple[int, str]] = set()  # (the scope that binds it, name) of each name passed to a sink

    def binding(name: ast.Name) -> tuple[int, str]:
        return id(module.scope_of(name).binder(name.id) and module.scope_of(name).binder(name.id).body), name.id

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SINKS:
            if node.args and isinstance(node.args[0], ast.Name):
                sunk.add(binding(node.args[0]))
            elif node.args:
                checked.append(node.args[0])
        if isinstance(node, ast.JoinedStr) and SQL_WORDS.search(_literal_text(node)):
            checked.append(node)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [name for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)]
            if any(binding(name) in sunk for name in names):
                checked.append(node.value)
    found: dict[tuple[int, str], Offender] = {}
    for node in checked:
        scope = module.scope_of(node)
        for value in _interpolated(node) or []:
            if not scope.is_safe(value):
                text = ast.get_source_segment(source, value) or ast.dump(value)
                found[(value.lineno, text)] = Offender(path, value.lineno, text)
    return sorted(found.values(), key=lambda offender: (offender.line, offender.text))


@pytest.mark.parametrize("path", _modules())
def test_sql_text_interpolates_only_quoted_names_bound_values_and_our_constants(path):
    found = offenders(path)
    for offender in found:
        print(offender)
    assert not found, "\n".join(str(offender) for offender in found)


def test_the_static_check_finds_a_name_formatted_into_sql_and_accepts_the_quoted_one():
    source = """
from pipelines.sql import identifier
TABLE = "raw.orders"

def load(connection, header, value):
    connection.execute(f"select {header} from {TABLE}")
    connection.execute(f"select {identifier(header)} from {TABLE} where x = ?", [value])
    text = "select %s from t" % header
    connection.sql(text)
    columns = ", ".join(identifier(name) for name in header)
    connection.sql("select {} from t".format(columns))
    query = f"delete from t where x = '{value}'"
    return query
"""
    found = offenders("pipelines/example.py", source)
    assert [(offender.line, offender.text) for offender in found] == [(6, "header"), (8, "header"), (12, "value")]


def test_the_static_check_follows_functions_loops_and_lists_of_our_own_text_and_no_further():
    source = """
from pipelines.sql import identifier

def _relation(index):
    return f"_feed_{index}_rows"

def _passed_on(text):
    return text

def wrapped(text):
    return f"({text})"

def pairs(names):
    return [(identifier(name), name) for name in names]

def load(connection, header, names, share):
    for index, name in enumerate(names):
        connection.execute(f"drop table {_relation(index)}")
    connection.execute(f"select {_passed_on(header)} from t")
    connection.execute(f"select {wrapped(identifier(header))} from t")
    connection.execute(f"select {wrapped(header)} from t")
    for quoted, raw in pairs(names):
        connection.execute(f"select {quoted}, {raw} from t")
    parts = [f"{identifier(name)} is null" for name in names]
    parts.append(f"{header} = 1")
    connection.execute(f"select 1 from t where {' or '.join(parts)}")
    columns = []
    for name in names:
        columns += [identifier(name)]
    connection.execute("select %s from t %s" % (", ".join(columns), f"using sample {share * 100:.6f} percent"))
    connection.execute(f"select {len(names)}, {str(int(share))}, {header:>10}, {share:'^9d} from t")
    rules = [(name, identifier(name)) for name in names]
    connection.execute(f"select {', '.join(rule[1] for rule in rules)}, {rules[0][0]} from t")
    column = identifier(header)
    found = ", ".join(f"{column}" for column in names)
    connection.execute(f"select {column}, {found} from t")
    picked = [identifier(header)]
    picked.append(header)
    connection.execute(f"select {picked[0]}, {picked[1]} from t")
    replaced, chosen = [identifier(header)], [identifier(header)]
    replaced[0] = header
    chosen.insert(0, header)
    connection.execute(f"select {replaced[0]}, {chosen[0]} from t")

def _unused_global():
    global TABLE_NAME, table_name
    table_name = input()

table_name = "t"
query = f"select * from {table_name}"
"""
    found = offenders("pipelines/example.py", source)
    assert [(offender.line, offender.text) for offender in found] == [
        (19, "_passed_on(header)"),  # a private function that returns what its one call gave it, raw
        (21, "wrapped(header)"),  # a public function is judged by what each call passes
        (23, "raw"),  # the second of each pair is the raw name, the first is quoted
        (26, "' or '.join(parts)"),  # one part appended is raw
        (31, "header"),  # a width is not a number format
        (31, "share"),  # nor is one whose fill character is a quote
        (33, "rules[0][0]"),  # the raw name of the first pair
        (36, "found"),  # a comprehension's own name, not the quoted one outside it
        (39, "picked[0]"),  # an appended item's place is not followed: every index of the list is judged by it
        (39, "picked[1]"),
        (43, "chosen[0]"),  # inserted before it
        (43, "replaced[0]"),  # replaced by the raw one
        (50, "table_name"),  # rebound by a function
    ]


# --- the helpers under attack -----------------------------------------------------------------------------

HOSTILE = [
    'x"; drop table t; --',
    "a'b",
    "x'); drop table t; --",
    "line\nbreak",
    "y" * 10_000,
    "naïve café 日本語 🙂",
    "both \" and ' quotes",
]


def _tables(connection: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    return set(connection.execute("select schema_name, table_name from duckdb_tables()").fetchall())


@pytest.mark.parametrize("name", HOSTILE, ids=lambda name: repr(name[:24]))
def test_a_hostile_name_and_value_make_one_table_holding_exactly_that_value(name):
    connection = duckdb.connect()
    connection.execute("create table t (x integer)")
    connection.execute(f"create schema {sql.identifier(name)}")
    table = sql.qualified(name, name)
    connection.execute(f"create table {table} ({sql.identifier(name)} varchar, n integer, flag boolean)")
    connection.execute(f"insert into {table} values ({sql.string(name)}, {sql.literal(7)}, {sql.literal(True)})")
    connection.execute(f"insert into {table} values ({sql.literal(name)}, {sql.literal(None)}, ?)", [False])
    connection.execute(f"insert into {table} values (?, ?, ?)", [name, 8, None])
    rows = connection.execute(f"select {sql.identifier(name)}, n, flag from {table} order by n nulls last").fetchall()
    assert rows == [(name, 7, True), (name, 8, None), (name, None, False)]
    assert _tables(connection) == {("main", "t"), (name, name)}  # t is still there and nothing else was made


def test_a_nul_character_is_refused_before_it_reaches_the_database():
    for helper in (sql.identifier, sql.string, sql.literal):
        with pytest.raises(ValueError, match="NUL"):
            helper("a\x00b")
    with pytest.raises(ValueError, match="NUL"):
        sql.qualified("main", "a\x00; drop table t")


def test_an_empty_name_creates_nothing():
    connection = duckdb.connect()
    connection.execute("create table t (x integer)")
    with pytest.raises((ValueError, duckdb.Error)):
        connection.execute(f"create table {sql.qualified('main', '')} ({sql.identifier('')} varchar)")
    assert _tables(connection) == {("main", "t")}
    assert connection.execute(f"select {sql.string('')}").fetchone() == ("",)


def test_literal_writes_numbers_as_numbers_and_non_finite_floats_as_null():
    connection = duckdb.connect()
    values = (3, -2.5, 1e300, float("nan"), float("inf"), None, False, "it's")
    written = ", ".join(sql.literal(value) for value in values)
    assert connection.execute(f"select {written}").fetchone() == (3, -2.5, 1e300, None, None, None, False, "it's")


@pytest.mark.parametrize(
    "relation",
    ['"crm"."marts"."fct_orders"; drop table t; --', "marts.fct_orders where 1=1", '"unclosed', "a.b.c.d", ""],
)
def test_diagnosis_queries_no_relation_that_is_not_a_dotted_name(relation):
    from pipelines.diagnosis import DbtFailure, failing_rows_sql

    def failed(**fields) -> DbtFailure:
        return DbtFailure("test.crm.t", "test", "t", "fail", "", "models/x.yml", **fields)

    assert failing_rows_sql(failed(stored_failures=relation)) is None
    assert failing_rows_sql(failed(relation=relation, column="x", test_name="not_null")) is None
    quoted = failing_rows_sql(failed(relation='"crm"."ma""rts".fct_orders', column='x"y', test_name="not_null"))
    assert quoted == 'select "x""y" from "crm"."ma""rts".fct_orders where "x""y" is null limit 3'


def test_a_column_type_reaches_sql_only_as_a_type_word_or_a_decimal_of_two_numbers():
    from pipelines.ingest.loader import type_sql

    assert [type_sql(kind) for kind in ("date", "varchar", "decimal(18,2)")] == ["date", "varchar", "decimal(18,2)"]
    for hostile in ("varchar); drop table t; --", "decimal(18,2); drop table t", "decimal(1e3,2)", "json", ""):
        with pytest.raises(ValueError, match="not a column type"):
            type_sql(hostile)


def test_safe_name_accepts_snake_case_and_names_what_it_refuses():
    assert sql.safe_name("erp__orders", "table") == "erp__orders"
    for name in ('x"; drop table t; --', "Orders", "", "1st", "naïve", "a b"):
        with pytest.raises(sql.UnsafeName, match="contract name"):
            sql.safe_name(name, "contract name")
