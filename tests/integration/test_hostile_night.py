"""One real night with hostile files landed beside a small world's exports, and a crafted contract file name.

Beside the small world's exports land: a symbolic link named like an orders export that points at a secrets file
outside the landing zone, a file literally named ``orders*.csv`` (three orders copied from orders.csv, values
unchanged), an order-lines file with one line of quantity 2,147,483,647, and customers whose names are spreadsheet
formula payloads. The link is refused, which holds its source (and so the night's publish) back, naming the
file; once the operator takes it back (`crm unload`), the next night publishes: the secret's text is nowhere in
the published snapshot nor in the warehouse; no table was made from a name; no published text holds an absolute
path; and the published 12-month revenue equals that of the same night without the hostile files (the session's
``pipeline_run``).
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from pipelines.ingest.contracts import BUILT_IN_DIR, ContractError
from pipelines.ingest.unload import unload_file
from pipelines.publish.snapshot import current_snapshot
from tests.conftest import AS_OF, open_warehouse, run_landed, world_environ
from tests.integration.test_hostile_files import _texts

# One extra night (about 3.5 minutes, plus the shared small-world night when run alone): slow by the house rule.
pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECRET = "SECRET-4b1d-DO-NOT-PUBLISH"
FORMULAS = ['=HYPERLINK("http://evil.example/?q=1","click")', "+cmd|' /C calc'!A0", "@SUM(1)"]
HUGE_QUANTITY = 2_147_483_647
CRAFTED_CONTRACT = 'x"; create table pwned(a int); --.yaml'
PLAIN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def _csv_cell(text: str) -> str:
    """A ';'-delimited CSV cell, quoted when it needs to be."""
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ';"\n') else text


def land_hostile_files(landing: Path, outside: Path) -> dict[str, object]:
    """Add the hostile files to a copy of the small world's landing zone; return what the checks need."""
    erp = landing / "erp"
    # 1. a link to a secrets file outside the landing zone, shaped like an orders export so that a loader that
    #    followed it would load it.
    outside.mkdir(parents=True, exist_ok=True)
    secrets = outside / "credentials.csv"
    header = (erp / "orders.csv").read_text(encoding="utf-8").splitlines()[0]
    secrets.write_text(f"{header}\n{SECRET};C0000001;2026-06-01 10:00:00;web;;EUR;invoiced\n", encoding="utf-8")
    (erp / "orders_backup.csv").symlink_to(secrets)
    # 2. `orders*.csv`: three orders of orders.csv, unchanged, under a name that is a glob pattern.
    orders = (erp / "orders.csv").read_text(encoding="utf-8").splitlines()
    (erp / "orders*.csv").write_text("\n".join(orders[:4]) + "\n", encoding="utf-8")
    # 3. one order line of quantity 2,147,483,647 on the most recent order before the as-of date.
    recent = max(
        (line.split(";") for line in orders[1:]),
        key=lambda fields: fields[2] if fields[2] < AS_OF.isoformat() else "",
    )
    lines = (erp / "order_lines.csv").read_text(encoding="utf-8").splitlines()
    sku = next(line.split(";")[2] for line in lines[1:] if line.startswith(recent[0] + ";"))
    amount = f"{HUGE_QUANTITY * 3763 // 100},{HUGE_QUANTITY * 3763 % 100:02d}"  # decimal comma, as the ERP writes
    (erp / "order_lines_extra.csv").write_text(
        f"{lines[0]}\n{recent[0]};999;{sku};{HUGE_QUANTITY};37,63;{amount}\n", encoding="utf-8"
    )
    # 4. formula payloads as customers' first names.
    customers = (erp / "customers.csv").read_text(encoding="utf-8").splitlines()
    changed = []
    for index, formula in enumerate(FORMULAS, start=1):
        fields = customers[index].split(";")
        fields[1] = _csv_cell(formula)
        customers[index] = ";".join(fields)
        changed.append((fields[0], formula))
    (erp / "customers.csv").write_text("\n".join(customers) + "\n", encoding="utf-8")
    return {"huge_order": recent[0], "formula_customers": changed, "customer_rows": len(customers) - 1}


def tables_of(connection: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return connection.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_schema not in ('information_schema', 'pg_catalog') order by 1, 2"
    ).fetchall()


def text_holding(connection: duckdb.DuckDBPyConnection, needles: list[str]) -> list[tuple[str, str, str]]:
    """(table, needle, text) for every text value of every table and view that holds one of ``needles``."""
    found = []
    for schema, table in tables_of(connection):
        columns = connection.execute(
            "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchall()
        texty = [name for name, kind in columns if "VARCHAR" in kind or "JSON" in kind or "STRUCT" in kind
                 or "MAP" in kind or kind.endswith("[]")]  # fmt: skip
        if not texty:
            continue
        quoted = ", ".join('"' + name.replace('"', '""') + '"' for name in texty)
        relation = '"' + schema.replace('"', '""') + '"."' + table.replace('"', '""') + '"'
        for row in connection.execute(f"select distinct {quoted} from {relation}").fetchall():
            for text in _texts(list(row)):
                found += [(f"{schema}.{table}", needle, text[:100]) for needle in needles if needle in text]
    return found


def net_revenue_12m(snapshot: duckdb.DuckDBPyConnection) -> float:
    return float(snapshot.execute("select sum(trailing_12m_net_revenue) from marts.dim_customers").fetchone()[0])


@pytest.fixture(scope="module")
def hostile_night(pipeline_run, tmp_path_factory: pytest.TempPathFactory):
    """The small world's exports plus the hostile files, run for one night as of the same date."""
    world, baseline = pipeline_run
    assert baseline.success, "the night without hostile files must succeed first"
    root = tmp_path_factory.mktemp("hostile_night")
    shutil.copytree(world.landing, root / "landing")
    landed = land_hostile_files(root / "landing", root / "outside")
    (root / "contracts").mkdir()
    held = run_landed(root, root / "contracts", AS_OF)
    with open_warehouse(held.warehouse, read_only=False) as warehouse:
        ledger = warehouse.execute(
            "select file, status, rows_read, rows_loaded, rows_quarantined from meta.load_ledger "
            "where status <> 'replaced'"
        ).fetchall()
        codes = warehouse.execute(
            "select file, row_number, column_name, reason_code from meta.quarantine "
            "where file in ('erp/orders_backup.csv', 'erp/order_lines_extra.csv') order by all"
        ).fetchall()
        unload_file(warehouse, root / "landing", "erp/orders_backup.csv")
    run = run_landed(root, root / "contracts", AS_OF)
    return world, root, landed, run, held, ledger, codes


def test_the_link_holds_its_source_back_naming_the_file(hostile_night):
    held = hostile_night[4]
    assert held.snapshot is None, "nothing is published while a file of the source is refused"
    evaluations = {
        (event.event_specific_data.asset_key.to_user_string(), event.event_specific_data.check_name): event
        for event in held.result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    failed = evaluations[("raw/erp/orders", "files_accepted")].event_specific_data
    assert not failed.passed
    assert "erp/orders_backup.csv is a symbolic link" in failed.description
    assert "credentials" not in failed.description and "/" + "outside" not in failed.description


def test_after_the_link_is_taken_back_the_night_publishes(hostile_night):
    run = hostile_night[3]
    failures = [
        f"{event.step_key}: {event.message}"
        for event in run.result.all_events
        if event.event_type_value == "STEP_FAILURE"
    ]
    assert run.result.success, failures
    assert run.snapshot is not None and run.snapshot.exists()


def test_each_hostile_file_gets_its_ledger_status(hostile_night):
    _, _, landed, run, _, first_ledger, codes = hostile_night
    ledger = {file: (status, read, loaded, quarantined) for file, status, read, loaded, quarantined in first_ledger}
    with open_warehouse(run.warehouse) as warehouse:
        assert ledger["erp/orders_backup.csv"][:2] == ("refused", 0), ledger["erp/orders_backup.csv"]
        assert ledger["erp/orders*.csv"][:2] == ("loaded", 3), "orders*.csv must read its own 3 rows only"
        assert ledger["erp/order_lines_extra.csv"] == ("loaded", 1, 0, 1), ledger["erp/order_lines_extra.csv"]
        assert ledger["erp/customers.csv"] == ("loaded", landed["customer_rows"], landed["customer_rows"], 0)
        assert ("erp/orders_backup.csv", None, None, "link") in codes, codes
        assert ("erp/order_lines_extra.csv", 1, "quantity", "outlier") in codes, codes
        huge = warehouse.execute(
            "select count(*) from raw.erp__order_lines where quantity >= ?", [HUGE_QUANTITY]
        ).fetchone()[0]
        assert huge == 0, "the line of quantity 2,147,483,647 reached the raw table"


def test_formula_payloads_load_as_text_unchanged(hostile_night):
    _, _, landed, run, *_ = hostile_night
    with open_warehouse(run.warehouse) as warehouse:
        for customer_no, formula in landed["formula_customers"]:
            stored = warehouse.execute(
                "select first_name from raw.erp__customers where customer_no = ?", [customer_no]
            ).fetchall()
            assert stored == [(formula,)], (customer_no, stored)


def test_the_secret_is_nowhere_in_the_warehouse_nor_the_snapshot(hostile_night):
    _, _, _, run, *_ = hostile_night
    with open_warehouse(run.warehouse) as warehouse:
        assert text_holding(warehouse, [SECRET, "credentials"]) == []
    with run.published() as snapshot:
        assert text_holding(snapshot, [SECRET, "credentials"]) == []


def tables_named_from_outside(connection: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """Tables whose name is not a plain snake_case word or carries a file's or a crafted contract's name."""
    return [
        (schema, table)
        for schema, table in tables_of(connection)
        if not PLAIN_NAME.match(table) or "backup" in table or "pwned" in table
    ]


def test_no_table_is_named_after_a_file_or_a_header(hostile_night):
    _, _, _, run, *_ = hostile_night
    with open_warehouse(run.warehouse) as warehouse:
        assert ("raw", "erp__orders") in tables_of(warehouse)
        assert tables_named_from_outside(warehouse) == []
    with run.published() as snapshot:
        assert ("marts", "dim_customers") in tables_of(snapshot)
        assert tables_named_from_outside(snapshot) == []


def test_no_published_text_holds_an_absolute_path(hostile_night):
    _, root, _, run, *_ = hostile_night
    with run.published() as snapshot:
        found = text_holding(snapshot, [str(root), str(root.parent)])
    assert found == [], found[:5]
    pointer = current_snapshot(root / "published")
    assert str(root) not in pointer["snapshot"]


def test_the_huge_quantity_does_not_inflate_published_revenue(hostile_night):
    world, _, _, run, *_ = hostile_night
    baseline_pointer = current_snapshot(world.root / "published")
    with duckdb.connect(baseline_pointer["path"], read_only=True) as baseline, run.published() as hostile:
        expected, actual = net_revenue_12m(baseline), net_revenue_12m(hostile)
    assert actual == pytest.approx(expected, abs=0.01), (
        f"12-month net revenue {actual:,.2f} with the hostile files against {expected:,.2f} without them"
    )


# --- a crafted contract file name stops contract loading: a separate, quick night ---------------------------


def test_a_crafted_contract_file_name_is_refused_before_anything_runs(tmp_path: Path, monkeypatch):
    """The code location loads the user's contracts first (as `crm run` and the Dagster daemon do): the crafted
    name stops it there, with an error naming the file, before any table is touched. About 25 s alone, most of it
    importing Dagster and dbt."""
    from pipelines.definitions import build_definitions
    from pipelines.settings import load_settings

    contracts = tmp_path / "contracts" / "erp"
    contracts.mkdir(parents=True)
    shutil.copy(BUILT_IN_DIR / "erp" / "orders.yaml", contracts / CRAFTED_CONTRACT)
    (tmp_path / "landing" / "erp").mkdir(parents=True)
    (tmp_path / "landing" / "erp" / "orders.csv").write_text(
        "order_no;customer_no;ordered_at;sales_channel;store_code;currency_code;order_status\n"
        f"O1;C1;{datetime(2026, 1, 2, 10):%Y-%m-%d %H:%M:%S};web;;EUR;invoiced\n",
        encoding="utf-8",
    )
    for name, value in {**world_environ(tmp_path), "CRM_CONTRACTS_DIR": str(tmp_path / "contracts")}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ContractError) as error:
        build_definitions(load_settings())
    assert CRAFTED_CONTRACT.removesuffix(".yaml") in str(error.value)
    assert "snake_case" in str(error.value)
    warehouse = tmp_path / "warehouse" / "crm.duckdb"
    if warehouse.exists():
        with open_warehouse(warehouse) as connection:
            assert [table for _, table in tables_of(connection) if "pwned" in table] == []
    assert current_snapshot(tmp_path / "published") is None
