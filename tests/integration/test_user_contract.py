"""An export the project has never seen loads through a user-written contract, with no code change.

The export and the contract are the ones the README shows, read from the README itself, so it stays true.
"""

import re
import textwrap
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


def test_the_users_contract_replaces_the_built_in_one_with_the_same_columns(user_setup: Path):
    contract = find_contract("erp/returns", BUILT_IN_DIR, user_setup / "contracts")
    built_in = find_contract("erp/returns", BUILT_IN_DIR)
    assert contract.path == user_setup / "contracts" / "erp" / "returns.yaml"
    assert [c.name for c in contract.columns] == [c.name for c in built_in.columns]
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
