"""When a run fails, `crm run` ends with the root cause in words: the file and column, the dbt model and its SQL, or
the dbt test with its model, column and failing rows; never only an exception class.

The first tests feed the pure helper (pipelines.diagnosis) evidence shaped like what Dagster and dbt leave behind;
the last ones break real runs of the nightly job over a small generated world and read the command's last lines.
"""

from __future__ import annotations

import csv
import dataclasses
import re
import shutil
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
from click.testing import CliRunner

from pipelines.diagnosis import (
    CheckFailure,
    DbtFailure,
    StepFailure,
    check_failures,
    dbt_failures,
    dbt_target_dirs,
    failing_rows_sql,
    headline,
    project_location,
    root_causes,
)
from pipelines.settings import PROJECT_ROOT
from tests.conftest import world_environ

AS_OF = date(2026, 6, 30)
MODEL = "model.crm.stg_erp__order_lines"
ORDERS = "model.crm.fct_orders"
BINDER_ERROR = (
    "Runtime Error in model stg_erp__order_lines (models/staging/erp/stg_erp__order_lines.sql)\n"
    '  Binder Error: Referenced column "line_no" not found in FROM clause!\n'
    '  Candidate bindings: "line_amount", "order_no", "_file", "_run_id"\n  \n'
    "  LINE 11:         concat(order_no, '-', line_no) as order_line_id,\n"
    "                                         ^^^^^^^"
)
DBT_STEP_MESSAGE = (
    "dagster_dbt.errors.DagsterDbtCliRuntimeError: The dbt CLI process with command\n\n`dbt build`\n\n"
    "failed with exit code `1`. Check the stdout in the Dagster compute logs for the full information about the "
    "error, or view the dbt debug log: /work/dbt_project/target/dbt_models-8967af8-20f9dd0/dbt.log.\n\n"
    "Errors parsed from dbt logs:\n\n"
    "6 of 181 ERROR creating sql view model staging.stg_erp__order_lines ....... [\x1b[31mERROR\x1b[0m in 0.06s]\n\n"
    "\x1b[31mFailure in model stg_erp__order_lines (models/staging/erp/stg_erp__order_lines.sql)\x1b[0m\n"
)


def _test_node(name: str, test: str, model: str, column: str, **kwargs) -> dict:
    return {
        "resource_type": "test",
        "name": name,
        "original_file_path": "models/marts/_marts__models.yml",
        "test_metadata": {"name": test, "kwargs": {"column_name": column, **kwargs}},
        "column_name": column,
        "attached_node": model,
        "depends_on": {"nodes": [model]},
    }


MANIFEST = {
    "nodes": {
        MODEL: {
            "resource_type": "model",
            "name": "stg_erp__order_lines",
            "original_file_path": "models/staging/erp/stg_erp__order_lines.sql",
            "relation_name": '"crm"."staging"."stg_erp__order_lines"',
            "schema": "staging",
            "depends_on": {"nodes": ["source.crm.erp.order_lines"]},
        },
        ORDERS: {
            "resource_type": "model",
            "name": "fct_orders",
            "original_file_path": "models/marts/fct_orders.sql",
            "relation_name": "marts.fct_orders",
            "schema": "marts",
            "alias": "fct_orders",
            "depends_on": {"nodes": []},
        },
        "test.crm.not_null_fct_orders_customer_id.1": _test_node(
            "not_null_fct_orders_customer_id", "not_null", ORDERS, "customer_id"
        ),
        "test.crm.unique_fct_orders_order_id.2": _test_node("unique_fct_orders_order_id", "unique", ORDERS, "order_id"),
        "test.crm.relationships_fct_orders_channel.3": _test_node(
            "relationships_fct_orders_channel", "relationships", ORDERS, "channel", to="ref('dim_channels')", field="id"
        ),
    },
    "sources": {
        "source.crm.erp.order_lines": {"source_name": "erp", "name": "order_lines", "identifier": "erp__order_lines"}
    },
}
RUN_RESULTS = {
    "results": [
        {"unique_id": MODEL, "status": "error", "message": BINDER_ERROR, "failures": None, "compiled_code": "..."},
        {
            "unique_id": "test.crm.not_null_fct_orders_customer_id.1",
            "status": "fail",
            "message": "Got 3 results, configured to fail if != 0",
            "failures": 3,
            "compiled_code": "select customer_id from marts.fct_orders where customer_id is null",
        },
        {"unique_id": "test.crm.unique_fct_orders_order_id.2", "status": "pass", "failures": 0},
        {"unique_id": "model.crm.fct_orders_downstream", "status": "skipped"},
        {"unique_id": "test.crm.relationships_fct_orders_channel.3", "status": "warn", "failures": 1},
    ]
}


def test_a_model_error_names_the_model_its_file_the_sql_and_the_contract_that_lacks_the_column():
    failures = dbt_failures(RUN_RESULTS, MANIFEST)
    assert [(failure.name, failure.status) for failure in failures] == [
        ("stg_erp__order_lines", "error"),
        ("not_null_fct_orders_customer_id", "fail"),
    ]  # passes, skips and warnings are not why a run failed
    [cause, _] = root_causes(
        dbt=failures,
        raw_columns={"erp__order_lines": ["order_no", "sku", "quantity", "line_amount"]},
        contract_paths={"erp__order_lines": "/home/me/contracts/erp/order_lines.yaml"},
    )
    assert cause == (
        'dbt model stg_erp__order_lines failed: Binder Error: Referenced column "line_no" not found in FROM clause! '
        "(dbt_project/models/staging/erp/stg_erp__order_lines.sql, at `concat(order_no, '-', line_no) as "
        "order_line_id,`); raw.erp__order_lines has no column line_no; its contract "
        "/home/me/contracts/erp/order_lines.yaml does not declare it (it has order_no, sku, quantity, line_amount)"
    )


def test_a_failed_test_names_model_column_count_and_the_failing_rows_by_the_models_key():
    [_, failure] = dbt_failures(RUN_RESULTS, MANIFEST)
    assert (failure.shown_relation, failure.column, failure.key_columns) == (
        "marts.fct_orders",
        "customer_id",
        ("order_id",),
    )
    connection = duckdb.connect()
    connection.execute("create schema marts")
    connection.execute(
        "create table marts.fct_orders as select * from (values ('SO1', 'C1'), ('SO2', null), ('SO3', null), "
        "('SO4', 'C4'), ('SO5', null), ('SO6', null)) as t(order_id, customer_id)"
    )
    rows = connection.execute(failing_rows_sql(failure, limit=2)).fetchall()
    assert rows == [("SO2", None), ("SO3", None)]
    sampled = dataclasses.replace(failure, sample=({"order_id": "SO2"}, {"order_id": "SO3"}))
    assert root_causes(dbt=[sampled]) == [
        "dbt test not_null_fct_orders_customer_id failed on marts.fct_orders.customer_id: 3 rows with no "
        "customer_id, e.g. order_id=SO2; order_id=SO3 (dbt_project/models/marts/_marts__models.yml)"
    ]


def _failed_test(name: str, **fields) -> DbtFailure:
    return DbtFailure(f"test.crm.{name}", "test", name, "fail", "", "models/x.yml", **fields)


def test_failing_rows_of_unique_relationships_and_singular_tests_come_from_their_own_sql():
    connection = duckdb.connect()
    connection.execute(
        "create table returns as select * from (values ('R1', 'L1'), ('R2', 'L2'), ('R3', 'L1'), ('R4', 'L3')) "
        "as t(return_id, order_line_id)"
    )
    unique = _failed_test(
        "unique_returns_order_line_id",
        failures=1,
        relation="returns",
        test_name="unique",
        column="order_line_id",
        key_columns=("return_id",),
        compiled_sql="select order_line_id as unique_field, count(*) as n_records from returns "
        "group by order_line_id having count(*) > 1",
    )
    assert connection.execute(failing_rows_sql(unique)).fetchall() == [("R1", "L1"), ("R3", "L1")]
    singular = _failed_test("assert_known", compiled_sql="select return_id from returns where order_line_id = 'L3'")
    assert connection.execute(failing_rows_sql(singular)).fetchall() == [("R4",)]
    stored = _failed_test("z", stored_failures='"audit"."z"')
    assert failing_rows_sql(stored) == 'select * from "audit"."z" limit 3'
    relationships = _failed_test(
        "r", failures=2, test_name="relationships", column="channel", to="dim_channels.id", shown_relation="marts.x"
    )
    assert root_causes(dbt=[relationships]) == [
        "dbt test r failed on marts.x.channel: 2 values of channel not found in dim_channels.id (models/x.yml)"
    ]


def test_a_refused_file_is_named_with_the_ledgers_reason_even_when_it_was_refused_earlier():
    check = CheckFailure(
        "raw/erp/orders",
        "files_accepted",
        "refused earlier. Fix the file",
        {"refused_files": {"erp/orders_late.csv": "already refused by run 1234"}},
    )
    ledger = {
        "erp/orders_late.csv": "erp/orders_late.csv: required column 'customer_no' (header 'customer_no') missing"
    }
    assert root_causes(checks=[check], ledger_messages=ledger) == [
        "raw/erp/orders: file erp/orders_late.csv refused: required column 'customer_no' (header 'customer_no') missing"
    ]


def test_blocking_checks_come_first_and_a_dbt_step_explained_by_its_results_is_not_repeated():
    steps = [StepFailure("dbt_models", "DagsterDbtCliRuntimeError", DBT_STEP_MESSAGE)]
    checks = [
        CheckFailure("raw/erp/orders", "expectations", "erp/orders.csv: expect_x(order_no) failed on 2 row(s)", {})
    ]
    causes = root_causes(steps, checks, dbt_failures(RUN_RESULTS, MANIFEST))
    assert causes[0] == "raw/erp/orders: expectations failed: erp/orders.csv: expect_x(order_no) failed on 2 row(s)"
    assert [cause.split(" ", 3)[:3] for cause in causes[1:]] == [
        ["dbt", "model", "stg_erp__order_lines"],
        ["dbt", "test", "not_null_fct_orders_customer_id"],
    ]
    assert dbt_target_dirs(steps) == [Path("/work/dbt_project/target/dbt_models-8967af8-20f9dd0")]


def test_a_step_stopped_by_its_failed_blocking_check_is_explained_by_the_check():
    check = CheckFailure("raw/erp/orders", "files_accepted", "", {"refused_files": {"erp/o.csv": "erp/o.csv: bad"}})
    step = StepFailure("raw__erp__orders", "DagsterAssetCheckFailedError", "1 blocking asset check failed")
    assert root_causes([step], [check]) == ["raw/erp/orders: file erp/o.csv refused: bad"]


def test_without_run_results_the_dbt_step_says_what_dbt_logged_not_the_exception_class_alone():
    [cause] = root_causes([StepFailure("dbt_models", "DagsterDbtCliRuntimeError", DBT_STEP_MESSAGE)])
    assert cause == (
        "step dbt_models failed: DagsterDbtCliRuntimeError: Failure in model stg_erp__order_lines "
        "(models/staging/erp/stg_erp__order_lines.sql)"
    )


def test_a_python_step_failure_names_the_message_and_the_projects_line_that_raised():
    stack = [
        '  File "/usr/lib/python3.11/site-packages/dagster/_core/execution.py", line 10, in run\n',
        f'  File "{PROJECT_ROOT}/pipelines/ml/assets.py", line 152, in clv_scores\n',
        f'  File "{PROJECT_ROOT}/models_ml/clv.py", line 377, in fit_spend\n',
        f'  File "{PROJECT_ROOT}/.venv/lib/python3.11/site-packages/lifetimes/fitters.py", line 9, in fit\n',
    ]
    location = project_location(stack)
    assert location == "models_ml/clv.py, line 377"
    [cause] = root_causes([StepFailure("ml__clv_scores", "ClvFitError", "ClvFitError: no repeat purchase\n", location)])
    assert cause == "step ml__clv_scores failed: ClvFitError: no repeat purchase (models_ml/clv.py, line 377)"


def _error(cls_name: str, message: str, cause=None):
    return SimpleNamespace(cls_name=cls_name, message=message, stack=[], cause=cause)


def _check_event(name: str, passed: bool, severity: str, description: str = "", **metadata):
    evaluation = SimpleNamespace(
        asset_key=SimpleNamespace(to_user_string=lambda: "raw/erp/orders"),
        check_name=name,
        passed=passed,
        severity=SimpleNamespace(value=severity),
        description=description,
        metadata={key: SimpleNamespace(value=value) for key, value in metadata.items()},
    )
    return SimpleNamespace(event_type_value="ASSET_CHECK_EVALUATION", event_specific_data=evaluation)


def test_only_failed_blocking_checks_are_causes_and_the_headline_unwraps_dagsters_error():
    events = [
        _check_event("files_accepted", True, "ERROR"),
        _check_event("expectations", False, "WARN", "a warning"),
        _check_event("files_accepted", False, "ERROR", "x", refused_files={"erp/o.csv": "erp/o.csv: bad"}),
    ]
    assert [(check.check_name, check.metadata) for check in check_failures(events)] == [
        ("files_accepted", {"refused_files": {"erp/o.csv": "erp/o.csv: bad"}})
    ]
    wrapped = _error("DagsterExecutionStepExecutionError", "Error in op", _error("KeyError", "KeyError: 'as_of'"))
    assert headline(wrapped) == "KeyError: 'as_of'"
    assert headline(_error("DagsterDbtCliRuntimeError", DBT_STEP_MESSAGE)).startswith("Failure in model stg_erp__")


# --- real runs ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A landing zone of its own, so the session's shared small world is never disturbed."""
    from pipelines.demo_data import generate

    root = tmp_path_factory.mktemp("errors_world")
    generate(customers=300, seed=11, as_of=AS_OF, out=root / "landing", truth=root / "truth")
    return root / "landing"


def crm_run(landing: Path, root: Path) -> tuple[int, list[str]]:
    """`crm run` over a copy of ``landing``, with the user's contracts in ``root/contracts``."""
    shutil.copytree(landing, root / "landing", dirs_exist_ok=True)
    env = {
        **world_environ(root),
        "CRM_CONTRACTS_DIR": str(root / "contracts"),
        "DAGSTER_HOME": str(root / "dagster"),  # `crm run` sets it; listing it here restores it afterwards
    }
    from pipelines.cli import main

    result = CliRunner().invoke(main, ["run", "--as-of", AS_OF.isoformat()], env=env)
    lines = [line for line in result.output.splitlines() if line.strip()]
    return result.exit_code, lines


def _tail_after_why(lines: list[str]) -> str:
    """The closing lines: what `crm run` says after the progress and the row counts."""
    return "\n".join(lines[-4:])


@pytest.mark.integration
def test_a_contract_that_drops_a_column_a_model_needs_ends_the_run_naming_the_contract_and_column(tiny_world, tmp_path):
    contract = tmp_path / "contracts" / "erp" / "order_lines.yaml"
    contract.parent.mkdir(parents=True)
    contract.write_text(
        "description: ERP order lines, exported without their line numbers.\n"
        "files: erp/order_lines*.csv\n"
        "format: csv\n"
        'csv: {delimiter: ";", decimal_separator: ",", encoding: utf-8}\n'
        "primary_key: [order_no, sku]\n"
        "columns:\n"
        "  - {name: order_no, type: varchar, required: true}\n"
        "  - {name: sku, type: varchar, required: true}\n"
        "  - {name: quantity, type: integer, required: true, min: 1}\n"
        '  - {name: unit_price, type: "decimal(18,4)", required: true, min: 0}\n'
        '  - {name: line_amount, type: "decimal(18,2)", required: true}\n',
        encoding="utf-8",
    )
    exit_code, lines = crm_run(tiny_world, tmp_path)
    tail = _tail_after_why(lines)
    assert exit_code == 1, "\n".join(lines[-30:])
    # Caught when the contracts load (nothing runs) or when the dbt model that reads the column fails: either way
    # the last lines name the contract's table and the missing column, not dagster-dbt's exception.
    assert "order_lines" in tail and "line_no" in tail, tail
    assert "DagsterDbtCliRuntimeError: The dbt CLI process" not in tail


@pytest.mark.integration
def test_data_that_fails_a_warning_dbt_test_publishes_and_names_the_test_model_column_and_rows(tiny_world, tmp_path):
    # A support case in a status the warehouse does not know: the contract only warns, the dbt test warns too (a
    # staging test: nothing there is published), so the night publishes and says what it saw (docs/failures.md).
    with (tiny_world / "crm" / "cases.csv").open(encoding="utf-8-sig", newline="") as handle:
        header, first = list(csv.reader(handle))[:2]
    late = dict(zip(header, first, strict=True)) | {"Case Number": "99999", "ID": "case-late-1", "Status": "Pending"}
    (tmp_path / "landing" / "crm").mkdir(parents=True)
    with (tmp_path / "landing" / "crm" / "cases_late.csv").open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, quoting=csv.QUOTE_ALL).writerows([header, [late[name] for name in header]])
    exit_code, lines = crm_run(tiny_world, tmp_path)
    assert exit_code == 0, "\n".join(lines[-30:])
    assert any(line.startswith("Published snapshot") for line in lines), lines[-30:]
    start = lines.index("Warnings (the run published; docs/failures.md says what only warns):")
    warned = [line for line in lines[start + 1 :] if "accepted_values_stg_crm__cases_case_status" in line]
    assert len(warned) == 1, lines[start:]
    [cause] = warned
    assert re.match(r"  - dbt test accepted_values_stg_crm__cases_case_status\w* warned on ", cause), cause
    assert "staging.stg_crm__cases.case_status: 1 value of case_status not among the accepted values" in cause
    assert "case_id=case-late-1" in cause and "case_status=pending" in cause, cause


@pytest.mark.integration
def test_a_refused_file_ends_the_run_naming_the_file_and_the_missing_column(tiny_world, tmp_path):
    (tmp_path / "landing" / "erp").mkdir(parents=True)
    (tmp_path / "landing" / "erp" / "orders_late.csv").write_text(
        "order_no;ordered_at;sales_channel;store_code;currency_code;order_status\n"
        "SO99999999;2026-06-29 10:00:00;web;;EUR;invoiced\n",
        encoding="utf-8",
    )
    exit_code, lines = crm_run(tiny_world, tmp_path)
    assert exit_code == 1, "\n".join(lines[-30:])
    assert lines[-2] == "Why the run failed:", _tail_after_why(lines)
    assert lines[-1].startswith("  - raw/erp/orders: file erp/orders_late.csv refused: "), lines[-1]
    assert "customer_no" in lines[-1]
