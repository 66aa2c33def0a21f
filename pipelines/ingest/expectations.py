"""Great Expectations suites made from the contracts, run on the rows of every file a run loads.

All the rows a run loaded into a table (every new or changed file of it) are validated as one batch: the suite
sees every incoming row, and GX's fixed cost (about 0.1 s a validation) is paid once per table, not per file.

The suite of a contract: every column of its declared type; required columns not null; ``allowed`` values;
the primary key unique within the file; and the contract's own ``expectations`` (any Great Expectations
expectation by name, with a ``row_condition`` where it only applies to some rows, such as "quantity at least 0
unless the row is a return"). Each carries a severity: ``error`` fails the ingest asset's blocking check, ``warn``
is reported only. A column's ``min``/``max`` is not here: it is checked row by row as the file loads
(pipelines/ingest/plausibility.py), so one implausible row is quarantined instead of blocking the whole source.

GX runs in DuckDB through its SQL datasource (duckdb-engine) on cursors of the ingest's own connection, so the
single-writer rule holds and nothing is copied into pandas. Checks GX would run as row-by-row ``IN (...)`` lists
or window functions (allowed values, uniqueness, types) are written as GX's custom-SQL expectation
(``UnexpectedRowsExpectation``): the same check, about ten times faster on millions of rows.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from typing import Any

import dagster as dg
import duckdb

from pipelines.ingest.contracts import Contract, Feed
from pipelines.ingest.ledger import META_SCHEMA
from pipelines.ingest.loader import FileLoad, raw_table, sql_identifier, sql_literal

_asset_names = itertools.count()
_SQL_BACKED = {
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_be_unique",
    "expect_compound_columns_to_be_unique",
    "expect_column_values_to_be_of_type",
}
# What DuckDB's typeof() says for each contract type.
_DUCKDB_TYPES = {
    "varchar": "VARCHAR", "integer": "INTEGER", "bigint": "BIGINT", "double": "DOUBLE",
    "date": "DATE", "timestamp": "TIMESTAMP", "boolean": "BOOLEAN",
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Spec:
    """One expectation of a suite, before it becomes a GX object."""

    expectation: str
    arguments: dict[str, Any]
    severity: str
    row_condition: dict[str, Any] | None = None
    table: str = ""  # the raw table it checks

    @property
    def column(self) -> str | None:
        columns = self.arguments.get("column_list") or [self.arguments.get("column")]
        return ", ".join(str(column) for column in columns if column) or None


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How one expectation fared on the files a run loaded into a table."""

    files: tuple[str, ...]
    spec: Spec
    success: bool
    unexpected_count: int | None
    sample: list[Any]
    error: str | None

    def describe(self) -> str:
        what = f"{self.spec.table + ': ' if self.spec.table else ''}{self.spec.expectation}({self.spec.column or ''})"
        where = ", ".join(self.files[:3]) + (f" and {len(self.files) - 3} more files" if len(self.files) > 3 else "")
        if self.error:
            return f"{where}: {what} could not run: {self.error}"
        sample = f", e.g. {self.sample[:5]}" if self.sample else ""
        return f"{where}: {what} failed on {self.unexpected_count} row(s){sample} [{self.spec.severity}]"


@dataclasses.dataclass
class Validation:
    """The outcomes of a contract's suite over the files of one run."""

    source_table: str
    outcomes: list[Outcome]

    @property
    def failures(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if not outcome.success]

    @property
    def blocking_failures(self) -> list[Outcome]:
        return [outcome for outcome in self.failures if outcome.spec.severity == "error"]

    def store(self, connection: duckdb.DuckDBPyConnection, run_id: str) -> None:
        """Keep the outcomes in meta.validation_results, one row per file and expectation."""
        connection.execute(
            f"""create table if not exists {META_SCHEMA}.validation_results (
                source_table varchar, files varchar[], expectation varchar, column_name varchar, arguments json,
                severity varchar, success boolean, unexpected_count bigint, sample json, error varchar,
                run_id varchar, validated_at timestamp)"""
        )
        for outcome in self.outcomes:
            connection.execute(
                f"insert into {META_SCHEMA}.validation_results values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
                [
                    self.source_table,
                    list(outcome.files),
                    outcome.spec.expectation,
                    outcome.spec.column,
                    json.dumps({**outcome.spec.arguments, "row_condition": outcome.spec.row_condition}, default=str),
                    outcome.spec.severity,
                    outcome.success,
                    outcome.unexpected_count,
                    json.dumps(outcome.sample, default=str),
                    outcome.error,
                    run_id,
                ],
            )

    def check_result(self, key: dg.AssetKey) -> dg.AssetCheckResult:
        blocking, failures = self.blocking_failures, self.failures
        return dg.AssetCheckResult(
            asset_key=key,
            check_name="expectations",
            passed=not failures,
            severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
            description="; ".join(outcome.describe() for outcome in failures[:10])
            or f"{len(self.outcomes)} expectation results, all met.",
            metadata={
                "expectations_run": len(self.outcomes),
                "failed": len(failures),
                "failed_blocking": len(blocking),
            },
        )


def suite_specs(contract: Contract) -> list[Spec]:
    """The expectations a contract implies for each table it feeds, in a stable order."""
    return [spec for feed in contract.feeds for spec in _feed_specs(contract, feed)]


def _feed_specs(contract: Contract, feed: Feed) -> list[Spec]:
    """A table's columns of their types, its required columns not null, its key unique; the contract's rules
    (``allowed``, ``expectations``) on the table's columns of the same name."""
    specs: list[Spec] = []
    own = {column.name: column for column in contract.columns}
    rules = {name: own[source] for name, source in feed.sources.items() if source in own}
    table_columns = {column.name for column in feed.columns}
    for column in feed.columns:
        rule = rules.get(column.name)
        if not column.type.startswith("decimal"):
            specs.append(
                Spec(
                    "expect_column_values_to_be_of_type",
                    {"column": column.name, "type_": _DUCKDB_TYPES[column.type]},
                    "error",
                )
            )
        if column.required or (rule is not None and rule.required):
            specs.append(Spec("expect_column_values_to_not_be_null", {"column": column.name}, "error"))
        if rule is not None and rule.allowed is not None:
            specs.append(
                Spec(
                    "expect_column_values_to_be_in_set",
                    {"column": column.name, "value_set": list(rule.allowed)},
                    rule.allowed_severity,
                )
            )
    if len(feed.primary_key) == 1:
        # distinct / count = 1 is uniqueness, in one aggregation (GX's row-level unique check scans twice).
        unique = {"column": feed.primary_key[0], "min_value": 1.0}
        specs.append(Spec("expect_column_proportion_of_unique_values_to_be_between", unique, "error"))
    elif feed.primary_key:
        specs.append(Spec("expect_compound_columns_to_be_unique", {"column_list": list(feed.primary_key)}, "error"))
    for expectation in contract.expectations:
        arguments = dict(expectation.arguments)
        condition = arguments.pop("row_condition", None)
        named = [arguments.get("column"), *(arguments.get("column_list") or []), (condition or {}).get("column")]
        if all(name in table_columns for name in named if name):
            specs.append(Spec(expectation.expectation, arguments, expectation.severity, condition))
    table = feed.table if feed.table != contract.name else ""
    return [dataclasses.replace(spec, table=table) for spec in specs]


def _literal(value: object) -> str:
    # Braces doubled: GX formats unexpected_rows_query with {batch}.
    text = sql_literal(value)  # a string quoted, a number or boolean as itself (not Python's repr of an object)
    return text.replace("{", "{{").replace("}", "}}")


def _gx_condition(condition: dict[str, Any]) -> dict[str, Any]:
    """The contract's {column, operator, parameter} as GX 1.x's comparison condition."""
    return {
        "type": "comparison",
        "column": {"name": condition["column"]},
        "operator": condition["operator"],
        "parameter": condition.get("parameter"),
    }


def to_gx(spec: Spec, index: int):
    import great_expectations.expectations as gxe

    meta = {"spec": index}
    arguments = spec.arguments
    if spec.expectation in _SQL_BACKED and spec.row_condition is None:
        if spec.expectation == "expect_column_values_to_be_in_set":
            column = sql_identifier(arguments["column"])
            values = ", ".join(_literal(value) for value in arguments["value_set"])
            query = f"select {column} from {{batch}} where {column} not in (select unnest([{values}]))"
        elif spec.expectation == "expect_column_values_to_be_of_type":
            column = sql_identifier(arguments["column"])
            wanted = _literal(arguments["type_"])
            query = f"select typeof({column}) from {{batch}} where typeof({column}) <> {wanted} limit 1"
        else:
            key = ", ".join(sql_identifier(column) for column in arguments.get("column_list") or [arguments["column"]])
            query = (
                f"select {key}, count(*) as copies from {{batch}} "
                f"where ({key}) is not null group by all having count(*) > 1"
            )
        return gxe.UnexpectedRowsExpectation(unexpected_rows_query=query, description=spec.expectation, meta=meta)
    class_name = "".join(part.capitalize() for part in spec.expectation.split("_"))
    expectation_class = getattr(gxe, class_name, None)
    if expectation_class is None:
        raise ValueError(f"unknown Great Expectations expectation {spec.expectation!r}")
    condition = {"row_condition": _gx_condition(spec.row_condition)} if spec.row_condition else {}
    return expectation_class(**arguments, **condition, meta=meta)  # fmt: skip


_patched = False


def _buffer_duckdb_results() -> None:
    """Work around GX issues #10738/#11579: GX fetches rows after returning the connection to the pool, whose
    rollback discards a DuckDB result; buffer the rows while the connection is still checked out."""
    global _patched
    if _patched:
        return
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine

    def buffered(original):
        def execute(self, query):
            if self.dialect_name != "duckdb":
                return original(self, query)
            with self.get_connection() as connection:
                result = self._execute_query_with_recovery(connection, query)
                return result.freeze()() if result.returns_rows else result

        return execute

    for name in ("execute_query", "execute_query_in_transaction"):
        setattr(engine.SqlAlchemyExecutionEngine, name, buffered(getattr(engine.SqlAlchemyExecutionEngine, name)))
    _patched = True


def validate_loads(
    connection: duckdb.DuckDBPyConnection, contract: Contract, loads: list[FileLoad], run_id: str
) -> Validation:
    """Run the contract's suite on the committed rows this run loaded from new or changed files."""
    validation = Validation(contract.name, [])
    files = tuple(load.file for load in loads if load.status == "loaded" and load.rows_loaded > 0)
    if not files:
        return validation
    import great_expectations as gx
    from duckdb_engine import ConnectionWrapper
    from great_expectations.data_context.types.base import ProgressBarsConfig

    _buffer_duckdb_results()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    datasource = context.data_sources.add_sql(
        "warehouse",
        connection_string="duckdb:///:memory:",  # selects the dialect; queries run on the caller's database
        kwargs={"creator": lambda: ConnectionWrapper(connection.cursor())},
    )
    specs = suite_specs(contract)
    for feed in contract.feeds:
        table = feed.table if feed.table != contract.name else ""
        suite = gx.ExpectationSuite(
            name=f"{contract.name}.{feed.table}",
            expectations=[to_gx(spec, index) for index, spec in enumerate(specs) if spec.table == table],
        )
        name = f"run_{next(_asset_names)}"
        asset = datasource.add_query_asset(
            name,
            query=f"select * from {raw_table(feed.table)} "
            f"where _run_id = {_literal(run_id)} and _contract = {_literal(contract.name)}",
        )
        try:
            result = (
                asset.add_batch_definition_whole_table("loaded by this run")
                .get_batch()
                .validate(suite, result_format="SUMMARY")
            )
        finally:
            datasource.delete_asset(name)
        for item in result.results:
            details, exception = item.result or {}, item.exception_info or {}
            validation.outcomes.append(
                Outcome(
                    files=files,
                    spec=specs[item.expectation_config.meta["spec"]],
                    success=bool(item.success),
                    unexpected_count=details.get("unexpected_count", details.get("observed_value")),
                    sample=list(details.get("partial_unexpected_list") or [])[:20],
                    error=exception.get("exception_message") if exception.get("raised_exception") else None,
                )
            )
    validation.outcomes.sort(key=lambda outcome: specs.index(outcome.spec))
    return validation
