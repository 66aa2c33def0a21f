"""An export the project has never seen loads through a user-written contract, with no code change.

The export and the contract are the ones the README shows, read from the README itself, so it stays true.
"""

import re
import textwrap
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from pipelines.cli import main
from pipelines.ingest.contracts import BUILT_IN_DIR, find_contract, load_contracts
from pipelines.ingest.loader import load_table
from pipelines.settings import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def readme_block(marker: str) -> str:
    found = re.search(rf"<!-- {marker}:start -->\s*```\w*\n(.*?)```\s*<!-- {marker}:end -->", README, re.S)
    assert found, f"README has no {marker} block"
    return textwrap.dedent(found.group(1))


@pytest.fixture
def user_setup(tmp_path: Path) -> Path:
    (tmp_path / "contracts" / "erp").mkdir(parents=True)
    (tmp_path / "contracts" / "erp" / "returns.yaml").write_text(readme_block("user-contract"), encoding="utf-8")
    (tmp_path / "landing" / "erp").mkdir(parents=True)
    export = readme_block("user-export").replace("\n", "\r\n")
    (tmp_path / "landing" / "erp" / "devoluciones_2026-02.csv").write_bytes(export.encode("cp1252"))
    return tmp_path


def test_the_users_contract_replaces_the_built_in_one_and_feeds_the_same_table(user_setup: Path):
    contract = find_contract("erp/returns", BUILT_IN_DIR, user_setup / "contracts")
    built_in = find_contract("erp/returns", BUILT_IN_DIR)
    assert contract.path == user_setup / "contracts" / "erp" / "returns.yaml"
    assert contract.tables == built_in.tables == ("erp__returns",)
    assert contract.feeds[0].columns == built_in.feeds[0].columns
    assert len(load_contracts(BUILT_IN_DIR, user_setup / "contracts")) == len(load_contracts(BUILT_IN_DIR))


def test_the_never_seen_export_loads_typed_through_the_users_contract(user_setup: Path):
    contract = find_contract("erp/returns", BUILT_IN_DIR, user_setup / "contracts")
    connection = duckdb.connect()
    [load] = load_table(connection, contract, user_setup / "landing", "user")
    assert (load.status, load.rows_read, load.rows_loaded, load.rows_quarantined) == ("loaded", 2, 2, 0)
    rows = connection.execute(
        "select return_no, line_no, returned_on::varchar, quantity, refund_amount::varchar, reason "
        "from raw.erp__returns order by return_no"
    ).fetchall()
    assert rows == [
        ("DV-0001", 1, "2026-02-03", 1, "1249.90", "wrong size"),
        ("DV-0002", 2, "2026-02-15", 2, "39.98", "defective"),
    ]


def test_crm_validate_reports_the_file_would_load(user_setup: Path, monkeypatch):
    monkeypatch.setenv("CRM_CONTRACTS_DIR", str(user_setup / "contracts"))
    file = user_setup / "landing" / "erp" / "devoluciones_2026-02.csv"
    result = CliRunner().invoke(main, ["validate", str(file), "--contract", "erp/returns"])
    assert result.exit_code == 0, result.output
    assert "2 rows read: 2 would load, 0 would be quarantined" in result.output
    assert "0 failed" in result.output


@pytest.fixture
def single_file_setup(tmp_path: Path) -> Path:
    (tmp_path / "contracts" / "ventas").mkdir(parents=True)
    contract = tmp_path / "contracts" / "ventas" / "lineas_factura.yaml"
    contract.write_text(readme_block("sales-contract"), encoding="utf-8")
    (tmp_path / "landing" / "ventas").mkdir(parents=True)
    export = readme_block("sales-export").replace("\n", "\r\n")
    (tmp_path / "landing" / "ventas" / "lineas_factura_2013-2014.csv").write_bytes(export.encode("cp1252"))
    return tmp_path


def test_the_readme_single_file_export_feeds_every_sales_table(single_file_setup: Path):
    contract = find_contract("ventas/lineas_factura", single_file_setup / "contracts")
    connection = duckdb.connect()
    [load] = load_table(connection, contract, single_file_setup / "landing", "user")
    assert (load.rows_read, load.rows_loaded, load.rows_quarantined, load.rows_filtered) == (10, 9, 0, 1)
    assert dict(load.tables) == {
        "erp__orders": 7,
        "erp__order_lines": 8,
        "erp__returns": 1,
        "erp__customers": 3,
        "erp__products": 3,
    }
    countries = connection.execute("select customer_no, country_code from raw.erp__customers order by 1").fetchall()
    assert countries == [("C-17", "CH"), ("C-23", "FR"), ("C-31", "DE")]


@pytest.mark.integration
def test_the_readme_single_file_export_alone_publishes_a_warehouse(single_file_setup: Path):
    from pipelines.publish.snapshot import current_snapshot
    from tests.conftest import run_nightly, world_environ

    root = single_file_setup
    environ = {**world_environ(root), "CRM_CONTRACTS_DIR": str(root / "contracts"), "CRM_CURRENCY": "CHF"}
    result = run_nightly(environ, as_of=date(2014, 6, 30))
    failures = [event.step_key for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    assert result.success, f"failed steps: {failures}"
    pointer = current_snapshot(root / "published")
    assert pointer is not None
    with duckdb.connect(pointer["path"], read_only=True) as snapshot:
        customers = snapshot.execute("select count(*) from marts.dim_customers").fetchone()[0]
        lines, net = snapshot.execute("select count(*), sum(net_revenue) from marts.fct_order_lines").fetchone()
        categories = snapshot.execute("select distinct category_name from marts.dim_products").fetchall()
        scored = {model for (model,) in snapshot.execute("select distinct model from ml.model_runs").fetchall()}
    assert customers == 3 and lines == 8
    # 9.00 + 7.95 + 27.00 + 19.90 + 31.80 + 13.50 + 9.00 + 19.90 less the credit note's 9.00
    assert net == Decimal("129.05")
    assert categories == [("Unclassified",)]
    assert {"rfm", "clv", "churn"} <= scored


def test_crm_validate_shows_what_each_table_would_receive(single_file_setup: Path, monkeypatch):
    monkeypatch.setenv("CRM_CONTRACTS_DIR", str(single_file_setup / "contracts"))
    file = single_file_setup / "landing" / "ventas" / "lineas_factura_2013-2014.csv"
    result = CliRunner().invoke(main, ["validate", str(file), "--contract", "ventas/lineas_factura"])
    assert result.exit_code == 0, result.output
    assert "10 rows read: 9 would load, 0 would be quarantined, 1 filtered out" in result.output
    assert "1 x filtered: counter sale without a customer" in result.output
    assert re.search(r"erp/order_lines\s+would receive\s+8 rows", result.output)
    assert re.search(r"erp/returns\s+would receive\s+1 rows", result.output)
