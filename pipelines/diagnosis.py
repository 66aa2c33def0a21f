"""Why a run failed, in sentences a user can act on: the file and column, the dbt model and its SQL, or the dbt
test with its model, column and a few failing rows; never only an exception class.

The evidence is what the run left behind: Dagster's events (step failures, failed blocking checks with their
metadata), dbt's artifacts of the failed invocation (run_results.json and manifest.json in its target folder),
and the warehouse's bookkeeping (meta.load_ledger). Turning that evidence into sentences is pure and unit-tested
(``root_causes``); reading it (``explain_failed_run``) opens the warehouse read-only, after the run, when the
single writer is gone.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipelines.settings import PROJECT_ROOT
from pipelines.sql import identifier

SAMPLE_ROWS = 3
MAX_CAUSES = 10
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_DBT_LOG = re.compile(r"view the dbt debug log: (.+?)/dbt\.log")
_DBT_ERROR_HEADER = re.compile(r"^(Runtime|Database|Compilation|Parsing|Dependency) Error in \w+ ")
_SQL_LINE = re.compile(r"^LINE \d+:\s*(.*)$")
_MISSING_COLUMN = re.compile(r'Referenced column "([^"]+)" not found')
_REF = re.compile(r"""ref\(\s*['"]([^'"]+)['"]\s*\)""")
_FRAME = re.compile(r'File "([^"]+)", line (\d+)')
_RELATION_PART = r'(?:"(?:[^"\x00]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_RELATION = re.compile(rf"{_RELATION_PART}(?:\.{_RELATION_PART}){{0,2}}")
# What a failing generic test's count means, and which column of its compiled query holds the failing value.
_TEST_FAILURES = {
    "not_null": ("{n} row{s} with no {column}", None),
    "unique": ("{n} value{s} of {column} appearing more than once", "unique_field"),
    "accepted_values": ("{n} value{s} of {column} not among the accepted values", "value_field"),
    "relationships": ("{n} value{s} of {column} not found in {to}", "from_field"),
}


@dataclasses.dataclass(frozen=True)
class StepFailure:
    """A step that raised: the innermost error (Dagster wraps the asset's own), where in our code it was raised."""

    step_key: str
    error_class: str
    message: str
    location: str | None = None


@dataclasses.dataclass(frozen=True)
class CheckFailure:
    """A failed blocking asset check, with the description and metadata that decided it."""

    asset_key: str
    check_name: str
    description: str | None
    metadata: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class DbtFailure:
    """A dbt node that errored or a dbt test that failed, with what the manifest says about it."""

    unique_id: str
    resource_type: str
    name: str
    status: str
    message: str
    path: str
    failures: int | None = None
    relation: str | None = None  # the model's (or the test's stored failures') quoted relation, to query
    shown_relation: str | None = None  # schema.name, as a user reads it
    test_name: str | None = None  # not_null, unique, ... (None for a singular test)
    column: str | None = None
    to: str | None = None  # the parent model of a relationships test
    key_columns: tuple[str, ...] = ()
    compiled_sql: str | None = None
    stored_failures: str | None = None
    sources: tuple[str, ...] = ()  # raw tables the node reads, <source>__<table>
    sample: tuple[Mapping[str, Any], ...] = ()


# --- reading the evidence ---------------------------------------------------------------------------------


def innermost_error(error: Any) -> Any:
    """Dagster wraps the exception an asset raised (DagsterExecutionStepExecutionError): the cause is the news."""
    while error is not None and getattr(error, "cause", None) is not None:
        error = error.cause
    return error


def project_location(stack: Sequence[str], root: Path = PROJECT_ROOT) -> str | None:
    """The last frame of a traceback that is this project's code (not the virtualenv's), as ``path, line n``."""
    found = None
    for frame in stack:
        match = _FRAME.search(frame)
        if not match:
            continue
        path = Path(match.group(1))
        if path.is_relative_to(root) and not path.is_relative_to(root / ".venv"):
            found = f"{path.relative_to(root)}, line {match.group(2)}"
    return found


def step_failures(events: Iterable[Any]) -> list[StepFailure]:
    """The STEP_FAILURE events of a run."""
    failures = []
    for event in events:
        if event.event_type_value != "STEP_FAILURE":
            continue
        error = innermost_error(event.event_specific_data.error)
        if error is None:
            failures.append(StepFailure(event.step_key, "Error", "no error was recorded"))
            continue
        failures.append(
            StepFailure(event.step_key, error.cls_name or "Error", error.message, project_location(error.stack or []))
        )
    return failures


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


def check_failures(events: Iterable[Any]) -> list[CheckFailure]:
    """The blocking (error-severity) asset checks that failed in a run; warnings are not why a run failed."""
    failures = []
    for event in events:
        if event.event_type_value != "ASSET_CHECK_EVALUATION":
            continue
        evaluation = event.event_specific_data
        if evaluation.passed or getattr(evaluation.severity, "value", "ERROR") != "ERROR":
            continue
        failures.append(
            CheckFailure(
                evaluation.asset_key.to_user_string(),
                evaluation.check_name,
                evaluation.description,
                {name: _plain(value) for name, value in (evaluation.metadata or {}).items()},
            )
        )
    return failures


def dbt_target_dirs(failures: Iterable[StepFailure]) -> list[Path]:
    """The target folders of the failed dbt invocations, named in dagster-dbt's error message."""
    return [Path(match.group(1)) for failure in failures for match in _DBT_LOG.finditer(failure.message)]


def _dbt_path(original_file_path: str | None, project_dir: str) -> str:
    return f"{project_dir}/{original_file_path}" if original_file_path else project_dir


def _key_columns(manifest: Mapping[str, Any], model_id: str | None, exclude: str | None) -> tuple[str, ...]:
    """A model's key columns: those it tests ``unique``, in the order its YAML lists them."""
    if model_id is None:
        return ()
    keys = [
        node.get("column_name")
        for node in manifest.get("nodes", {}).values()
        if node.get("resource_type") == "test"
        and (node.get("test_metadata") or {}).get("name") == "unique"
        and node.get("attached_node") == model_id
    ]
    return tuple(dict.fromkeys(key for key in keys if key and key != exclude))


def _sources(manifest: Mapping[str, Any], node: Mapping[str, Any]) -> tuple[str, ...]:
    sources = manifest.get("sources", {})
    found = []
    for upstream in (node.get("depends_on") or {}).get("nodes", []):
        if upstream in sources:
            source = sources[upstream]
            found.append(source.get("identifier") or f"{source['source_name']}__{source['name']}")
    return tuple(found)


def dbt_failures(
    run_results: Mapping[str, Any],
    manifest: Mapping[str, Any],
    project_dir: str = "dbt_project",
    test_statuses: tuple[str, ...] = ("fail",),
) -> list[DbtFailure]:
    """The nodes of a dbt invocation that errored and the tests that failed (``test_statuses``: warnings are not
    causes of a failed run, but ``("warn",)`` lists them for a run that published)."""
    nodes = manifest.get("nodes", {})
    found = []
    for result in run_results.get("results", []):
        unique_id, status = result.get("unique_id", ""), result.get("status")
        resource_type = unique_id.split(".", 1)[0]
        is_test_result = resource_type == "test" and status in test_statuses
        if not (is_test_result or (status == "error" and "fail" in test_statuses)):
            continue
        node = nodes.get(unique_id, {})
        name = node.get("name") or unique_id.split(".")[-1]
        common = {
            "unique_id": unique_id,
            "resource_type": resource_type,
            "name": name,
            "status": status,
            "message": _ANSI.sub("", result.get("message") or ""),
            "path": _dbt_path(node.get("original_file_path"), project_dir),
            "failures": result.get("failures"),
            "sources": _sources(manifest, node),
        }
        if resource_type != "test":
            found.append(DbtFailure(**common, relation=node.get("relation_name")))
            continue
        metadata = node.get("test_metadata") or {}
        kwargs = metadata.get("kwargs") or {}
        model_id = node.get("attached_node") or next(
            (upstream for upstream in (node.get("depends_on") or {}).get("nodes", []) if upstream in nodes), None
        )
        model = nodes.get(model_id or "", {})
        column = node.get("column_name") or kwargs.get("column_name")
        to = _REF.search(str(kwargs.get("to", "")))
        found.append(
            DbtFailure(
                **common,
                relation=model.get("relation_name"),
                shown_relation=f"{model['schema']}.{model.get('alias') or model['name']}" if model else None,
                test_name=metadata.get("name"),
                column=column,
                to=f"{to.group(1)}.{kwargs.get('field')}" if to else None,
                key_columns=_key_columns(manifest, model_id, column),
                compiled_sql=result.get("compiled_code") or node.get("compiled_code"),
                stored_failures=result.get("relation_name"),
            )
        )
    return found


def read_dbt_failures(
    target_dir: Path, project_dir: Path, test_statuses: tuple[str, ...] = ("fail",)
) -> list[DbtFailure]:
    """The failures recorded in a dbt target folder (none when dbt stopped before writing its results)."""
    try:
        run_results = json.loads((target_dir / "run_results.json").read_text(encoding="utf-8"))
        manifest = json.loads((target_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    shown = project_dir.relative_to(PROJECT_ROOT).as_posix() if project_dir.is_relative_to(PROJECT_ROOT) else ""
    return dbt_failures(run_results, manifest, shown or str(project_dir), test_statuses)


def failing_rows_sql(failure: DbtFailure, limit: int = SAMPLE_ROWS) -> str | None:
    """SQL for a few rows that fail a test, read from the tested model so that each shows the model's key.

    A test that stores its failures is read from its audit table; a generic test on a column selects the model's
    rows with the failing values; any other test runs its own compiled SQL.
    """
    if failure.resource_type != "test":
        return None
    # Relation names and compiled SQL are text dbt wrote from our own project (its manifest and run results), not
    # names from the exports: the relation is used only when it has the shape of one, the compiled SQL as dbt ran it.
    compiled_sql = failure.compiled_sql
    if failure.stored_failures:
        stored = _relation(failure.stored_failures)
        return f"select * from {stored} limit {int(limit)}" if stored else None
    shown = [*failure.key_columns, *([failure.column] if failure.column else [])]
    columns = ", ".join(identifier(column) for column in shown) or "*"
    field = _TEST_FAILURES.get(failure.test_name or "", (None, None))[1]
    relation = _relation(failure.relation)
    if relation and failure.column:
        column, model = identifier(failure.column), f"select {columns} from {relation}"
        if failure.test_name == "not_null":
            return f"{model} where {column} is null limit {int(limit)}"
        if field and compiled_sql:
            failing = f"select {field} from ({compiled_sql}) as failing"
            return f"{model} where {column} in ({failing}) order by {column} limit {int(limit)}"
    if compiled_sql:
        return f"select * from ({compiled_sql}) as failing limit {int(limit)}"
    return None


def _relation(text: str | None) -> str | None:
    """``text`` when it reads as a relation name the way dbt writes one (``"crm"."marts"."fct_orders"`` or
    ``marts.fct_orders``: one to three dotted parts, each a plain word or a double-quoted name), else None."""
    return text if text and _RELATION.fullmatch(text) else None


# --- the sentences ----------------------------------------------------------------------------------------


def _value(value: Any) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _sample(rows: Sequence[Mapping[str, Any]]) -> str:
    return "; ".join(", ".join(f"{name}={_value(value)}" for name, value in list(row.items())[:5]) for row in rows)


def dbt_error(message: str) -> tuple[str, str | None]:
    """The database's words for a dbt error, without dbt's header line, and the SQL it points at."""
    lines = [line.strip() for line in _ANSI.sub("", message).splitlines() if line.strip()]
    if lines and _DBT_ERROR_HEADER.match(lines[0]):
        lines = lines[1:]
    snippet = next((match.group(1).strip() for line in lines if (match := _SQL_LINE.match(line))), None)
    return (lines[0] if lines else "no message"), snippet


def _missing_column_hint(
    failure: DbtFailure, error: str, raw_columns: Mapping[str, Sequence[str]], contract_paths: Mapping[str, str]
) -> str:
    """When a model reads a column its raw table lacks, the contract that loaded the table is the thing to fix."""
    missing = _MISSING_COLUMN.search(error)
    if not missing:
        return ""
    column = missing.group(1)
    for table in failure.sources:
        columns = raw_columns.get(table)
        if columns is None or column in columns:
            continue
        contract = contract_paths.get(table)
        where = f"; its contract {contract} does not declare it" if contract else ""
        return f"; raw.{table} has no column {column}{where} (it has {', '.join(columns)})"
    return ""


def _describe_dbt(
    failure: DbtFailure, raw_columns: Mapping[str, Sequence[str]], contract_paths: Mapping[str, str]
) -> str:
    if failure.resource_type == "test" and failure.status in ("fail", "warn"):
        where = failure.shown_relation or "its model"
        if failure.column:
            where += f".{failure.column}"
        n = failure.failures if failure.failures is not None else "some"
        template = _TEST_FAILURES.get(failure.test_name or "", ("{n} failing row{s}", None))[0]
        what = template.format(n=n, s="" if n == 1 else "s", column=failure.column, to=failure.to)
        example = f", e.g. {_sample(failure.sample)}" if failure.sample else ""
        verb = "failed" if failure.status == "fail" else "warned"
        return f"dbt test {failure.name} {verb} on {where}: {what}{example} ({failure.path})"
    error, snippet = dbt_error(failure.message)
    at = f", at `{snippet}`" if snippet else ""
    verb = "could not run" if failure.resource_type == "test" else "failed"
    hint = _missing_column_hint(failure, error, raw_columns, contract_paths)
    return f"dbt {failure.resource_type} {failure.name} {verb}: {error} ({failure.path}{at}){hint}"


def _describe_refusals(check: CheckFailure, ledger_messages: Mapping[str, str]) -> list[str]:
    refused = check.metadata.get("refused_files") or {}
    if not isinstance(refused, Mapping) or not refused:
        return [f"{check.asset_key}: {check.description or 'a file was refused'}"]
    causes = []
    for file, message in sorted(refused.items()):
        message = ledger_messages.get(file) or str(message)
        causes.append(f"{check.asset_key}: file {file} refused: {message.removeprefix(f'{file}: ')}")
    return causes


def _describe_error(error_class: str, message: str, location: str | None = None) -> str:
    """``Class: first line (where)``; for a dbt invocation, the errors dbt logged instead of dagster-dbt's preamble."""
    message = _ANSI.sub("", message).strip()
    error_class = error_class.rsplit(".", 1)[-1]
    # Dagster prefixes the message with the error's qualified class name: say it once.
    first = re.sub(rf"^[\w.]*{re.escape(error_class)}:\s*", "", message.splitlines()[0] if message else "")
    parsed = _dbt_parsed_errors(message)
    where = f" ({location})" if location else ""
    return f"{error_class}: {'; '.join(parsed) if parsed else first or 'no message'}{where}"


def _describe_step(failure: StepFailure) -> str:
    return f"step {failure.step_key} failed: {_describe_error(failure.error_class, failure.message, failure.location)}"


def _dbt_parsed_errors(message: str) -> list[str]:
    """The error lines dagster-dbt parsed from dbt's log (when dbt stopped before writing its run results)."""
    if "Errors parsed from dbt logs:" not in message:
        return []
    tail = _ANSI.sub("", message.split("Errors parsed from dbt logs:", 1)[1])
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return [line for line in lines if not re.match(r"^\d+ of \d+ ", line)][:3]


def root_causes(
    steps: Sequence[StepFailure] = (),
    checks: Sequence[CheckFailure] = (),
    dbt: Sequence[DbtFailure] = (),
    ledger_messages: Mapping[str, str] | None = None,
    raw_columns: Mapping[str, Sequence[str]] | None = None,
    contract_paths: Mapping[str, str] | None = None,
) -> list[str]:
    """Why a run failed, upstream first: refused files and failed expectations at the door, then dbt models that
    errored, dbt tests that failed, and any step whose failure none of these explains.

    Parameters
    ----------
    steps, checks
        The run's step failures and failed blocking checks.
    dbt
        The failures in the run results of the failed dbt invocations, with their sample rows.
    ledger_messages
        meta.load_ledger's message for each refused file (it says why even when the file was refused earlier).
    raw_columns, contract_paths
        Each raw table's columns and the contract that loads it, to say which contract a missing column is for.
    """
    ledger_messages, raw_columns, contract_paths = ledger_messages or {}, raw_columns or {}, contract_paths or {}
    dbt_tests = {failure.name for failure in dbt if failure.resource_type == "test"}
    causes: list[str] = []
    for check in checks:
        if check.check_name == "files_accepted":
            causes += _describe_refusals(check, ledger_messages)
    for check in checks:
        if check.check_name == "expectations":
            causes.append(f"{check.asset_key}: expectations failed: {check.description}")
    causes += [_describe_dbt(failure, raw_columns, contract_paths) for failure in dbt if failure.status == "error"]
    causes += [_describe_dbt(failure, raw_columns, contract_paths) for failure in dbt if failure.status == "fail"]
    for check in checks:
        unique_id = str(check.metadata.get("unique_id", ""))
        if check.check_name in ("files_accepted", "expectations") or check.check_name in dbt_tests:
            continue
        if unique_id.startswith("test."):
            rows = check.metadata.get("dagster_dbt/failed_row_count", "some")
            plural = "" if rows == 1 else "s"
            causes.append(f"dbt test {check.check_name} failed on {check.asset_key}: {rows} failing row{plural}")
        else:
            causes.append(f"check {check.check_name} on {check.asset_key} failed: {check.description or 'no reason'}")
    for step in steps:
        explained_by_dbt = dbt and _DBT_LOG.search(step.message)
        explained_by_checks = checks and step.error_class.endswith("AssetCheckFailedError")
        if not (explained_by_dbt or explained_by_checks):
            causes.append(_describe_step(step))
    if len(causes) > MAX_CAUSES:
        causes = [*causes[:MAX_CAUSES], f"... and {len(causes) - MAX_CAUSES} more (see the Dagster run log)"]
    return causes


# --- gathering it after a run -----------------------------------------------------------------------------


def _with_samples(connection: Any, failures: list[DbtFailure]) -> list[DbtFailure]:
    import duckdb

    sampled = []
    for failure in failures:
        sql = failing_rows_sql(failure) if failure.status in ("fail", "warn") else None
        rows: tuple[Mapping[str, Any], ...] = ()
        if sql and connection is not None:
            try:
                cursor = connection.execute(sql)
                names = [column[0] for column in cursor.description]
                rows = tuple(dict(zip(names, row, strict=True)) for row in cursor.fetchall())
            except duckdb.Error:
                rows = ()  # the sample is a courtesy: the sentence names the test and its model without it
        sampled.append(dataclasses.replace(failure, sample=rows))
    return sampled


def _warehouse_facts(connection: Any, refused_files: Iterable[str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    import duckdb

    messages: dict[str, str] = {}
    columns: dict[str, list[str]] = {}
    try:
        for file, message in connection.execute(
            "select file, message from meta.load_ledger where status = 'refused' and list_contains(?, file) "
            "order by loaded_at",
            [sorted(refused_files)],
        ).fetchall():
            if message:
                messages[file] = message
    except duckdb.Error:
        pass
    try:
        for table, column in connection.execute(
            "select table_name, column_name from information_schema.columns where table_schema = 'raw' "
            "order by table_name, ordinal_position"
        ).fetchall():
            if not column.startswith("_"):
                columns.setdefault(table, []).append(column)
    except duckdb.Error:
        pass
    return messages, columns


def explain_failed_run(
    events: Iterable[Any],
    warehouse_path: Path,
    contract_paths: Mapping[str, str] | None = None,
    dbt_target_fallback: Iterable[Path] = (),
) -> list[str]:
    """The root causes of a failed run, from its events, dbt's artifacts and the warehouse (opened read-only).

    ``dbt_target_fallback`` names target folders to read when the error messages do not (older dagster-dbt).
    """

    from pipelines.transform.project import DBT_PROJECT_DIR

    events = list(events)
    steps, checks = step_failures(events), check_failures(events)
    targets = dict.fromkeys([*dbt_target_dirs(steps), *dbt_target_fallback])
    dbt = [failure for target in targets for failure in read_dbt_failures(target, DBT_PROJECT_DIR)]
    refused = {
        file
        for check in checks
        if check.check_name == "files_accepted" and isinstance(check.metadata.get("refused_files"), Mapping)
        for file in check.metadata["refused_files"]
    }
    with _read_only(warehouse_path) as connection:
        messages, columns = _warehouse_facts(connection, refused) if connection is not None else ({}, {})
        dbt = _with_samples(connection, dbt)
    return root_causes(steps, checks, dbt, messages, columns, contract_paths)


@contextmanager
def _read_only(warehouse_path: Path) -> Iterator[Any]:
    """The warehouse opened read-only once the run is over, or None when there is none or another writer holds
    it (then the explanation says what the events say, without samples)."""
    import duckdb

    from pipelines.resources import attach_marts

    connection = None
    if warehouse_path.exists():
        try:
            connection = duckdb.connect(str(warehouse_path), read_only=True)
            attach_marts(connection, warehouse_path, read_only=True)
        except duckdb.Error:
            if connection is not None:
                connection.close()
            connection = None
    try:
        yield connection
    finally:
        if connection is not None:
            connection.close()


def headline(error: Any) -> str:
    """One line for a step failure while the run goes on: the dbt failure dbt logged, else the error's own."""
    error = innermost_error(error)
    if error is None:
        return "unknown error"
    parsed = _dbt_parsed_errors(error.message)
    if parsed:
        return parsed[0]
    return _describe_error(error.cls_name or "Error", error.message, project_location(error.stack or []))


def explain_warnings(warehouse_path: Path, dbt_targets: Iterable[Path]) -> list[str]:
    """The dbt tests that only warned in a run that published, each with its model, column and a few rows (read
    from the warehouse, read-only)."""

    from pipelines.transform.project import DBT_PROJECT_DIR

    warned = [
        failure
        for target in dict.fromkeys(dbt_targets)
        for failure in read_dbt_failures(target, DBT_PROJECT_DIR, ("warn",))
    ]
    if not warned:
        return []
    with _read_only(warehouse_path) as connection:
        columns = _warehouse_facts(connection, ())[1] if connection is not None else {}
        warned = _with_samples(connection, warned)
    described = [_describe_dbt(failure, columns, {}) for failure in warned]
    if len(described) > MAX_CAUSES:
        described = [*described[:MAX_CAUSES], f"... and {len(described) - MAX_CAUSES} more (see the Dagster run log)"]
    return described
