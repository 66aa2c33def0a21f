"""Implausible values (the largest integer, the largest decimal, a date in 1900) are caught row by row at the door:
quarantined with the reason, or loaded and counted as a warning, and every row still accounted for."""

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.ingest.contracts import ContractError, load_contract
from pipelines.ingest.loader import load_table
from pipelines.ingest.plausibility import Plausibility, run_findings
from pipelines.settings import load_settings

LINES = """
files: shop/lines*.csv
format: csv
primary_key: [order_no, line_no]
columns:
  - {name: order_no, type: varchar, required: true}
  - {name: line_no, type: integer, required: true}
  - {name: quantity, type: integer, required: true}
  - {name: amount, type: "decimal(18,2)", required: true}
  - {name: ordered_on, type: date, format: "%Y-%m-%d", required: true}
"""

# units feeds erp/order_lines only through an expression: its bound is checked on the file's column.
PACKS = """
files: shop/packs*.csv
format: csv
columns:
  - {name: order_no, type: varchar, required: true}
  - {name: line, type: integer, required: true}
  - {name: sku, type: varchar, required: true}
  - {name: units, type: integer, required: true, min: 1, max: 10000}
  - {name: pack_size, type: integer, required: true}
  - {name: shipped_on, type: date, format: "%Y-%m-%d", min: 2000-01-01}
feeds:
  erp/order_lines:
    columns: {order_no: order_no, line_no: line, sku: sku, quantity: units * pack_size}
"""


def ordinary_lines(count: int, start: int = 0) -> list[str]:
    """Lines as a shop sells them: 1 to 5 units, EUR 10 to 59, ordered in 2021-2025."""
    return [
        f"O{i},1,{1 + i % 5},{10 + i % 50}.{i % 100:02d},{2021 + i % 5}-{1 + i % 12:02d}-{1 + i % 28:02d}"
        for i in range(start, start + count)
    ]


def setup(tmp_path: Path, contract: str, name: str, lines: list[str], header: str) -> tuple[Path, Path]:
    contract_path = tmp_path / "contracts" / "shop" / f"{name}.yaml"
    contract_path.parent.mkdir(parents=True, exist_ok=True)
    contract_path.write_text(contract, encoding="utf-8")
    landing = tmp_path / "landing"
    (landing / "shop").mkdir(parents=True, exist_ok=True)
    (landing / "shop" / f"{name}.csv").write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return contract_path, landing


def load_lines(tmp_path: Path, lines: list[str], plausibility: Plausibility | None = None, connection=None):
    contract_path, landing = setup(tmp_path, LINES, "lines", lines, "order_no,line_no,quantity,amount,ordered_on")
    connection = connection or duckdb.connect()
    [load] = load_table(connection, load_contract(contract_path), landing, "run-1", plausibility)
    assert load.rows_read == load.rows_loaded + load.rows_quarantined + load.rows_filtered
    return connection, load


def quarantined(connection) -> list[tuple]:
    return connection.execute(
        "select row_number, column_name, reason_code, reason from meta.quarantine order by row_number, column_name"
    ).fetchall()


def test_the_largest_integer_among_ordinary_lines_is_quarantined_as_an_outlier(tmp_path: Path):
    lines = ordinary_lines(200)
    lines.insert(120, "X1,1,2147483647,25.00,2024-05-01")
    connection, load = load_lines(tmp_path, lines)
    assert (load.rows_read, load.rows_loaded, load.rows_quarantined) == (201, 200, 1)
    [(row, column, code, reason)] = quarantined(connection)
    assert (row, column, code) == (121, "quantity", "outlier")
    assert reason.startswith("quantity 2147483647 is an outlier: more than 1,000 times") and "(row 121)" in reason
    assert connection.execute("select max(quantity) from raw.shop__lines").fetchone()[0] == 5
    found = connection.execute("select row_number, reason_code, action from meta.implausible_rows").fetchall()
    assert found == [(121, "outlier", "quarantined")]


def test_with_severity_warn_the_outlier_loads_and_is_counted(tmp_path: Path):
    lines = ordinary_lines(200)
    lines.insert(120, "X1,1,2147483647,25.00,2024-05-01")
    connection, load = load_lines(tmp_path, lines, Plausibility(severity="warn"))
    assert (load.rows_loaded, load.rows_quarantined) == (201, 0)
    assert connection.execute("select max(quantity) from raw.shop__lines").fetchone()[0] == 2147483647
    [finding] = run_findings(connection, "shop__lines", "run-1")
    assert (finding.file, finding.column, finding.reason_code, finding.action, finding.rows) == (
        "shop/lines.csv", "quantity", "outlier", "warned", 1,
    )  # fmt: skip
    assert finding.first_rows == (121,)


def test_the_largest_decimal_in_an_amount_is_an_outlier(tmp_path: Path):
    lines = [*ordinary_lines(200), "X1,1,2,99999999999999.99,2024-05-01"]
    connection, load = load_lines(tmp_path, lines)
    assert load.rows_quarantined == 1
    [(row, column, code, reason)] = quarantined(connection)
    assert (row, column, code) == (201, "amount", "outlier") and reason.startswith(
        "amount 99999999999999.99 is an outlier"
    )


def test_a_date_in_1900_among_2020s_dates_is_an_outlier(tmp_path: Path):
    lines = [*ordinary_lines(200), "X1,1,2,25.00,1900-01-01"]
    connection, load = load_lines(tmp_path, lines)
    [(row, column, code, reason)] = quarantined(connection)
    assert (row, column, code) == (201, "ordered_on", "outlier")
    assert reason.startswith("ordered_on 1900-01-01 is an outlier: more than 100 years from the column's median date")
    assert load.rows_loaded == 200


def test_an_infinite_date_is_as_far_from_the_median_as_a_date_can_be(tmp_path: Path):
    lines = [*ordinary_lines(200), "X1,1,2,25.00,infinity"]
    connection, load = load_lines(tmp_path, lines)
    [(row, column, code, _)] = quarantined(connection)
    assert (row, column, code) == (201, "ordered_on", "outlier")
    assert load.rows_loaded == 200


def test_the_setting_decides_how_far_is_too_far(tmp_path: Path):
    lines = [*ordinary_lines(200), "X1,1,2,25.00,2005-01-01"]  # 18 years before the median date
    _, tolerant = load_lines(tmp_path / "a", lines)
    _, strict = load_lines(tmp_path / "b", lines, Plausibility(date_span_years=10))
    assert (tolerant.rows_quarantined, strict.rows_quarantined) == (0, 1)


def test_fewer_than_100_values_draw_no_automatic_bound(tmp_path: Path):
    lines = [*ordinary_lines(98), "X1,1,2147483647,99999999999999.99,1900-01-01"]  # 99 values
    connection, load = load_lines(tmp_path, lines)
    assert (load.rows_loaded, load.rows_quarantined) == (99, 0)
    assert run_findings(connection, "shop__lines", "run-1") == []


def test_what_the_table_already_holds_counts_towards_the_bound(tmp_path: Path):
    connection, first = load_lines(tmp_path, ordinary_lines(150))
    assert first.rows_quarantined == 0
    # a later file of 10 lines: too few alone, but the table's 150 earlier values draw the bound
    (tmp_path / "landing" / "shop" / "lines_2.csv").write_text(
        "\n".join(
            ["order_no,line_no,quantity,amount,ordered_on", *ordinary_lines(9, 500), "X9,1,2147483647,5,2024-01-01"]
        )
        + "\n",
        encoding="utf-8",
    )
    contract = load_contract(tmp_path / "contracts" / "shop" / "lines.yaml")
    loads = load_table(connection, contract, tmp_path / "landing", "run-2")
    assert [(load.file, load.status, load.rows_quarantined) for load in loads] == [
        ("shop/lines.csv", "unchanged", 0),
        ("shop/lines_2.csv", "loaded", 1),
    ]


def test_a_contract_bound_on_a_column_that_feeds_through_an_expression_quarantines_the_row(tmp_path: Path):
    lines = ["A,1,S1,3,2,2024-01-01", "A,2,S2,20000,1,2024-01-01", "B,1,S1,0,6,2024-01-02", "C,1,S3,4,1,1999-12-31"]
    contract_path, landing = setup(tmp_path, PACKS, "packs", lines, "order_no,line,sku,units,pack_size,shipped_on")
    connection = duckdb.connect()
    [load] = load_table(connection, load_contract(contract_path), landing, "run-1")
    assert (load.rows_read, load.rows_loaded, load.rows_quarantined) == (4, 1, 3)
    assert quarantined(connection) == [
        (2, "units", "bound", "units 20000 is above the contract's maximum 10000 (row 2)"),
        (3, "units", "bound", "units 0 is below the contract's minimum 1 (row 3)"),
        (4, "shipped_on", "bound", "shipped_on 1999-12-31 is below the contract's minimum 2000-01-01 (row 4)"),
    ]
    assert connection.execute("select order_no, quantity from raw.erp__order_lines").fetchall() == [("A", 6)]
    codes = connection.execute("select distinct reason_code from meta.implausible_rows").fetchall()
    assert codes == [("bound",)]


def test_a_bound_of_severity_warn_loads_the_row_and_counts_it(tmp_path: Path):
    lines = ["A,1,S1,3,2,2024-01-01", "A,2,S2,20000,1,2024-01-01"]
    contract = PACKS.replace("min: 1, max: 10000}", "min: 1, max: 10000, severity: warn}")
    contract_path, landing = setup(tmp_path, contract, "packs", lines, "order_no,line,sku,units,pack_size,shipped_on")
    connection = duckdb.connect()
    [load] = load_table(connection, load_contract(contract_path), landing, "run-1")
    assert (load.rows_loaded, load.rows_quarantined) == (2, 0)
    [finding] = run_findings(connection, "shop__packs", "run-1")
    assert (finding.column, finding.reason_code, finding.action, finding.first_rows) == (
        "units",
        "bound",
        "warned",
        (2,),
    )
    assert "units 20000 is above the contract's maximum 10000" in finding.describe()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("{name: sku, type: varchar, required: true}", "min applies to numbers and dates, not to a varchar column"),
        ("min: 2000-01-01", "min 'January 2000' must be an ISO date"),
        ("min: 1, max: 10000", "min 20000 is above max 10000"),
        ("max: 10000", "max inf must be a finite number"),
        ("pack_size, type: integer, required: true", "allowed is checked on the table column it feeds as it is"),
    ],
)
def test_a_bound_that_cannot_work_is_refused_when_the_contract_is_read(tmp_path: Path, change: str, message: str):
    broken = {
        "{name: sku, type: varchar, required: true}": PACKS.replace(
            "{name: sku, type: varchar, required: true}", "{name: sku, type: varchar, required: true, min: 1}"
        ),
        "min: 2000-01-01": PACKS.replace("min: 2000-01-01", "min: January 2000"),
        "min: 1, max: 10000": PACKS.replace("min: 1, max: 10000", "min: 20000, max: 10000"),
        "max: 10000": PACKS.replace("max: 10000", "max: .inf"),
        # allowed stays as it was: only on a column that feeds a table as it is
        "pack_size, type: integer, required: true": PACKS.replace(
            "pack_size, type: integer, required: true", "pack_size, type: integer, required: true, allowed: [1, 6]"
        ),
    }[change]
    path = tmp_path / "shop" / "packs.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(ContractError, match=message):
        load_contract(path)


def test_plausibility_comes_from_the_settings_and_refuses_an_unknown_severity():
    settings = load_settings()
    plausibility = Plausibility.from_settings(settings)
    assert (plausibility.factor, plausibility.date_span_years, plausibility.severity) == (
        settings.outlier_factor, settings.outlier_date_span_years, settings.outlier_severity,
    )  # fmt: skip
    with pytest.raises(ValueError, match="outlier_severity 'loud'"):
        Plausibility(severity="loud")


@pytest.mark.integration
def test_the_ingest_asset_reports_warned_rows_in_a_non_blocking_plausible_check(tmp_path: Path):
    from pipelines.ingest.assets import build_ingest_asset
    from pipelines.resources import Warehouse

    lines = ordinary_lines(200)
    lines.insert(7, "X1,1,2147483647,25.00,2024-05-01")
    contract_path, landing = setup(tmp_path, LINES, "lines", lines, "order_no,line_no,quantity,amount,ordered_on")
    warehouse = Warehouse(path=str(tmp_path / "crm.duckdb"), landing_dir=str(landing), published_dir=str(tmp_path))
    result = dg.materialize(
        [build_ingest_asset(load_contract(contract_path), [], Plausibility(severity="warn"))],
        resources={"warehouse": warehouse},
        raise_on_error=False,
    )
    assert result.success
    [check] = [
        event.event_specific_data
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION" and event.event_specific_data.check_name == "plausible"
    ]
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert "shop/lines.csv: column quantity: 1 row(s) loaded with a warning (rows 8)" in check.description
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert (metadata["rows_implausible_warned"].value, metadata["rows_implausible_quarantined"].value) == (1, 0)


def test_the_history_of_a_column_is_the_canonical_table_column_it_feeds(tmp_path: Path):
    contract = PACKS.replace("quantity: units * pack_size", "quantity: units")
    header = "order_no,line,sku,units,pack_size,shipped_on"
    first = [f"A{i},1,S1,{1 + i % 5},1,2024-01-01" for i in range(150)]
    contract_path, landing = setup(tmp_path, contract, "packs", first, header)
    connection = duckdb.connect()
    load_table(connection, load_contract(contract_path), landing, "run-1")
    # ten lines alone draw no bound; the 150 quantities already in erp/order_lines do
    later = [f"B{i},1,S1,2,1,2024-02-01" for i in range(9)] + ["B9,1,S1,9000,1,2024-02-01"]
    (landing / "shop" / "packs_2.csv").write_text("\n".join([header, *later]) + "\n", encoding="utf-8")
    [_, load] = load_table(connection, load_contract(contract_path), landing, "run-2")
    assert (load.file, load.rows_loaded, load.rows_quarantined) == ("shop/packs_2.csv", 9, 1)
    [(row, column, code, reason)] = quarantined(connection)
    assert (row, column, code) == (10, "units", "outlier") and "over 160 values" in reason
