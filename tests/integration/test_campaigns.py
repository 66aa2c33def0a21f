"""A campaign planned on the published snapshot of the session's world, saved into a copy of its landing zone,
loaded by the marketing contracts, and exported with contact details for consented targets only.

The export is attacked: a forged plan listing every customer as a target, consent withdrawn after the plan, and
hostile names and emails. No exported row may belong to a customer without email consent, and no cell may act as
a spreadsheet formula. The slow tests run the whole next night on the saved campaign (about two minutes), with
targets opting out after opting in, switching to SMS only and taking hostile names in the ERP export.
"""

from __future__ import annotations

import csv
import dataclasses
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import polars as pl
import pytest

from pipelines.campaigns import Audience, CampaignError, CampaignPlan, export_targets, plan_campaign, save_campaign
from pipelines.campaigns.files import campaign_files
from pipelines.exports import is_formula_like
from pipelines.ingest.contracts import find_contract
from pipelines.ingest.loader import load_table
from pipelines.publish.contacts import current_contacts
from pipelines.publish.snapshot import current_snapshot
from pipelines.settings import load_settings
from tests.conftest import AS_OF, World, open_warehouse, run_nightly, world_environ

pytestmark = pytest.mark.integration

NEXT_NIGHT = date(2026, 7, 1)
WITHDRAWN_AT = "2026-06-30T15:00:00Z"  # after the plan (noon), before the next night's cutoff
HOSTILE = {
    "first_name": '=HYPERLINK("http://evil.example","click")',
    "last_name": "+1 cmd|' /C calc'!A0",
    "email": "@SUM(1+1)@evil.example",
}
AUDIENCE = Audience(
    name='=HYPERLINK("http://evil.example","Spring")',
    channel="email",
    offer="+1 cmd",
    rank_by="churn_probability",
    has_purchased=True,
)


@dataclass(frozen=True)
class Planned:
    world: World
    plan: CampaignPlan
    root: Path  # holds a copy of the world's landing zone with the campaign saved in it
    snapshot: Path
    contacts: Path

    def read_snapshot(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.snapshot), read_only=True)

    def targets(self) -> pl.DataFrame:
        return self.plan.members.filter(pl.col("member_group") == "target").sort("customer_id")


@pytest.fixture(scope="module")
def planned(pipeline_run, tmp_path_factory: pytest.TempPathFactory) -> Planned:
    world, first = pipeline_run
    assert first.success
    snapshot = Path(current_snapshot(world.root / "published")["path"])
    with duckdb.connect(str(snapshot), read_only=True) as connection:
        plan = plan_campaign(connection, AUDIENCE, load_settings(world.environ), seed=2026)
    root = tmp_path_factory.mktemp("campaign")
    shutil.copytree(world.root / "landing", root / "landing")
    save_campaign(plan, root / "landing")
    return Planned(world, plan, root, snapshot, current_contacts(world.root / "published"))


def _latest_consents(landing: Path, cutoff: date) -> dict[tuple[str, str], tuple[datetime, str]]:
    """(contact, channel) -> (when, status) of its latest state recorded before ``cutoff`` (a local date), read
    from the consent export itself."""
    zone = ZoneInfo(load_settings().timezone)
    latest: dict[tuple[str, str], tuple[datetime, str]] = {}
    with (landing / "marketing" / "consents.csv").open(encoding="utf-8", newline="") as file:
        for row in csv.DictReader(file):
            recorded = datetime.strptime(row["updated_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            key = (row["contact_id"], row["channel"])
            if recorded.astimezone(zone).date() < cutoff and (key not in latest or recorded > latest[key][0]):
                latest[key] = (recorded, row["status"])
    return latest


def _assert_everyone_exported_consents(rows, contacts_of: dict[str, str], landing: Path, cutoff: date) -> None:
    """Each row's contact's own latest email consent is an opt-in, and so is its customer's latest over all the
    customer's contacts, as the consent export says."""
    latest = _latest_consents(landing, cutoff)
    for row in rows:
        assert latest[(row["contact_id"], "email")][1] == "opt_in", row
        states = [
            latest.get((contact, "email")) for contact, owner in contacts_of.items() if owner == row["customer_id"]
        ]
        assert max(state for state in states if state)[1] == "opt_in", row


def _exported(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def _contacts_of(connection: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(connection.execute("select contact_id, customer_id from marts.dim_crm_contacts").fetchall())


# --- on the session's published snapshot ---------------------------------------------------------------------------


def test_the_plan_keeps_exactly_the_customers_who_may_be_contacted(planned: Planned):
    """Eligible, counted here from the snapshot's tables in polars: bought before, an email address, email consent
    (the customer's and one of its contacts'), and no campaign contact within the cool-down before the start (the
    world's newsletters, sent to every subscriber the month before, do not count)."""
    plan = planned.plan
    with planned.read_snapshot() as snapshot:
        customers = snapshot.sql("select customer_id, has_email, has_email_consent from marts.customer_360").pl()
        purchased = snapshot.sql("select customer_id from marts.dim_customers where has_purchased").pl()
        contacts = snapshot.sql("select customer_id, has_email_consent from marts.dim_crm_contacts").pl()
        sends = snapshot.sql(
            # sends of campaigns with a member list: a newsletter to every subscriber cools nobody down
            "select customer_id, occurred_date as day from marts.fct_interactions where interaction_type = 'send' "
            "and campaign_id in (select campaign_id from marts.fct_campaign_contacts)"
        ).pl()
        listed = snapshot.sql(
            "select members.customer_id, campaigns.end_date as day from marts.fct_campaign_contacts as members "
            "join marts.dim_campaigns as campaigns using (campaign_id) where members.sends = 0"
        ).pl()
    since = plan.start_date - timedelta(days=plan.cooldown_days)
    recent = set(pl.concat([sends, listed]).filter(pl.col("day") >= since)["customer_id"])
    consenting_contact = set(contacts.filter(pl.col("has_email_consent"))["customer_id"])
    reachable = customers.filter(pl.col("customer_id").is_in(purchased["customer_id"].implode()))
    no_contact = reachable.filter(
        ~pl.col("has_email") | ~pl.col("customer_id").is_in(list(set(contacts["customer_id"])))
    )
    rest = reachable.join(no_contact, on="customer_id", how="anti")
    no_consent = rest.filter(~pl.col("has_email_consent") | ~pl.col("customer_id").is_in(list(consenting_contact)))
    rest = rest.join(no_consent, on="customer_id", how="anti")
    cooling = rest.filter(pl.col("customer_id").is_in(list(recent)))
    eligible = set(rest["customer_id"]) - recent
    assert plan.matched == reachable.height
    assert plan.exclusions == {
        "no_contact": no_contact.height,
        "no_consent": no_consent.height,
        "cool_down": cooling.height,
    }
    assert set(plan.members["customer_id"]) == eligible
    assert plan.targets + plan.controls == len(eligible) > 100


def test_the_saved_files_load_under_the_marketing_contracts(planned: Planned, tmp_path: Path):
    """Loaded by the real loader into a copy of the world's warehouse: every row read is loaded, and the staging
    models show the members' stratum and score and the campaign's logged draw."""
    plan = planned.plan
    shutil.copytree(planned.world.root / "warehouse", tmp_path / "warehouse")
    campaign_file, members_file = campaign_files(planned.root / "landing", plan.campaign_id)
    with open_warehouse(tmp_path / "warehouse" / "crm.duckdb", read_only=False) as warehouse:
        loads = {
            load.file: load
            for name in ("marketing/campaigns", "marketing/campaign_members")
            for load in load_table(warehouse, find_contract(name), planned.root / "landing", "campaign-test")
            if load.status != "unchanged"
        }
        members = warehouse.sql(
            "select contact_id, member_group, stratum, targeting_score from staging.stg_marketing__campaign_members "
            "where campaign_id = ?",
            params=[plan.campaign_id],
        ).pl()
        [(control_draw, audience)] = warehouse.execute(
            "select control_draw, audience from staging.stg_marketing__campaigns where campaign_id = ?",
            [plan.campaign_id],
        ).fetchall()
        strata = warehouse.execute(
            "select stratum, count(*), count(*) filter (where member_group = 'control') "
            "from raw.marketing__campaign_members where campaign_id = ? group by all",
            [plan.campaign_id],
        ).fetchall()
    campaign_load, members_load = loads[f"marketing/{campaign_file.name}"], loads[f"marketing/{members_file.name}"]
    assert set(loads) == {f"marketing/{campaign_file.name}", f"marketing/{members_file.name}"}
    assert (campaign_load.rows_read, campaign_load.rows_loaded, campaign_load.rows_quarantined) == (1, 1, 0)
    assert (members_load.rows_read, members_load.rows_loaded, members_load.rows_quarantined) == (
        plan.members.height,
        plan.members.height,
        0,
    )
    assert members_load.unknown_columns == () and campaign_load.unknown_columns == ()
    expected = plan.members.select("contact_id", "member_group", "stratum", "targeting_score")
    assert members.sort("contact_id").equals(expected.sort("contact_id"))  # scores survive the text round trip
    assert (control_draw, audience) == (plan.control_draw, AUDIENCE.describe())
    assert len(strata) > 3
    for stratum, count, controls in strata:
        assert abs(controls - plan.control_share * count) <= 0.5, (stratum, count, controls)


def test_before_the_night_the_export_reads_the_saved_campaign(planned: Planned):
    with planned.read_snapshot() as snapshot:
        result = export_targets(
            snapshot, planned.plan.campaign_id, planned.contacts, planned.root / "before.csv", planned.root / "landing"
        )
    assert result.left_out == {"control": planned.plan.controls, "no_consent": 0, "no_address": 0}
    assert {row["customer_id"] for row in _exported(result.path)} == set(planned.targets()["customer_id"])


def test_a_forged_plan_listing_everyone_as_a_target_exports_only_the_consented(planned: Planned):
    with planned.read_snapshot() as snapshot:
        everyone = snapshot.sql(
            "select customer_id, contact_id from marts.dim_crm_contacts "
            "qualify row_number() over (partition by customer_id order by contact_id) = 1"
        ).pl()
        forged = dataclasses.replace(
            planned.plan,
            members=everyone.with_columns(
                pl.lit("target").alias("member_group"),
                pl.lit("forged").alias("stratum"),
                pl.lit(None, dtype=pl.Float64).alias("targeting_score"),
                pl.lit(None, dtype=pl.Float64).alias("expected_value"),
            ),
        )
        result = export_targets(snapshot, forged, planned.contacts, planned.root / "forged.csv")
        contacts_of = _contacts_of(snapshot)
    rows = _exported(result.path)
    assert 0 < len(rows) < everyone.height and result.left_out["no_consent"] > 0
    _assert_everyone_exported_consents(rows, contacts_of, planned.world.landing, AS_OF)


def test_consent_withdrawn_after_the_plan_leaves_the_target_out(planned: Planned, tmp_path: Path):
    """A later snapshot where three targets' contacts opted out and three other targets' customers did (through
    another contact): the export of the same plan leaves all six out, and the control group as ever."""
    snapshot = tmp_path / "later.duckdb"
    shutil.copyfile(planned.snapshot, snapshot)
    targets = planned.targets()
    by_contact, by_customer = targets.head(3), targets.slice(3, 3)
    with duckdb.connect(str(snapshot)) as connection:
        connection.execute(
            "update marts.dim_crm_contacts set has_email_consent = false where list_contains(?, contact_id)",
            [by_contact["contact_id"].to_list()],
        )
        connection.execute(
            "update marts.customer_360 set has_email_consent = false where list_contains(?, customer_id)",
            [by_customer["customer_id"].to_list()],
        )
    with duckdb.connect(str(snapshot), read_only=True) as connection:
        result = export_targets(connection, planned.plan, planned.contacts, tmp_path / "later.csv")
    exported = {row["customer_id"] for row in _exported(result.path)}
    withdrawn = set(by_contact["customer_id"]) | set(by_customer["customer_id"])
    assert result.left_out == {"control": planned.plan.controls, "no_consent": 6, "no_address": 0}
    assert exported == set(targets["customer_id"]) - withdrawn


def test_hostile_names_and_emails_are_neutralised_in_every_cell(planned: Planned, tmp_path: Path):
    contacts = tmp_path / "contacts_copy.duckdb"
    shutil.copyfile(planned.contacts, contacts)
    hostile = planned.targets()["customer_id"].head(3).to_list()
    name = HOSTILE["first_name"] + " " + HOSTILE["last_name"]
    with duckdb.connect(str(contacts)) as connection:
        connection.execute(
            "update contacts.customer_contacts set full_name = ?, email = ? where list_contains(?, customer_id)",
            [name, HOSTILE["email"], hostile],
        )
    with planned.read_snapshot() as snapshot:
        result = export_targets(snapshot, planned.plan, contacts, tmp_path / "hostile.csv")
    rows = _exported(result.path)
    assert not [cell for row in rows for cell in row.values() if is_formula_like(cell)]
    attacked = [row for row in rows if row["customer_id"] in hostile]
    assert [(row["full_name"], row["email"]) for row in attacked] == [("'" + name, "'" + HOSTILE["email"])] * 3
    assert {(row["campaign_name"], row["offer"]) for row in rows} == {("'" + AUDIENCE.name, "'" + AUDIENCE.offer)}
    assert set(rows[0]) == {"campaign_id", "campaign_name", "channel", "offer", "customer_id", "contact_id"} | {
        "full_name",
        "email",
    }


def test_without_the_contacts_file_the_export_says_so(planned: Planned):
    with planned.read_snapshot() as snapshot, pytest.raises(CampaignError, match="no contacts file"):
        export_targets(snapshot, planned.plan, None, planned.root / "none.csv")
    assert not (planned.root / "none.csv").exists()


# --- the next night (slow) ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignNight:
    planned: Planned
    root: Path  # the copy the next night ran on
    withdrawn: frozenset[str]  # customers whose listed contact opted out of email after the plan
    sms_only: frozenset[str]  # ... and opted in to SMS instead
    hostile: frozenset[str]  # customers given hostile names and emails in the ERP export

    def snapshot(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(current_snapshot(self.root / "published")["path"], read_only=True)


@pytest.fixture(scope="module")
def campaign_night(planned: Planned, tmp_path_factory: pytest.TempPathFactory) -> CampaignNight:
    root = tmp_path_factory.mktemp("campaign_night")
    shutil.copytree(planned.root / "landing", root / "landing")
    shutil.copytree(planned.world.root / "warehouse", root / "warehouse")
    targets = planned.targets()
    erp_anchored = _contacts_carrying_their_customer_number(root / "landing")
    hostile = targets.filter(
        pl.col("contact_id").replace_strict(erp_anchored, default=None) == pl.col("customer_id")
    ).head(3)
    others = targets.join(hostile, on="customer_id", how="anti")
    withdrawn, sms_only = others.head(4), others.slice(4, 3)
    _rewrite_consents(root / "landing", withdrawn["contact_id"].to_list(), sms_only["contact_id"].to_list())
    _make_hostile(root / "landing", hostile["customer_id"].to_list())
    result = run_nightly(world_environ(root), NEXT_NIGHT)
    assert result.success
    return CampaignNight(
        planned,
        root,
        frozenset(withdrawn["customer_id"]),
        frozenset(sms_only["customer_id"]),
        frozenset(hostile["customer_id"]),
    )


def _contacts_carrying_their_customer_number(landing: Path) -> dict[str, str]:
    """CRM contact -> the ERP customer number it carries: such a contact stays with its customer whatever the
    customer's name and email become."""
    with (landing / "crm" / "contacts.csv").open(encoding="utf-8-sig", newline="") as file:
        return {row["ID"]: row["ERP Customer No"] for row in csv.DictReader(file) if row["ERP Customer No"]}


def _rewrite_consents(landing: Path, withdrawn: list[str], sms_only: list[str]) -> None:
    path = landing / "marketing" / "consents.csv"
    with path.open(encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        header, rows = reader.fieldnames, list(reader)
    switched_to_sms = set()
    for row in rows:
        if row["contact_id"] in withdrawn or row["contact_id"] in sms_only:
            if row["channel"] == "email":
                row.update(status="opt_out", updated_at=WITHDRAWN_AT)
            elif row["channel"] == "sms" and row["contact_id"] in sms_only:
                row.update(status="opt_in", updated_at=WITHDRAWN_AT)
                switched_to_sms.add(row["contact_id"])
    rows += [
        {"contact_id": contact, "channel": "sms", "status": "opt_in", "updated_at": WITHDRAWN_AT}
        for contact in sorted(set(sms_only) - switched_to_sms)
    ]
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def _make_hostile(landing: Path, customers: list[str]) -> None:
    path = landing / "erp" / "customers.csv"
    with path.open(encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file, delimiter=";")
        header, rows = reader.fieldnames, list(reader)
    for row in rows:
        if row["customer_no"] in customers:
            row.update(HOSTILE)
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=header, delimiter=";")
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.slow
def test_the_night_counts_every_member_of_the_saved_campaign(campaign_night: CampaignNight):
    plan = campaign_night.planned.plan
    campaign_file, members_file = campaign_files(campaign_night.root / "landing", plan.campaign_id)
    with open_warehouse(campaign_night.root / "warehouse" / "crm.duckdb") as warehouse:
        ledger = warehouse.execute(
            "select file, rows_read, rows_loaded, rows_quarantined from meta.load_ledger where list_contains(?, file)",
            [[f"marketing/{campaign_file.name}", f"marketing/{members_file.name}"]],
        ).fetchall()
    assert sorted(ledger) == sorted(
        [
            (f"marketing/{campaign_file.name}", 1, 1, 0),
            (f"marketing/{members_file.name}", plan.members.height, plan.members.height, 0),
        ]
    )
    with campaign_night.snapshot() as snapshot:
        counted = dict(
            snapshot.execute(
                "select member_group, count(*) from marts.fct_campaign_contacts where campaign_id = ? group by all",
                [plan.campaign_id],
            ).fetchall()
        )
        [sizes] = snapshot.execute(
            "select target_members, control_members from marts.dim_campaigns where campaign_id = ?",
            [plan.campaign_id],
        ).fetchall()
    assert counted == {"target": plan.targets, "control": plan.controls}
    assert sizes == (plan.targets, plan.controls)


@pytest.mark.slow
def test_after_the_night_the_export_leaves_out_who_opted_out_and_neutralises_hostile_details(
    campaign_night: CampaignNight,
):
    assert (len(campaign_night.withdrawn), len(campaign_night.sms_only), len(campaign_night.hostile)) == (4, 3, 3)
    plan, root = campaign_night.planned.plan, campaign_night.root
    with campaign_night.snapshot() as snapshot:
        result = export_targets(snapshot, plan.campaign_id, current_contacts(root / "published"), root / "after.csv")
        contacts_of = _contacts_of(snapshot)
    rows = _exported(result.path)
    exported = {row["customer_id"] for row in rows}
    controls = set(plan.members.filter(pl.col("member_group") == "control")["customer_id"])
    assert rows and not exported & (controls | campaign_night.withdrawn | campaign_night.sms_only)
    assert result.left_out["control"] == plan.controls
    assert result.left_out["no_consent"] >= len(campaign_night.withdrawn | campaign_night.sms_only)
    _assert_everyone_exported_consents(rows, contacts_of, root / "landing", NEXT_NIGHT)
    assert not [cell for row in rows for cell in row.values() if is_formula_like(cell)]
    attacked = [row for row in rows if row["customer_id"] in campaign_night.hostile]
    name = "'" + HOSTILE["first_name"] + " " + HOSTILE["last_name"]
    # the warehouse writes emails in lower case
    assert [(row["full_name"], row["email"]) for row in attacked] == [(name, "'" + HOSTILE["email"].lower())] * 3


@pytest.mark.slow
def test_the_next_plan_lets_the_campaigns_members_cool_down(campaign_night: CampaignNight):
    planned = campaign_night.planned
    with campaign_night.snapshot() as snapshot:
        again = plan_campaign(
            snapshot, dataclasses.replace(AUDIENCE, name="Again"), load_settings(planned.world.environ), seed=1
        )
    earlier = set(planned.plan.members["customer_id"])
    assert not earlier & set(again.members["customer_id"])
    assert again.exclusions["cool_down"] >= len(earlier - campaign_night.withdrawn - campaign_night.sms_only)
