import json
from datetime import date
from pathlib import Path

import dagster as dg

from pipelines.ingest.contracts import load_contracts
from pipelines.ingest.sensors import build_landing_sensor, ready_changes


def test_a_file_is_requested_once_it_has_stopped_changing():
    cursor, signature = ready_changes({}, {"erp/orders.csv": [10, 1]})
    assert signature is None, "a file seen for the first time may still be copying"
    cursor, signature = ready_changes(cursor, {"erp/orders.csv": [20, 2]})
    assert signature is None, "it grew since the last look"
    cursor, signature = ready_changes(cursor, {"erp/orders.csv": [20, 2]})
    assert signature is not None
    cursor, again = ready_changes(cursor, {"erp/orders.csv": [20, 2]})
    assert again is None, "the same files are not requested twice"
    cursor, changed = ready_changes(cursor, {"erp/orders.csv": [20, 2], "crm/cases.csv": [5, 3]})
    assert changed is None
    _, changed = ready_changes(cursor, {"erp/orders.csv": [20, 2], "crm/cases.csv": [5, 3]})
    assert changed not in (None, signature)


def test_the_sensor_requests_a_run_tagged_with_todays_cutoff(tmp_path: Path):
    (tmp_path / "erp").mkdir()
    (tmp_path / "erp" / "orders.csv").write_text("order_no\n1\n")
    job = dg.define_asset_job("nightly")
    sensor = build_landing_sensor(job, load_contracts(), tmp_path, 60, lambda: date(2026, 6, 30))
    first = sensor(dg.build_sensor_context(cursor=None))
    assert isinstance(first, dg.SkipReason)
    stat = (tmp_path / "erp" / "orders.csv").stat()
    cursor = json.dumps({"seen": {"erp/orders.csv": [stat.st_size, stat.st_mtime_ns]}})
    request = sensor(dg.build_sensor_context(cursor=cursor))
    assert isinstance(request, dg.RunRequest)
    assert request.tags["crm/as_of"] == "2026-06-30"
