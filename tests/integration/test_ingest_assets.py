"""Ingest assets materialised by real Dagster: failed expectations are reported by severity, never a crash."""

from pathlib import Path

import dagster as dg
import duckdb

from pipelines.ingest.assets import build_ingest_asset, feeding_contracts
from pipelines.ingest.contracts import load_contracts
from pipelines.resources import Warehouse

CONTRACT = """\
files: shop/orders*.csv
format: csv
primary_key: [order_no]
columns:
  - {name: order_no, type: varchar, required: true}
  - {name: channel, type: varchar, allowed: [web, store]}
  - {name: quantity, type: integer, max: 10, severity: error}
expectations:
  - {expectation: expect_column_values_to_be_between, column: quantity, max_value: 5, severity: error}
"""


def materialise(tmp_path: Path, rows: str) -> dg.ExecuteInProcessResult:
    (tmp_path / "contracts" / "shop").mkdir(parents=True, exist_ok=True)
    (tmp_path / "contracts" / "shop" / "orders.yaml").write_text(CONTRACT, encoding="utf-8")
    (tmp_path / "landing" / "shop").mkdir(parents=True, exist_ok=True)
    (tmp_path / "landing" / "shop" / "orders.csv").write_text("order_no,channel,quantity\n" + rows, encoding="utf-8")
    contracts = load_contracts(tmp_path / "contracts")
    fed_by = feeding_contracts(contracts)
    warehouse = Warehouse(
        path=str(tmp_path / "crm.duckdb"), landing_dir=str(tmp_path / "landing"), published_dir=str(tmp_path / "pub")
    )
    return dg.materialize(
        [build_ingest_asset(contract, fed_by[contract.name]) for contract in contracts],
        resources={"warehouse": warehouse},
        raise_on_error=False,
    )


def checks(result: dg.ExecuteInProcessResult) -> dict[str, tuple[bool, str]]:
    return {
        event.event_specific_data.check_name: (event.event_specific_data.passed, event.event_specific_data.severity)
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def test_a_warn_expectation_that_fails_is_a_warning_and_the_load_stands(tmp_path: Path):
    result = materialise(tmp_path, "A,web,1\nB,fax,2\n")  # 'fax' breaks a warn-severity allowed list
    assert result.success
    assert checks(result)["expectations"] == (False, dg.AssetCheckSeverity.WARN)
    with duckdb.connect(str(tmp_path / "crm.duckdb"), read_only=True) as connection:
        assert connection.execute("select count(*) from raw.shop__orders").fetchone()[0] == 2


def test_an_error_expectation_that_fails_blocks_with_an_error_check(tmp_path: Path):
    result = materialise(tmp_path, "A,web,1\nB,web,7\n")
    assert checks(result)["expectations"] == (False, dg.AssetCheckSeverity.ERROR)


def test_a_row_beyond_an_error_bound_is_quarantined_and_the_source_does_not_block(tmp_path: Path):
    result = materialise(tmp_path, "A,web,1\nB,web,99\n")
    assert result.success
    assert checks(result)["expectations"][0] and checks(result)["files_accepted"][0]
    assert checks(result)["plausible"] == (False, dg.AssetCheckSeverity.WARN)
    with duckdb.connect(str(tmp_path / "crm.duckdb"), read_only=True) as connection:
        assert connection.execute("select order_no from raw.shop__orders").fetchall() == [("A",)]
        [(column, reason)] = connection.execute("select column_name, reason from meta.quarantine").fetchall()
    assert column == "quantity" and reason.startswith("quantity 99 is above the contract's maximum 10")
