"""Two real nights over the same published folder: the second lands one order line of quantity 2,147,483,647
(loaded, the outlier setting at warn), the guard holds its snapshot back naming the file and the record, accepting
it publishes it and a rollback goes back to the first night's."""

import json
import shutil
from pathlib import Path

import pytest

from pipelines.publish.changes import what_changed
from pipelines.publish.guard import accept_held, rollback
from pipelines.publish.snapshot import current_snapshot
from tests.conftest import AS_OF, run_landed

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HUGE_QUANTITY = 2_147_483_647
LATE_LINES = "erp/order_lines_late.csv"


def land_a_huge_order_line(landing: Path) -> None:
    """One new order of an existing customer, with one line of a huge quantity, in files of their own."""
    orders = (landing / "erp" / "orders.csv").read_text(encoding="utf-8").splitlines()
    lines = (landing / "erp" / "order_lines.csv").read_text(encoding="utf-8").splitlines()
    customer = orders[1].split(";")[1]
    sku = lines[1].split(";")[2]
    (landing / "erp" / "orders_late.csv").write_text(
        f"{orders[0]}\nSO99999999;{customer};2026-06-15 10:00:00;web;;EUR;invoiced\n", encoding="utf-8"
    )
    (landing / LATE_LINES).write_text(
        f"{lines[0]}\nSO99999999;1;{sku};{HUGE_QUANTITY};10,00;{HUGE_QUANTITY}0,00\n", encoding="utf-8"
    )


def publish_failure(result) -> str:
    [failure] = [
        event.event_specific_data
        for event in result.all_events
        if event.event_type_value == "STEP_FAILURE" and event.step_key == "published_snapshot"
    ]
    return failure.user_failure_data.description if failure.user_failure_data else failure.error.message


def test_a_huge_order_line_is_held_back_then_accepted_then_rolled_back(small_world, tmp_path: Path):
    root, contracts = tmp_path / "night", tmp_path / "contracts"
    contracts.mkdir()
    shutil.copytree(small_world.landing, root / "landing")
    published = root / "published"

    first = run_landed(root, contracts, AS_OF)
    assert first.result.success and first.snapshot is not None
    first_pointer = current_snapshot(published)

    land_a_huge_order_line(root / "landing")
    second = run_landed(root, contracts, AS_OF, CRM_OUTLIER_SEVERITY="warn")
    assert not second.result.success, "the publish step fails when it holds the snapshot back"
    message = publish_failure(second.result)
    held = json.loads((published / "held.json").read_text(encoding="utf-8"))
    assert current_snapshot(published)["snapshot"] == first_pointer["snapshot"], "the dashboards keep the first"
    assert (published / held["snapshot"]).exists() and held["run_id"] != first_pointer["run_id"]
    assert "Net revenue went from" in message and "publish guard factor 3" in message
    assert f"{LATE_LINES} record 1 (order line SO99999999-1, quantity {HUGE_QUANTITY:,}" in message
    assert f"Files loaded by this run: {LATE_LINES} (loaded: 1 rows read, 1 loaded, 0 quarantined)" in message
    assert f"crm publish --accept {held['run_id']}" in message
    assert any(
        sentence.startswith(f"Held back, not published: run {held['run_id']}") for sentence in what_changed(published)
    )

    accepted = accept_held(published, held["run_id"])
    assert current_snapshot(published)["snapshot"] == held["snapshot"] == accepted["snapshot"]
    assert not (published / "held.json").exists()

    back = rollback(published)
    assert back["snapshot"] == first_pointer["snapshot"] == current_snapshot(published)["snapshot"]
