"""Idempotent increments: same file skipped (unread when the ledger knows its stat key), corrected re-delivery
replaces, duplicate keys across files resolved."""

import os
from pathlib import Path

import duckdb
import pytest

from pipelines.ingest import landing, loader
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


def stat_keys(connection) -> list:
    return [row[0] for row in connection.execute("select stat_key from meta.load_ledger order by loaded_at").fetchall()]


def counting_scans(monkeypatch) -> list:
    """Record every file the loader reads to hash (the real reader still runs)."""
    scanned: list = []
    real = loader.scan_file

    def scan(file, *args, **kwargs):
        scanned.append(Path(file).name)
        return real(file, *args, **kwargs)

    monkeypatch.setattr(loader, "scan_file", scan)
    return scanned


def test_a_settled_file_the_ledger_knows_is_not_read_again(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(landing, "SETTLED_SECONDS", 0)
    contract, connection = setup(tmp_path)
    deliver(tmp_path, "orders_1.csv", ["A,1", "B,x"])
    load_table(connection, contract, tmp_path / "landing", "run-1")
    scanned = counting_scans(monkeypatch)
    [again] = load_table(connection, contract, tmp_path / "landing", "run-2")
    assert (again.status, again.message, scanned) == ("unchanged", "already loaded by run run-1", [])
    assert again.sha256 == connection.execute("select sha256 from meta.load_ledger").fetchone()[0]
    assert table(connection) == [("A", 1, "shop/orders_1.csv")]
    assert connection.execute("select count(*) from meta.load_ledger").fetchone()[0] == 1


def test_a_file_rewritten_in_place_with_its_old_size_and_times_is_read_again(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(landing, "SETTLED_SECONDS", 0)
    contract, connection = setup(tmp_path)
    deliver(tmp_path, "orders_1.csv", ["A,1"])
    load_table(connection, contract, tmp_path / "landing", "run-1")
    file = tmp_path / "landing" / "shop" / "orders_1.csv"
    before = file.stat()
    deliver(tmp_path, "orders_1.csv", ["A,2"])  # same size, same inode
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))  # the modification time set back; the change time moves
    assert (file.stat().st_size, file.stat().st_mtime_ns, file.stat().st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    [load] = load_table(connection, contract, tmp_path / "landing", "run-2")
    assert (load.status, load.rows_replaced) == ("loaded", 1)
    assert table(connection) == [("A", 2, "shop/orders_1.csv")]


def test_a_file_touched_since_is_hashed_once_and_known_by_its_new_key(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(landing, "SETTLED_SECONDS", 0)
    contract, connection = setup(tmp_path)
    deliver(tmp_path, "orders_1.csv", ["A,1"])
    load_table(connection, contract, tmp_path / "landing", "run-1")
    [first_key] = stat_keys(connection)
    file = tmp_path / "landing" / "shop" / "orders_1.csv"
    os.utime(file, ns=(file.stat().st_atime_ns, file.stat().st_mtime_ns - 1_000_000_000))
    scanned = counting_scans(monkeypatch)
    [touched] = load_table(connection, contract, tmp_path / "landing", "run-2")
    [after] = load_table(connection, contract, tmp_path / "landing", "run-3")
    assert (touched.status, after.status) == ("unchanged", "unchanged")
    assert scanned == ["orders_1.csv"]  # run-2 hashed it; run-3 knew it by its new key
    [new_key] = stat_keys(connection)
    assert new_key not in (None, first_key)


def test_a_file_just_written_is_hashed_again_on_the_next_night(tmp_path: Path, monkeypatch):
    contract, connection = setup(tmp_path)  # the real settling time: the file was written a moment ago
    deliver(tmp_path, "orders_1.csv", ["A,1"])
    load_table(connection, contract, tmp_path / "landing", "run-1")
    assert stat_keys(connection) == [None]
    scanned = counting_scans(monkeypatch)
    [again] = load_table(connection, contract, tmp_path / "landing", "run-2")
    assert (again.status, scanned) == ("unchanged", ["orders_1.csv"])


def test_a_ledger_without_stat_keys_gains_the_column_and_keeps_what_it_loaded(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(landing, "SETTLED_SECONDS", 0)
    contract, connection = setup(tmp_path)
    deliver(tmp_path, "orders_1.csv", ["A,1"])
    load_table(connection, contract, tmp_path / "landing", "run-1")
    connection.execute("alter table meta.load_ledger drop column stat_key")  # the layout before the column
    scanned = counting_scans(monkeypatch)
    [hashed] = load_table(connection, contract, tmp_path / "landing", "run-2")
    [known] = load_table(connection, contract, tmp_path / "landing", "run-3")
    assert (hashed.status, known.status, scanned) == ("unchanged", "unchanged", ["orders_1.csv"])
    assert table(connection) == [("A", 1, "shop/orders_1.csv")]
    assert connection.execute("select count(*), count(stat_key) from meta.load_ledger").fetchone() == (1, 1)
