"""Source freshness: a source is late when no file of it is newer than its cadence plus a day's grace."""

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import pytest

from pipelines.ingest.contracts import ContractError, load_contract, load_contracts
from pipelines.ingest.freshness import source_freshness

NOW = dt.datetime(2026, 6, 30, 6, 0, tzinfo=dt.UTC)
CONTRACT = """
files: shop/orders*.csv
format: csv
{cadence}
columns:
  - {{name: order_no, type: varchar, required: true}}
"""


def contract(tmp_path: Path, cadence: str = "cadence: daily", name: str = "orders"):
    path = tmp_path / "contracts" / "shop" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CONTRACT.format(cadence=cadence), encoding="utf-8")
    return load_contract(path)


def land(tmp_path: Path, name: str, age: dt.timedelta) -> Path:
    """A file of the landing zone whose modification time is ``age`` before NOW."""
    file = tmp_path / "landing" / "shop" / name
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("order_no\nA\n", encoding="utf-8")
    moment = (NOW - age).timestamp()
    os.utime(file, (moment, moment))
    return file


@pytest.mark.parametrize(
    ("cadence", "age_hours", "late"),
    [
        ("cadence: daily", 12, False),
        ("cadence: daily", 47, False),  # one missed night is within the day of grace
        ("cadence: daily", 49, True),
        ("cadence: weekly", 24 * 7.5, False),
        ("cadence: weekly", 24 * 8.5, True),
        ("cadence: monthly", 24 * 31.5, False),
        ("expected_every_days: 3", 24 * 3.5, False),
        ("expected_every_days: 3", 24 * 4.5, True),
    ],
)
def test_a_source_is_late_when_no_file_is_newer_than_its_cadence_and_a_day(
    tmp_path: Path, cadence: str, age_hours: float, late: bool
):
    land(tmp_path, "orders_1.csv", dt.timedelta(hours=age_hours))
    [freshness] = source_freshness([contract(tmp_path, cadence)], tmp_path / "landing", NOW)
    assert freshness.late is late
    assert freshness.newest_file == "shop/orders_1.csv"
    assert freshness.newest_modified_at == NOW - dt.timedelta(hours=age_hours)
    assert ("is late" in freshness.message) is late and freshness.message.startswith("shop/orders")


def test_the_newest_file_decides_and_the_message_says_what_to_do(tmp_path: Path):
    land(tmp_path, "orders_old.csv", dt.timedelta(days=20))
    land(tmp_path, "orders_new.csv", dt.timedelta(days=3))
    [freshness] = source_freshness([contract(tmp_path)], tmp_path / "landing", NOW)
    assert (freshness.newest_file, freshness.files, freshness.late) == ("shop/orders_new.csv", 2, True)
    assert "arrived 3 days ago" in freshness.message and "Check that the export still runs" in freshness.message
    land(tmp_path, "orders_today.csv", dt.timedelta(hours=2))
    [freshness] = source_freshness([contract(tmp_path)], tmp_path / "landing", NOW)
    assert (freshness.newest_file, freshness.late) == ("shop/orders_today.csv", False)


def test_an_absent_source_or_one_without_cadence_is_never_late(tmp_path: Path):
    [absent] = source_freshness([contract(tmp_path)], tmp_path / "landing", NOW)
    assert (absent.late, absent.newest_file, absent.files) == (False, None, 0)
    assert "no file yet" in absent.message
    land(tmp_path, "orders_1.csv", dt.timedelta(days=400))
    [undeclared] = source_freshness([contract(tmp_path, cadence="")], tmp_path / "landing", NOW)
    assert (undeclared.late, undeclared.cadence, undeclared.expected_every_days) == (False, "", None)
    assert "declares no cadence" in undeclared.message


def test_a_naive_now_is_read_as_utc(tmp_path: Path):
    land(tmp_path, "orders_1.csv", dt.timedelta(hours=49))
    [freshness] = source_freshness([contract(tmp_path)], tmp_path / "landing", NOW.replace(tzinfo=None))
    assert freshness.late


@pytest.mark.parametrize(
    ("cadence", "message"),
    [
        ("cadence: hourly", "cadence 'hourly' is not one of"),
        ("expected_every_days: 0", "expected_every_days 0 must be a whole number of days"),
        ("cadence: daily\nexpected_every_days: 2", "either cadence or expected_every_days"),
    ],
)
def test_a_cadence_that_cannot_work_is_refused_when_read(tmp_path: Path, cadence: str, message: str):
    with pytest.raises(ContractError, match=message):
        contract(tmp_path, cadence)


def test_every_built_in_contract_declares_its_cadence_sales_orders_and_lines_daily():
    cadences = {contract.name: contract.cadence for contract in load_contracts()}
    assert all(cadences.values()), [name for name, cadence in cadences.items() if not cadence]
    assert {cadences[name] for name in ("sales__invoice_lines", "erp__orders", "erp__order_lines")} == {"daily"}


@pytest.mark.integration
def test_the_ingest_asset_warns_without_blocking_when_its_source_is_late(tmp_path: Path):
    from pipelines.ingest.assets import build_ingest_asset
    from pipelines.resources import Warehouse

    # the asset judges against the clock: a file three days old is late for a daily source
    file = land(tmp_path, "orders_1.csv", dt.timedelta(0))
    moment = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).timestamp()
    os.utime(file, (moment, moment))
    warehouse = Warehouse(
        path=str(tmp_path / "crm.duckdb"), landing_dir=str(tmp_path / "landing"), published_dir=str(tmp_path)
    )
    result = dg.materialize(
        [build_ingest_asset(contract(tmp_path))], resources={"warehouse": warehouse}, raise_on_error=False
    )
    assert result.success
    checks = {
        event.event_specific_data.check_name: event.event_specific_data
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert (checks["fresh"].passed, checks["fresh"].severity) == (False, dg.AssetCheckSeverity.WARN)
    assert checks["fresh"].description.startswith("shop/orders is late")
    assert checks["fresh"].metadata["newest_file"].value == "shop/orders_1.csv"
    assert checks["plausible"].passed and checks["files_accepted"].passed
