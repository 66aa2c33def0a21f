"""Idempotent increments: same file skipped, corrected re-delivery replaces, duplicate keys across files resolved."""

from pathlib import Path

import duckdb
import pytest

from pipelines.ingest.contracts import load_contract
from pipelines.ingest.loader import load_table

CONTRACT = """
files: shop/orders*.csv
format: csv
primary_key: [order_no]
duplicates: {policy}
columns:
  - {{name: order_no, type: varchar, required: true}}
  - {{name: amount, type: integer, required: true}}
"""


def setup(tmp_path: Path, policy: str = "keep_last"):
    (tmp_path / "contracts" / "shop").mkdir(parents=True)
    (tmp_path / "landing" / "shop").mkdir(parents=True)
    path = tmp_path / "contracts" / "shop" / "orders.yaml"
    path.write_text(CONTRACT.format(policy=policy), encoding="utf-8")
    return load_contract(path), duckdb.connect(str(tmp_path / "w.duckdb"))


def deliver(tmp_path: Path, name: str, rows: list[str]) -> None:
    (tmp_path / "landing" / "shop" / name).write_text("order_no,amount\n" + "".join(f"{r}\n" for r in rows))


def table(connection) -> list[tuple]:
    return connection.execute("select order_no, amount, _file from raw.shop__orders order by 1").fetchall()


def test_loading_the_same_landing_zone_twice_changes_nothing(tmp_path: Path):
    contract, connection = setup(tmp_path)
    deliver(tmp_path, "orders_1.csv", ["A,1", "B,x"])
    first = load_table(connection, contract, tmp_path / "landing", "run-1")
    before = (table(connection), connection.execute("select count(*) from meta.quarantine").fetchone()[0])
    second = load_table(connection, contract, tmp_path / "landing", "run-2")
    assert [load.status for load in first] == ["loaded"]
    assert [load.status for load in second] == ["unchanged"]
    assert (table(connection), connection.execute("select count(*) from meta.quarantine").fetchone()[0]) == before
    assert connection.execute("select count(*) from meta.load_ledger").fetchone()[0] == 1


def test_a_corrected_redelivery_replaces_the_rows_of_the_earlier_file(tmp_path: Path):
    contract, connection = setup(tmp_path)
    deliver(tmp_path, "orders_1.csv", ["A,1", "B,x"])
    load_table(connection, contract, tmp_path / "landing", "run-1")
    deliver(tmp_path, "orders_1.csv", ["A,1", "B,2", "C,3"])
    [load] = load_table(connection, contract, tmp_path / "landing", "run-2")
    assert (load.status, load.rows_loaded, load.rows_replaced) == ("loaded", 3, 1)
    assert table(connection) == [
        ("A", 1, "shop/orders_1.csv"),
        ("B", 2, "shop/orders_1.csv"),
        ("C", 3, "shop/orders_1.csv"),
    ]
    assert connection.execute("select count(*) from meta.quarantine").fetchone()[0] == 0
    statuses = connection.execute("select status, run_id from meta.load_ledger order by loaded_at").fetchall()
    assert statuses == [("replaced", "run-1"), ("loaded", "run-2")]


def test_a_new_file_with_keys_loaded_before_supersedes_them_under_keep_last(tmp_path: Path):
    contract, connection = setup(tmp_path, "keep_last")
    deliver(tmp_path, "orders_1.csv", ["A,1", "B,2"])
    load_table(connection, contract, tmp_path / "landing", "run-1")
    deliver(tmp_path, "orders_2.csv", ["B,20", "C,30"])
    loads = load_table(connection, contract, tmp_path / "landing", "run-2")
    assert [(load.status, load.rows_replaced) for load in loads] == [("unchanged", 0), ("loaded", 1)]
    assert table(connection) == [
        ("A", 1, "shop/orders_1.csv"),
        ("B", 20, "shop/orders_2.csv"),
        ("C", 30, "shop/orders_2.csv"),
    ]


@pytest.mark.parametrize("policy", ["keep_first", "quarantine"])
def test_a_new_file_with_keys_loaded_before_is_quarantined_under_keep_first(tmp_path: Path, policy: str):
    contract, connection = setup(tmp_path, policy)
    deliver(tmp_path, "orders_1.csv", ["A,1", "B,2"])
    load_table(connection, contract, tmp_path / "landing", "run-1")
    deliver(tmp_path, "orders_2.csv", ["B,20", "C,30"])
    [_, load] = load_table(connection, contract, tmp_path / "landing", "run-2")
    assert (load.rows_loaded, load.rows_quarantined) == (1, 1)
    assert table(connection)[1] == ("B", 2, "shop/orders_1.csv")
    reason = connection.execute("select reason from meta.quarantine").fetchone()[0]
    assert reason == "primary key already loaded from shop/orders_1.csv"


def test_a_refused_file_stays_refused_until_a_corrected_copy_arrives(tmp_path: Path):
    contract, connection = setup(tmp_path)
    (tmp_path / "landing" / "shop" / "orders_1.csv").write_text("order_no,total\nA,1\n")
    [refused] = load_table(connection, contract, tmp_path / "landing", "run-1")
    [again] = load_table(connection, contract, tmp_path / "landing", "run-2")
    deliver(tmp_path, "orders_1.csv", ["A,1"])
    [fixed] = load_table(connection, contract, tmp_path / "landing", "run-3")
    assert (refused.status, again.status, fixed.status) == ("refused", "unchanged", "loaded")
    assert "required column 'amount'" in refused.message
    assert table(connection) == [("A", 1, "shop/orders_1.csv")]
    assert connection.execute("select count(*) from meta.quarantine").fetchone()[0] == 0


def test_a_contract_that_gains_a_column_rebuilds_its_table_from_every_file(tmp_path: Path):
    contract, connection = setup(tmp_path)
    deliver(tmp_path, "orders_1.csv", ["A,1"])
    load_table(connection, contract, tmp_path / "landing", "run-1")
    path = tmp_path / "contracts" / "shop" / "orders.yaml"
    path.write_text(path.read_text() + "  - {name: note, type: varchar}\n")
    [load] = load_table(connection, load_contract(path), tmp_path / "landing", "run-2")
    assert load.status == "loaded"
    columns = [row[0] for row in connection.execute("describe raw.shop__orders").fetchall()]
    assert "note" in columns and connection.execute("select count(*) from raw.shop__orders").fetchone()[0] == 1
