"""The Great Expectations suites made from contracts find what they should, on a real DuckDB."""

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.ingest.contracts import load_contract
from pipelines.ingest.expectations import suite_specs, validate_loads
from pipelines.ingest.loader import FileLoad, create_raw_table

CONTRACT = """
files: shop/*.csv
format: csv
primary_key: [order_no]
columns:
  - {name: order_no, type: varchar, required: true}
  - {name: channel, type: varchar, allowed: [web, store]}
  - {name: quantity, type: integer, min: 0, max: 100, severity: error}
  - {name: amount, type: "decimal(18,2)"}
expectations:
  - expectation: expect_column_values_to_be_between
    column: amount
    min_value: 0
    row_condition: {column: quantity, operator: ">", parameter: 0}
    severity: warn
"""


@pytest.fixture
def table(tmp_path: Path):
    path = tmp_path / "shop" / "orders.yaml"
    path.parent.mkdir()
    path.write_text(CONTRACT, encoding="utf-8")
    contract = load_contract(path)
    connection = duckdb.connect()
    create_raw_table(connection, contract)
    return contract, connection


def insert(connection, rows, run_id="run-1", file="shop/a.csv"):
    for order_no, channel, quantity, amount in rows:
        connection.execute(
            "insert into raw.shop__orders values (?, ?, ?, ?, ?, 1, ?, null, 'shop__orders')",
            [order_no, channel, quantity, amount, file, run_id],
        )


def outcomes(contract, connection, run_id="run-1"):
    loads = [FileLoad("shop/a.csv", "x", "loaded", 1, 1)]
    return validate_loads(connection, contract, loads, run_id)


def test_clean_rows_meet_every_expectation(table):
    contract, connection = table
    insert(connection, [("A", "web", 1, 5), ("B", "store", 0, -3)])  # a zero-quantity line may refund
    validation = outcomes(contract, connection)
    assert len(validation.outcomes) == len(suite_specs(contract)) and not validation.failures
    assert validation.check_result(dg.AssetKey("x")).passed


def test_each_violation_is_found_with_its_severity(table):
    contract, connection = table
    insert(connection, [("A", "web", 1, 5), ("A", "fax", 101, -1)])
    failed = {(o.spec.expectation, o.spec.column): o for o in outcomes(contract, connection).failures}
    assert set(failed) == {
        ("expect_column_proportion_of_unique_values_to_be_between", "order_no"),
        ("expect_column_values_to_be_in_set", "channel"),
        ("expect_column_values_to_be_between", "amount"),
    }
    assert failed[("expect_column_values_to_be_in_set", "channel")].unexpected_count == 1
    assert failed[("expect_column_values_to_be_between", "amount")].spec.severity == "warn"
    check = outcomes(contract, connection).check_result(dg.AssetKey("x"))
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR


def test_a_columns_min_max_is_checked_row_by_row_at_the_door_not_by_the_suite(table):
    # quantity's 0..100 (severity error) quarantines a row as the file loads (pipelines/ingest/plausibility.py);
    # in the suite it would block the whole source for one row.
    contract, _ = table
    specs = {(spec.expectation, spec.column): spec for spec in suite_specs(contract)}
    assert ("expect_column_values_to_be_between", "quantity") not in specs
    assert specs[("expect_column_values_to_be_between", "amount")].row_condition is not None  # the contract's own
    # allowed stays an expectation, reported only unless the column says error
    assert specs[("expect_column_values_to_be_in_set", "channel")].severity == "warn"


def test_only_rows_of_this_run_are_validated(table):
    contract, connection = table
    insert(connection, [("A", "fax", 1, 5)], run_id="earlier")
    insert(connection, [("B", "web", 1, 5)], run_id="run-1")
    assert not outcomes(contract, connection).failures


def test_warnings_alone_do_not_block(table):
    contract, connection = table
    insert(connection, [("A", "fax", 1, 5)])
    check = outcomes(contract, connection).check_result(dg.AssetKey("x"))
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
