"""Someone else holding the working warehouse open: a run waits for them, and past its limit fails naming them."""

import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.ingest.assets import build_ingest_asset, feeding_contracts
from pipelines.ingest.contracts import load_contracts
from pipelines.resources import Warehouse, WarehouseLockedError, backoff_delays

pytestmark = pytest.mark.integration

CONTRACT = """\
files: shop/orders*.csv
format: csv
primary_key: [order_no]
columns:
  - {name: order_no, type: varchar, required: true}
  - {name: quantity, type: integer}
"""

# A reader who opened the working warehouse read-only (as a notebook or the duckdb shell would) and keeps it.
READER = """\
import sys, time, duckdb
connection = duckdb.connect(sys.argv[1], read_only=True)
connection.execute("select count(*) from raw.shop__orders").fetchall()
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
connection.close()
"""


def warehouse_at(tmp_path: Path, lock_wait_seconds: int = 300) -> Warehouse:
    return Warehouse(
        path=str(tmp_path / "crm.duckdb"),
        landing_dir=str(tmp_path / "landing"),
        published_dir=str(tmp_path / "pub"),
        lock_wait_seconds=lock_wait_seconds,
    )


def landing(tmp_path: Path) -> Warehouse:
    (tmp_path / "contracts" / "shop").mkdir(parents=True)
    (tmp_path / "contracts" / "shop" / "orders.yaml").write_text(CONTRACT, encoding="utf-8")
    (tmp_path / "landing" / "shop").mkdir(parents=True)
    (tmp_path / "landing" / "shop" / "orders.csv").write_text("order_no,quantity\nA,1\nB,2\n", encoding="utf-8")
    return warehouse_at(tmp_path)


def ingest(tmp_path: Path, warehouse: Warehouse) -> dg.ExecuteInProcessResult:
    contracts = load_contracts(tmp_path / "contracts")
    fed_by = feeding_contracts(contracts)
    return dg.materialize(
        [build_ingest_asset(contract, fed_by[contract.name]) for contract in contracts],
        resources={"warehouse": warehouse},
        raise_on_error=False,
    )


def hold(warehouse: Warehouse, seconds: float) -> subprocess.Popen:
    script = Path(warehouse.path).parent / "reader.py"
    script.write_text(READER, encoding="utf-8")
    reader = subprocess.Popen(
        [sys.executable, str(script), warehouse.path, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert reader.stdout.readline().strip() == "holding"
    return reader


def test_the_waits_double_from_half_a_second_to_fifteen_and_add_up_to_the_limit():
    delays = list(backoff_delays(60))
    assert delays[:6] == [0.5, 1, 2, 4, 8, 15]
    assert max(delays) == 15
    assert sum(delays) == pytest.approx(60)
    assert list(backoff_delays(1)) == [0.5, 0.5]


def test_a_run_waits_for_a_reader_to_let_go_and_then_loads(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    warehouse = landing(tmp_path)
    assert ingest(tmp_path, warehouse).success  # the table exists for the reader to read
    (tmp_path / "landing" / "shop" / "orders2.csv").write_text("order_no,quantity\nC,3\n", encoding="utf-8")
    reader = hold(warehouse, 3)
    started = time.monotonic()
    try:
        result = ingest(tmp_path, warehouse_at(tmp_path, 30))
    finally:
        reader.wait(timeout=30)
    waited = time.monotonic() - started
    assert result.success
    assert waited >= 2, f"the run went on after {waited:.1f} s while the reader held the warehouse"
    with duckdb.connect(warehouse.path, read_only=True) as connection:
        assert connection.execute("select count(*) from raw.shop__orders").fetchone()[0] == 3
    waiting = [record.getMessage() for record in caplog.records if "waiting" in record.getMessage()]
    assert waiting, "nothing said the run was waiting"
    assert f"held by PID {reader.pid}" in waiting[0]
    assert "reader.py" in waiting[0], "the holder's command line (from /proc) is named"


def test_past_the_limit_the_run_fails_naming_the_process_and_the_snapshot_to_read(tmp_path: Path):
    warehouse = landing(tmp_path)
    assert ingest(tmp_path, warehouse).success
    reader = hold(warehouse, 6)
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseLockedError) as raised:
            warehouse_at(tmp_path, 1).wait_until_free()
        assert time.monotonic() - started < 4
        result = ingest(tmp_path, warehouse_at(tmp_path, 1))
    finally:
        reader.kill()
        reader.wait()
    message = str(raised.value)
    assert raised.value.holder_pid == reader.pid
    assert f"PID {reader.pid}" in message
    assert "published snapshot" in message and "current.json" in message
    assert not result.success
    failure = next(event for event in result.all_events if event.event_type_value == "STEP_FAILURE")
    assert f"PID {reader.pid}" in str(failure.event_specific_data.error)
