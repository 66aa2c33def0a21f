"""Landing-zone files are literal, local and complete: glob characters in a name, links, special files, empty
files and files still being written (pipelines/ingest/landing.py and the first lines of load_file)."""

import os
import threading
import time
from pathlib import Path

import duckdb
import pytest

from pipelines.ingest import landing
from pipelines.ingest.contracts import load_contract, load_contracts
from pipelines.ingest.loader import load_file, load_table
from pipelines.ingest.sensors import landing_state

CONTRACT = """
files: shop/orders*.csv
format: csv
primary_key: [order_no]
columns:
  - {name: order_no, type: varchar, required: true}
  - {name: amount, type: integer, required: true}
"""
SECRET = "TOPSECRET-7f3a"


@pytest.fixture
def shop(tmp_path: Path):
    (tmp_path / "contracts" / "shop").mkdir(parents=True)
    (tmp_path / "contracts" / "shop" / "orders.yaml").write_text(CONTRACT, encoding="utf-8")
    (tmp_path / "landing" / "shop").mkdir(parents=True)
    return load_contract(tmp_path / "contracts" / "shop" / "orders.yaml"), tmp_path / "landing"


def deliver(landing_dir: Path, name: str, rows: list[str]) -> Path:
    path = landing_dir / "shop" / name
    path.write_text("order_no,amount\n" + "".join(f"{row}\n" for row in rows), encoding="utf-8")
    return path


def everything_stored(connection: duckdb.DuckDBPyConnection) -> str:
    """Every value of every table in the warehouse, as one text, to look for bytes that must not be there."""
    tables = connection.execute("select table_schema, table_name from information_schema.tables").fetchall()
    return "\n".join(
        str(connection.execute(f'select * from "{schema}"."{name}"').fetchall()) for schema, name in tables
    )


def names(files: list[Path], root: Path) -> list[str]:
    return [file.relative_to(root).as_posix() for file in files]


# Listing


def test_listing_matches_what_path_glob_matched_for_every_built_in_pattern(tmp_path: Path):
    patterns = [contract.files for contract in load_contracts()] + [
        "shop/**/orders*.csv",
        "**/*.parquet",
        "a/?b[0-9].csv",
    ]
    for pattern in patterns:  # a landing zone with a name each pattern matches and names around it that it must not
        stem = pattern.replace("**/", "x/y/").replace("*", "2024").replace("?", "q").replace("[0-9]", "7")
        for name in (stem, "other/" + stem, stem + ".bak", stem.replace(".", "_") + ".txt"):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text("x")
    (tmp_path / "a" / "zb1.csv").write_text("x")
    for pattern in patterns:
        expected = sorted(path for path in tmp_path.glob(pattern) if path.is_file())
        assert expected, pattern
        assert landing.matching_files(tmp_path, pattern) == expected, pattern


def test_copies_in_progress_and_hidden_names_are_not_listed_and_gzip_is(shop):
    contract, landing_dir = shop
    listed = ["orders_1.csv", "orders_2.csv.gz", "orders[3].csv", "orders*.csv"]
    ignored = [".orders_4.csv", "~$orders_5.csv", "orders_6.csv.partial", "orders_7.csv.part", "orders_8.csv.tmp",
               "orders_9.csv.crdownload", "orders_10.csv~", "orders_11.csv.gz.partial"]  # fmt: skip
    for name in listed + ignored + ["customers.csv", "orders_12.txt"]:
        (landing_dir / "shop" / name).write_text("x")
    (landing_dir / "shop" / ".hidden").mkdir()
    (landing_dir / "shop" / ".hidden" / "orders_13.csv").write_text("x")
    assert names(contract.matching_files(landing_dir), landing_dir) == sorted(f"shop/{name}" for name in listed)
    assert sorted(landing_state([contract], landing_dir)) == sorted(f"shop/{name}" for name in listed)


# Literal names


def test_a_file_named_with_a_glob_loads_only_its_own_rows(shop):
    contract, landing_dir = shop
    deliver(landing_dir, "orders.csv", [f"A{index},1" for index in range(50)])
    deliver(landing_dir, "orders*.csv", ["B1,2"])
    deliver(landing_dir, "orders[1].csv", ["C1,3"])
    connection = duckdb.connect()
    loads = load_table(connection, contract, landing_dir, "run-1")
    assert {load.file: (load.status, load.rows_read, load.rows_loaded) for load in loads} == {
        "shop/orders.csv": ("loaded", 50, 50),
        "shop/orders*.csv": ("loaded", 1, 1),
        "shop/orders[1].csv": ("loaded", 1, 1),
    }
    by_file = connection.execute("select _file, count(*), min(order_no) from raw.shop__orders group by 1").fetchall()
    assert sorted(by_file) == [
        ("shop/orders*.csv", 1, "B1"),
        ("shop/orders.csv", 50, "A0"),
        ("shop/orders[1].csv", 1, "C1"),
    ]


def test_a_parquet_file_named_with_a_glob_loads_only_its_own_rows(tmp_path: Path):
    (tmp_path / "contracts" / "shop").mkdir(parents=True)
    (tmp_path / "contracts" / "shop" / "orders.yaml").write_text(
        CONTRACT.replace("shop/orders*.csv", "shop/orders*.parquet").replace("format: csv", "format: parquet")
    )
    contract = load_contract(tmp_path / "contracts" / "shop" / "orders.yaml")
    landing_dir = tmp_path / "landing"
    (landing_dir / "shop").mkdir(parents=True)
    connection = duckdb.connect()
    for name, rows in (("orders.parquet", 30), ("orders*.parquet", 1), ("orders{a,b}.parquet", 2)):
        connection.execute(
            "copy (select ? || range as order_no, range::integer as amount from range(?)) to ? (format parquet)",
            [name, rows, str(landing_dir / "shop" / name)],
        )
    loads = load_table(connection, contract, landing_dir, "run-1")
    assert {load.file: load.rows_loaded for load in loads} == {
        "shop/orders.parquet": 30,
        "shop/orders*.parquet": 1,
        "shop/orders{a,b}.parquet": 2,
    }
    assert connection.execute("select count(*) from raw.shop__orders").fetchone()[0] == 33


def test_safe_path_gives_duckdb_a_literal_path_and_removes_it_afterwards(tmp_path: Path):
    (tmp_path / "o.csv").write_text("a\n1\n")
    (tmp_path / "o*.csv").write_text("a\n2\n")
    (tmp_path / "o\\x.csv").write_text("a\n3\n")
    connection = duckdb.connect()
    for name, value in (("o*.csv", 2), ("o\\x.csv", 3), ("o.csv", 1)):
        with landing.safe_path(tmp_path / name) as path:
            assert landing.is_literal(path)
            assert connection.execute("select a from read_csv(?)", [str(path)]).fetchall() == [(value,)]
            temporary = path.parent
        assert (temporary == tmp_path) == (name == "o.csv")
        assert (tmp_path / name).read_text() == f"a\n{value}\n", "the landing file is untouched"
        assert temporary.exists() == (name == "o.csv"), "the private folder is removed"


# Links and special files


def test_a_symbolic_link_to_a_file_outside_is_refused_without_reading_it(shop, tmp_path: Path):
    contract, landing_dir = shop
    secrets = tmp_path / "secrets.csv"
    secrets.write_text(f"order_no,amount\n{SECRET},1\n")
    (landing_dir / "shop" / "orders_1.csv").symlink_to(secrets)
    (landing_dir / "shop" / "orders_2.csv").symlink_to(tmp_path / "nowhere.csv")  # dangling
    deliver(landing_dir, "orders_3.csv", ["A1,1"])
    connection = duckdb.connect()
    loads = {load.file: load for load in load_table(connection, contract, landing_dir, "run-1")}
    assert {file: load.status for file, load in loads.items()} == {
        "shop/orders_1.csv": "refused",
        "shop/orders_2.csv": "refused",
        "shop/orders_3.csv": "loaded",
    }
    assert loads["shop/orders_1.csv"].message == (
        "shop/orders_1.csv is a symbolic link; links are not followed: copy the file itself into the landing zone"
    )
    assert (loads["shop/orders_1.csv"].rows_read, loads["shop/orders_1.csv"].sha256) == (0, "")
    stored = everything_stored(connection)
    assert SECRET not in stored and str(tmp_path) not in stored
    assert all(SECRET not in load.message and str(tmp_path) not in load.message for load in loads.values())
    statuses = connection.execute("select file, status, rows_read from meta.load_ledger order by 1").fetchall()
    assert statuses == [("shop/orders_1.csv", "refused", 0), ("shop/orders_2.csv", "refused", 0),
                        ("shop/orders_3.csv", "loaded", 1)]  # fmt: skip
    again = {load.file: load for load in load_table(connection, contract, landing_dir, "run-2")}
    assert again["shop/orders_1.csv"].status == "unchanged" and "symbolic link" in again["shop/orders_1.csv"].message
    assert connection.execute("select count(*) from meta.load_ledger").fetchone()[0] == 3, "no new row per run"
    (landing_dir / "shop" / "orders_1.csv").unlink()
    deliver(landing_dir, "orders_1.csv", ["B1,2"])  # the real file replaces the link
    [replaced] = [
        load for load in load_table(connection, contract, landing_dir, "run-3") if load.file.endswith("_1.csv")
    ]
    assert (replaced.status, replaced.rows_loaded) == ("loaded", 1)


def test_a_linked_folder_is_refused_and_nothing_under_it_is_read(shop, tmp_path: Path):
    contract, landing_dir = shop
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "orders_1.csv").write_text(f"order_no,amount\n{SECRET},1\n")
    (landing_dir / "shop").rmdir()
    (landing_dir / "shop").symlink_to(outside, target_is_directory=True)
    connection = duckdb.connect()
    [load] = load_table(connection, contract, landing_dir, "run-1")
    assert (load.file, load.status) == ("shop", "refused")
    assert load.message == (
        "shop is a symbolic link; links are not followed: copy the folder itself into the landing zone"
    )
    under = load_file(connection, contract, landing_dir / "shop" / "orders_1.csv", landing_dir, "run-2")
    assert under.status == "refused"
    assert under.message.startswith("shop/orders_1.csv is in the folder shop, which is a symbolic link")
    stored = everything_stored(connection)
    assert SECRET not in stored and str(tmp_path) not in stored


def test_a_path_leading_outside_the_landing_zone_is_refused(tmp_path: Path):
    (tmp_path / "landing").mkdir()
    (tmp_path / "secrets.csv").write_text(SECRET)
    seen = landing.inspect(tmp_path / "landing" / ".." / "secrets.csv", tmp_path / "landing")
    assert (seen.status, seen.reason_code) == ("refused", "link")
    assert "outside the landing zone" in seen.message and str(tmp_path) not in seen.message


def test_a_named_pipe_is_refused_without_being_opened(shop):
    contract, landing_dir = shop
    os.mkfifo(landing_dir / "shop" / "orders_1.csv")
    connection = duckdb.connect()
    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.extend(load_table(connection, contract, landing_dir, "r")))
    worker.daemon = True  # were it to block on the pipe, the test fails instead of hanging
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "reading the named pipe blocked"
    [load] = outcome
    assert (load.status, load.rows_read) == ("refused", 0)
    assert load.message.startswith("shop/orders_1.csv is a named pipe (FIFO), not a regular file")
    assert connection.execute("select status from meta.load_ledger").fetchall() == [("refused",)]


# Empty and incomplete files


def test_an_empty_file_is_recorded_as_empty_and_blocks_nothing(shop):
    contract, landing_dir = shop
    (landing_dir / "shop" / "orders_1.csv").write_bytes(b"")
    deliver(landing_dir, "orders_2.csv", ["A1,1"])
    connection = duckdb.connect()
    loads = {load.file: load for load in load_table(connection, contract, landing_dir, "run-1")}
    empty = loads["shop/orders_1.csv"]
    assert (empty.status, empty.rows_read, empty.message) == ("empty", 0, "shop/orders_1.csv is empty (0 bytes)")
    assert loads["shop/orders_2.csv"].status == "loaded"
    ledger = connection.execute(
        "select file, status, rows_read, size_bytes from meta.load_ledger order by 1"
    ).fetchall()
    size = (landing_dir / "shop" / "orders_2.csv").stat().st_size
    assert ledger == [("shop/orders_1.csv", "empty", 0, 0), ("shop/orders_2.csv", "loaded", 1, size)]
    assert connection.execute("select count(*) from meta.quarantine").fetchone()[0] == 0
    [again, _] = load_table(connection, contract, landing_dir, "run-2")
    assert again.status == "unchanged"
    deliver(landing_dir, "orders_1.csv", ["B1,2"])
    [filled, _] = load_table(connection, contract, landing_dir, "run-3")
    assert (filled.status, filled.rows_loaded) == ("loaded", 1)


def test_a_file_growing_while_it_is_hashed_is_deferred_then_loads_once_stable(shop):
    contract, landing_dir = shop
    growing = deliver(landing_dir, "orders_1.csv", [f"A{index},{index}" for index in range(150_000)])
    stop = threading.Event()
    appended = threading.Event()

    def append() -> None:
        with growing.open("a", encoding="utf-8") as handle:
            index = 0
            while not stop.is_set():
                handle.write(f"B{index},{index}\n")
                handle.flush()
                index += 1
                appended.set()
                time.sleep(0.0005)

    writer = threading.Thread(target=append, daemon=True)
    writer.start()
    appended.wait(5)
    connection = duckdb.connect()
    try:
        [load] = load_table(connection, contract, landing_dir, "run-1")
    finally:
        stop.set()
        writer.join(5)
    assert load.status == "deferred"
    assert load.message.startswith("shop/orders_1.csv is still being written")
    assert connection.execute("select count(*) from meta.load_ledger").fetchone()[0] == 0, "not recorded"
    rows_now = sum(1 for _ in growing.open(encoding="utf-8")) - 1
    [stable] = load_table(connection, contract, landing_dir, "run-2")
    assert (stable.status, stable.rows_read, stable.rows_loaded) == ("loaded", rows_now, rows_now)


def test_the_sensor_looks_at_links_without_following_them(shop, tmp_path: Path):
    contract, landing_dir = shop
    (tmp_path / "big.csv").write_text("x" * 5000)
    (landing_dir / "shop" / "orders_1.csv").symlink_to(tmp_path / "big.csv")
    (landing_dir / "shop" / "orders_2.csv").symlink_to(tmp_path / "gone.csv")
    state = landing_state([contract], landing_dir)
    assert sorted(state) == ["shop/orders_1.csv", "shop/orders_2.csv"]
    assert state["shop/orders_1.csv"][0] == os.lstat(landing_dir / "shop" / "orders_1.csv").st_size != 5000


def test_an_empty_re_delivery_keeps_the_rows_of_the_file_it_would_replace(shop):
    contract, landing = shop
    connection = duckdb.connect()
    path = deliver(landing, "orders_1.csv", ["A,1", "B,2"])
    [first] = load_table(connection, contract, landing, "first")
    assert (first.status, first.rows_loaded) == ("loaded", 2)
    path.write_bytes(b"")
    [second] = load_table(connection, contract, landing, "second")
    assert second.status == "deferred"
    assert "is empty (0 bytes) but an earlier delivery of it is loaded" in second.message
    assert connection.execute("select count(*) from raw.shop__orders").fetchone()[0] == 2
    assert connection.execute("select status from meta.load_ledger").fetchall() == [("loaded",)]
