"""``crm unload FILE``: a loaded file's rows and quarantine entries go, and the same content does not come back."""

from pathlib import Path

import duckdb
import pytest

from pipelines.ingest import landing, loader
from pipelines.ingest.contracts import load_contract
from pipelines.ingest.loader import load_table
from pipelines.ingest.unload import UnloadError, landing_relative, unload_file

ORDERS = """
files: shop/orders*.csv
format: csv
primary_key: [order_no]
columns:
  - {name: order_no, type: varchar, required: true}
  - {name: amount, type: integer, required: true}
"""

# One export feeding two canonical tables: unloading it empties both.
SALES = """
files: tienda/ventas*.csv
format: csv
columns:
  - {name: order_no, type: varchar, required: true}
  - {name: customer, type: varchar, required: true}
  - {name: ordered_at, type: timestamp, required: true}
feeds:
  erp/orders:
    columns: {order_no: order_no, customer_no: customer, ordered_at: ordered_at}
  erp/customers:
    one_row_per: [customer_no]
    columns: {customer_no: customer}
"""


@pytest.fixture
def shop(tmp_path: Path):
    (tmp_path / "contracts" / "shop").mkdir(parents=True)
    (tmp_path / "contracts" / "shop" / "orders.yaml").write_text(ORDERS, encoding="utf-8")
    (tmp_path / "landing" / "shop").mkdir(parents=True)
    contract = load_contract(tmp_path / "contracts" / "shop" / "orders.yaml")
    return contract, tmp_path / "landing", duckdb.connect(str(tmp_path / "w.duckdb"))


def deliver(landing_dir: Path, name: str, rows: list[str]) -> None:
    (landing_dir / "shop" / name).write_text("order_no,amount\n" + "".join(f"{row}\n" for row in rows))


def rows_by_file(connection) -> dict[str, int]:
    return dict(connection.execute("select _file, count(*) from raw.shop__orders group by 1").fetchall())


def current(connection) -> list[tuple]:
    return connection.execute(
        "select file, status, rows_read, rows_loaded from meta.load_ledger where status <> 'replaced' order by 1"
    ).fetchall()


def test_unload_removes_the_files_rows_and_quarantine_and_the_same_content_stays_out(shop):
    contract, landing_dir, connection = shop
    deliver(landing_dir, "orders_1.csv", ["A1,1", "A2,x", "A3,3"])
    deliver(landing_dir, "orders_2.csv", ["B1,1", "B2,y"])
    load_table(connection, contract, landing_dir, "run-1")
    sha = connection.execute("select sha256 from meta.load_ledger where file = 'shop/orders_1.csv'").fetchone()[0]

    result = unload_file(connection, landing_dir, "shop/orders_1.csv")

    assert result.rows_removed == {"shop__orders": 2}
    assert result.quarantine_removed == 1
    assert result.contracts == (("shop__orders", "loaded"),)
    assert rows_by_file(connection) == {"shop/orders_2.csv": 1}
    assert connection.execute("select file from meta.quarantine").fetchall() == [("shop/orders_2.csv",)]
    assert current(connection) == [("shop/orders_1.csv", "unloaded", 0, 0), ("shop/orders_2.csv", "loaded", 2, 1)]
    unloaded = connection.execute(
        "select sha256, rows_replaced from meta.load_ledger where file = 'shop/orders_1.csv' and status = 'unloaded'"
    ).fetchone()
    assert unloaded == (sha, 2), "the ledger row keeps the file's SHA-256"

    again = {load.file: load for load in load_table(connection, contract, landing_dir, "run-2")}
    assert again["shop/orders_1.csv"].status == "unchanged"
    assert "unloaded" in again["shop/orders_1.csv"].message
    assert rows_by_file(connection) == {"shop/orders_2.csv": 1}, "the same content is not loaded again"
    assert current(connection)[0][1] == "unloaded"

    deliver(landing_dir, "orders_1.csv", ["A1,1", "A2,2", "A3,3", "A4,4"])
    changed = {load.file: load for load in load_table(connection, contract, landing_dir, "run-3")}
    assert (changed["shop/orders_1.csv"].status, changed["shop/orders_1.csv"].rows_loaded) == ("loaded", 4)
    assert rows_by_file(connection) == {"shop/orders_1.csv": 4, "shop/orders_2.csv": 1}
    assert current(connection)[0] == ("shop/orders_1.csv", "loaded", 4, 4)


def test_an_unloaded_file_stays_out_when_the_contract_changes(shop, tmp_path: Path):
    contract, landing_dir, connection = shop
    deliver(landing_dir, "orders_1.csv", ["A1,1"])
    deliver(landing_dir, "orders_2.csv", ["B1,1"])
    load_table(connection, contract, landing_dir, "run-1")
    unload_file(connection, landing_dir, "shop/orders_1.csv")
    path = tmp_path / "contracts" / "shop" / "orders.yaml"
    path.write_text(ORDERS.replace("files:", "description: changed\nfiles:"), encoding="utf-8")
    changed = load_contract(path)
    loads = {load.file: load.status for load in load_table(connection, changed, landing_dir, "run-2")}
    assert loads == {"shop/orders_1.csv": "unchanged", "shop/orders_2.csv": "loaded"}
    assert rows_by_file(connection) == {"shop/orders_2.csv": 1}


def test_an_unloaded_file_stays_out_when_its_table_is_rebuilt(shop, tmp_path: Path):
    contract, landing_dir, connection = shop
    deliver(landing_dir, "orders_1.csv", ["A1,1"])
    deliver(landing_dir, "orders_2.csv", ["B1,1"])
    load_table(connection, contract, landing_dir, "run-1")
    unload_file(connection, landing_dir, "shop/orders_1.csv")
    path = tmp_path / "contracts" / "shop" / "orders.yaml"
    path.write_text(ORDERS + "  - {name: note, type: varchar}\n", encoding="utf-8")  # new column: table rebuilt
    loads = {load.file: load.status for load in load_table(connection, load_contract(path), landing_dir, "run-2")}
    assert loads == {"shop/orders_1.csv": "unchanged", "shop/orders_2.csv": "loaded"}
    assert rows_by_file(connection) == {"shop/orders_2.csv": 1}


def test_unloading_a_file_that_fed_several_tables_empties_each(tmp_path: Path):
    (tmp_path / "contracts" / "tienda").mkdir(parents=True)
    (tmp_path / "contracts" / "tienda" / "ventas.yaml").write_text(SALES, encoding="utf-8")
    contract = load_contract(tmp_path / "contracts" / "tienda" / "ventas.yaml")
    landing_dir = tmp_path / "landing"
    (landing_dir / "tienda").mkdir(parents=True)
    (landing_dir / "tienda" / "ventas_1.csv").write_text(
        "order_no,customer,ordered_at\n"
        "F1,C1,2024-01-01 10:00:00\nF2,C1,2024-01-02 10:00:00\nF3,C2,2024-01-03 10:00:00\n"
    )
    (landing_dir / "tienda" / "ventas_2.csv").write_text("order_no,customer,ordered_at\nF4,C3,2024-02-01 10:00:00\n")
    connection = duckdb.connect()
    load_table(connection, contract, landing_dir, "run-1")

    result = unload_file(connection, landing_dir, landing_dir / "tienda" / "ventas_1.csv")  # an absolute path too

    assert result.rows_removed == {"erp__orders": 3, "erp__customers": 2}
    assert result.total_rows_removed == 5
    assert connection.execute("select order_no from raw.erp__orders").fetchall() == [("F4",)]
    assert connection.execute("select customer_no from raw.erp__customers").fetchall() == [("C3",)]
    assert "3 from raw.erp__orders" in result.describe()


def test_unloading_a_refused_file_lets_its_source_pass_and_it_is_not_refused_again(shop):
    contract, landing_dir, connection = shop
    (landing_dir / "shop" / "orders_1.csv").write_text("order_no,price\nA1,1\n")  # no amount column: refused
    [refused] = load_table(connection, contract, landing_dir, "run-1")
    assert refused.status == "refused"
    result = unload_file(connection, landing_dir, "shop/orders_1.csv")
    assert (result.rows_removed, result.quarantine_removed) == ({}, 1)
    [again] = load_table(connection, contract, landing_dir, "run-2")
    assert again.status == "unchanged"
    assert current(connection) == [("shop/orders_1.csv", "unloaded", 0, 0)]
    assert connection.execute("select count(*) from meta.quarantine").fetchone()[0] == 0


def test_unloading_twice_changes_nothing_the_second_time(shop):
    contract, landing_dir, connection = shop
    deliver(landing_dir, "orders_1.csv", ["A1,1"])
    load_table(connection, contract, landing_dir, "run-1")
    unload_file(connection, landing_dir, "shop/orders_1.csv")
    ledger_rows = connection.execute("select count(*) from meta.load_ledger").fetchone()[0]
    second = unload_file(connection, landing_dir, "shop/orders_1.csv")
    assert second.already_unloaded and second.rows_removed == {}
    assert "already unloaded" in second.describe()
    assert connection.execute("select count(*) from meta.load_ledger").fetchone()[0] == ledger_rows


def test_an_unknown_file_is_an_error_naming_the_files_that_look_alike(shop):
    contract, landing_dir, connection = shop
    deliver(landing_dir, "orders_2024.csv", ["A1,1"])
    deliver(landing_dir, "orders_2025.csv", ["B1,1"])
    load_table(connection, contract, landing_dir, "run-1")
    with pytest.raises(UnloadError) as error:
        unload_file(connection, landing_dir, "shop/order_2024.csv")
    message = str(error.value)
    assert message.startswith("shop/order_2024.csv is not in the load ledger")
    assert "shop/orders_2024.csv" in message
    assert rows_by_file(connection) == {"shop/orders_2024.csv": 1, "shop/orders_2025.csv": 1}


def test_an_empty_warehouse_says_nothing_was_loaded(tmp_path: Path):
    with pytest.raises(UnloadError, match="no load ledger yet"):
        unload_file(duckdb.connect(), tmp_path, "shop/orders.csv")


def test_the_file_may_be_named_from_the_landing_zone_or_by_a_path_to_it(tmp_path: Path, monkeypatch):
    landing_dir = tmp_path / "data" / "landing"
    (landing_dir / "erp").mkdir(parents=True)
    (landing_dir / "erp" / "orders.csv").write_text("x")
    monkeypatch.chdir(tmp_path)
    assert landing_relative(landing_dir, "erp/orders.csv") == "erp/orders.csv"
    assert landing_relative(landing_dir, "data/landing/erp/orders.csv") == "erp/orders.csv"
    assert landing_relative(landing_dir, landing_dir / "erp" / "orders.csv") == "erp/orders.csv"
    assert landing_relative(landing_dir, "erp/./gone.csv") == "erp/gone.csv", "a file already moved away"
    with pytest.raises(UnloadError, match="not under the landing zone"):
        landing_relative(landing_dir, "../secrets.csv")


def test_unloading_a_file_that_replaced_keys_of_another_brings_the_other_rows_back(shop):
    contract, landing, connection = shop
    deliver(landing, "orders_1.csv", ["K,1", "A,5"])
    load_table(connection, contract, landing, "first")
    deliver(landing, "orders_2.csv", ["K,2"])  # the same order again: the later delivery wins (keep_last)
    load_table(connection, contract, landing, "second")
    assert connection.execute("select order_no, amount from raw.shop__orders order by 1").fetchall() == [
        ("A", 5), ("K", 2)
    ]  # fmt: skip
    unload_file(connection, landing, "shop/orders_2.csv")
    loads = load_table(connection, contract, landing, "third")
    assert {load.file: load.status for load in loads} == {
        "shop/orders_1.csv": "loaded",
        "shop/orders_2.csv": "unchanged",
    }
    assert connection.execute("select order_no, amount from raw.shop__orders order by 1").fetchall() == [
        ("A", 5), ("K", 1)
    ]  # fmt: skip
    assert current(connection) == [("shop/orders_1.csv", "loaded", 2, 2), ("shop/orders_2.csv", "unloaded", 0, 0)]


def test_an_unloaded_file_known_by_its_stat_key_stays_out_unread(shop, monkeypatch):
    monkeypatch.setattr(landing, "SETTLED_SECONDS", 0)
    contract, landing_dir, connection = shop
    deliver(landing_dir, "orders_1.csv", ["A1,1"])
    load_table(connection, contract, landing_dir, "run-1")
    unload_file(connection, landing_dir, "shop/orders_1.csv")
    monkeypatch.setattr(loader, "scan_file", lambda *args, **kwargs: pytest.fail("the file was read again"))
    [again] = load_table(connection, contract, landing_dir, "run-2")
    assert again.status == "unchanged" and "unloaded" in again.message
    assert rows_by_file(connection) == {}
