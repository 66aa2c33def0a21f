"""Data readiness: `crm doctor` says which contracts matched which files, the rows and dates of each table, and
which capabilities the data supports, with the reason where it does not.

The first tests judge synthetic facts with the pure registry (pipelines.readiness.assess); the last ones run the
command on small generated landing zones: complete, ERP only, and with too little history for churn.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.readiness import (
    CAPABILITIES,
    MIN_CLV_REPEAT_BUYERS,
    NOT_READY,
    PARTIAL,
    READY,
    CutoffFacts,
    DataFacts,
    TableFacts,
    assess,
)
from pipelines.settings import PROJECT_ROOT, load_settings

AS_OF = date(2026, 6, 30)
SETTINGS = load_settings({})  # the documented defaults: churn window 90 days, CLV holdout 6 months
EVERY_TABLE = (
    "erp__orders", "erp__order_lines", "erp__customers", "erp__products", "crm__contacts", "crm__cases",
    "callcenter__calls", "marketing__campaigns", "marketing__campaign_members", "marketing__sends", "web__sessions",
)  # fmt: skip


def complete_facts(**changes) -> DataFacts:
    """Four years of sales from 300 customers and every other source: what the demo retailer exports."""
    facts = DataFacts(
        as_of=AS_OF,
        tables={table: TableFacts(100) for table in EVERY_TABLE},
        orders=1000,
        order_lines=3000,
        buyers=300,
        repeat_buyers=200,
        first_order=date(2022, 7, 1),
        last_order=date(2026, 6, 29),
        multi_product_orders=800,
        channels=("email", "phone", "store", "web"),
        control_members=60,
        clv_calibration=CutoffFacts(date(2025, 12, 29), 250, 180),
        churn_anchor=AS_OF,
        churn_cutoffs=(CutoffFacts(date(2026, 1, 1), 250, 40), CutoffFacts(date(2026, 4, 1), 270, 50)),
    )
    return dataclasses.replace(facts, **changes)


def verdicts(facts: DataFacts, settings=SETTINGS) -> dict[str, tuple[str, str]]:
    return {verdict.capability: (verdict.status, verdict.reason) for verdict in assess(facts, settings)}


def test_the_registry_names_each_capability_once_and_the_docs_describe_every_one():
    keys = [capability.key for capability in CAPABILITIES]
    assert len(keys) == len(set(keys)) == 10
    docs = (PROJECT_ROOT / "docs" / "readiness.md").read_text(encoding="utf-8")
    for capability in CAPABILITIES:
        assert f"| {capability.name} |" in docs, f"docs/readiness.md does not describe {capability.name}"


def test_complete_data_supports_every_capability_with_the_figures_that_decided_it():
    judged = verdicts(complete_facts())
    assert {status for status, _ in judged.values()} == {READY}
    assert judged["star_schema"][1] == "1,000 orders with 3,000 lines from 300 customers (2022-07-01 to 2026-06-29)"
    assert judged["churn"][1].startswith("trained at 2026-01-01 (40 of 250 came back within 90 days)")


def test_seventy_days_of_history_is_too_little_for_churn_clv_and_full_tiers():
    short = complete_facts(
        first_order=AS_OF - timedelta(days=70),
        clv_calibration=CutoffFacts(date(2025, 12, 29), 0, 0),
        churn_cutoffs=(CutoffFacts(date(2026, 1, 1), 0, 0), CutoffFacts(date(2026, 4, 1), 0, 0)),
    )
    judged = verdicts(short)
    assert judged["churn"] == (
        NOT_READY,
        "churn needs two 90-day windows of history before 2026-06-30, one to learn from and one to test on; "
        "this data has 70 days",
    )
    assert judged["clv"][0] == NOT_READY and "this data starts 2026-04-21 (70 days of history)" in judged["clv"][1]
    assert judged["tiers"][0] == PARTIAL and "70 days of sales" in judged["tiers"][1]
    assert judged["rfm"][0] == READY  # recency, frequency and spend need no long history
    # with a 30-day churn window the same 70 days hold two windows, each with customers who came back and not
    monthly = dataclasses.replace(
        short, churn_cutoffs=(CutoffFacts(date(2026, 5, 1), 80, 20), CutoffFacts(date(2026, 5, 31), 120, 30))
    )
    assert verdicts(monthly, SETTINGS.replace(churn_window_days=30))["churn"][0] == READY


def test_churn_needs_both_outcomes_at_each_cutoff_and_clv_needs_repeat_buyers():
    everyone_came_back = (CutoffFacts(date(2026, 1, 1), 250, 250), CutoffFacts(date(2026, 4, 1), 270, 50))
    assert verdicts(complete_facts(churn_cutoffs=everyone_came_back))["churn"] == (
        NOT_READY,
        "churn needs both outcomes at its training cutoff 2026-01-01: of 250 customers, all of them bought again "
        "within 90 days",
    )
    few = CutoffFacts(date(2025, 12, 29), 250, MIN_CLV_REPEAT_BUYERS - 1)
    status, reason = verdicts(complete_facts(clv_calibration=few))["clv"]
    assert status == NOT_READY and f"{MIN_CLV_REPEAT_BUYERS - 1} bought on two or more days" in reason


def test_without_other_systems_identity_campaigns_and_channels_say_what_is_missing():
    erp_only = complete_facts(
        tables={table: TableFacts(100) for table in EVERY_TABLE if table.startswith("erp__")},
        channels=("web",),
        control_members=0,
    )
    judged = verdicts(erp_only)
    assert judged["identity"][0] == NOT_READY and "only the ERP's" in judged["identity"][1]
    assert judged["campaigns"] == (
        NOT_READY,
        "campaign measurement needs marketing/campaigns and their members (marketing/campaign_members); "
        "found 0 campaigns and 0 members",
    )
    assert judged["channels"] == (
        NOT_READY,
        "a preferred channel needs interactions through two or more channels; found one only (web)",
    )
    assert judged["segments"][0] == PARTIAL and "crm/cases (service contacts)" in judged["segments"][1]
    no_control = verdicts(complete_facts(control_members=0))["campaigns"]
    assert no_control[0] == PARTIAL and "no control group" in no_control[1]


def test_no_sales_before_the_cutoff_makes_every_sales_capability_not_ready_and_says_so():
    judged = verdicts(complete_facts(orders=0, order_lines=0, buyers=0, orders_after_as_of=12, first_order=None))
    for key in ("star_schema", "rfm", "tiers", "clv", "churn", "segments", "market_basket"):
        assert judged[key] == (
            NOT_READY,
            "needs sales (erp/orders and erp/order_lines); there are no orders before 2026-06-30 "
            "(12 orders are on or after it)",
        )


# --- crm doctor on generated landing zones --------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    from pipelines.demo_data import generate

    root = tmp_path_factory.mktemp("readiness")
    summary = generate(customers=400, seed=5, as_of=AS_OF, out=root / "landing", truth=root / "truth")
    return root / "landing", dict(summary.rows)


def doctor(landing: Path, *arguments: str) -> str:
    from pipelines.cli import main

    env = {"CRM_LANDING_DIR": str(landing), "CRM_CONTRACTS_DIR": str(landing.parent / "no_contracts")}
    result = CliRunner().invoke(main, ["doctor", "--as-of", AS_OF.isoformat(), *arguments], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def doctor_json(landing: Path) -> dict:
    return json.loads(doctor(landing, "--json"))


def statuses(report: dict) -> dict[str, str]:
    return {verdict["capability"]: verdict["status"] for verdict in report["capabilities"]}


@pytest.mark.integration
def test_the_full_landing_zone_reconciles_with_the_export_and_supports_every_capability(generated):
    landing, exported = generated
    report = doctor_json(landing)
    sources = {source["contract"]: source for source in report["sources"]}
    [orders_file] = sources["erp__orders"]["files"]
    assert orders_file["file"] == "erp/orders.csv" and orders_file["status"] == "loaded"
    assert orders_file["rows_loaded"] + orders_file["rows_quarantined"] == exported["erp/orders.csv"]
    assert sources["erp__orders"]["tables"] == ["erp__orders"]
    assert report["tables"]["erp__orders"]["rows"] == orders_file["rows_loaded"]
    assert report["tables"]["erp__orders"]["last_date"] < AS_OF.isoformat()
    assert report["sales"]["orders"] == orders_file["rows_loaded"]  # the demo exports nothing after the cutoff
    assert statuses(report) == {capability.key: READY for capability in CAPABILITIES}
    assert report["files_no_contract_reads"] == []


@pytest.mark.integration
def test_with_only_the_erp_folder_identity_and_campaigns_are_not_ready_and_say_why(generated, tmp_path):
    landing, _ = generated
    shutil.copytree(landing / "erp", tmp_path / "landing" / "erp")
    (tmp_path / "landing" / "erp" / "notes.txt").write_text("not an export", encoding="utf-8")
    text = doctor(tmp_path / "landing")
    assert re.search(r"NOT READY +Identity resolution across systems +.*only the ERP's", text), text
    assert re.search(r"NOT READY +Campaign measurement +campaign measurement needs marketing/campaigns", text)
    assert re.search(r"PARTIAL +Behavioural segments +.*crm/cases", text)
    for ready in ("Customer 360 and star schema", "RFM segments", "Churn risk", "Customer lifetime value"):
        assert re.search(rf"READY +{ready} ", text), text
    assert "crm__contacts                no files" in text
    assert "Files no contract reads: erp/notes.txt" in text
    assert "7 of 10 capabilities ready" in text


@pytest.mark.integration
def test_seventy_days_of_orders_are_too_few_for_churn_and_the_doctor_says_how_many_days_there_are(generated, tmp_path):
    landing, _ = generated
    shutil.copytree(landing / "erp", tmp_path / "landing" / "erp")
    orders = tmp_path / "landing" / "erp" / "orders.csv"
    with orders.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    start = AS_OF - timedelta(days=70)
    kept = [row for row in rows[1:] if datetime.strptime(row[2], "%Y-%m-%d %H:%M:%S").date() >= start]
    with orders.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, delimiter=";").writerows([rows[0], *kept])
    dates = [datetime.strptime(row[2], "%Y-%m-%d %H:%M:%S").date() for row in kept]
    days = (min(AS_OF, max(dates) + timedelta(days=1)) - min(dates)).days
    report = doctor_json(tmp_path / "landing")
    judged = {verdict["capability"]: verdict for verdict in report["capabilities"]}
    assert report["sales"]["orders"] == len(kept) and report["sales"]["history_days"] == days
    assert judged["churn"]["status"] == NOT_READY
    assert judged["churn"]["reason"].startswith("churn needs two 90-day windows of history before ")
    assert f"this data has {days} days" in judged["churn"]["reason"]
    assert judged["clv"]["status"] == NOT_READY and judged["tiers"]["status"] == PARTIAL
    assert judged["star_schema"]["status"] == READY
