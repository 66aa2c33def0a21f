"""Campaign planning on a small hand-built snapshot: who is excluded and why, the stratified control draw, the seed,
the files written into the landing zone (atomic, never overwritten), and how results are read."""

from __future__ import annotations

import dataclasses
import os
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from pipelines.campaigns import (
    Audience,
    CampaignError,
    campaign_results,
    is_saved,
    plan_campaign,
    result_lines,
    save_campaign,
    stratified_control,
)
from pipelines.campaigns.files import campaign_files, members_frame
from pipelines.ingest.contracts import find_contract
from pipelines.settings import load_settings

AS_OF = date(2026, 6, 30)
SEGMENTS = ("champions", "at risk", "lost")

CUSTOMER_360 = """create table marts.customer_360 (
    customer_id varchar, customer_type varchar, country_code varchar, rfm_segment varchar, behaviour_segment varchar,
    churn_risk_band varchar, churn_probability double, clv double, p_alive double, loyalty_tier varchar,
    tier_movement varchar, preferred_channel_by_interactions varchar, has_email boolean, has_phone boolean,
    has_email_consent boolean, has_sms_consent boolean, has_phone_consent boolean, as_of_date date)"""
CRM_CONTACTS = """create table marts.dim_crm_contacts (
    contact_id varchar, customer_id varchar, is_prospect boolean, has_email_consent boolean, has_sms_consent boolean,
    has_phone_consent boolean, email_consent_updated_at timestamp, sms_consent_updated_at timestamp,
    phone_consent_updated_at timestamp)"""
OTHER_TABLES = (
    "create table marts.dim_customers (customer_id varchar, has_purchased boolean)",
    "create table marts.fct_interactions (customer_id varchar, interaction_type varchar, occurred_date date, "
    "campaign_id varchar)",
    "create table marts.fct_campaign_contacts (campaign_id varchar, customer_id varchar, contact_id varchar, "
    "member_group varchar, sends bigint)",
    "create table marts.dim_campaigns (campaign_id varchar, campaign_name varchar, channel_id varchar, "
    "offer_category_name varchar, end_date date)",
)


@dataclasses.dataclass
class Customer:
    customer_id: str
    segment: str | None = "champions"
    has_email: bool = True
    email_consent: bool = True
    sms_consent: bool = False
    contacts: tuple[tuple[str, bool, str], ...] | None = None  # (contact_id, email opt-in, recorded at); None: one
    clv: float | None = 100.0
    churn_probability: float | None = 0.5
    country: str = "ES"


def build_snapshot(path: Path, customers: list[Customer], sends=(), memberships=(), campaigns=()) -> Path:
    """A snapshot holding only what planning reads, with the customers as given."""
    people, contacts = [], []
    for customer in customers:
        scores = (customer.segment, None, "high", customer.churn_probability, customer.clv, 0.5, "bronze", "stable")
        consents = (customer.has_email, True, customer.email_consent, customer.sms_consent, False)
        people.append((customer.customer_id, "customer", customer.country, *scores, "web", *consents, AS_OF))
        listed = customer.contacts
        if listed is None:
            listed = ((f"K-{customer.customer_id}", customer.email_consent, "2025-01-01"),)
        contacts += [
            (contact_id, customer.customer_id, False, opted_in, customer.sms_consent, False, recorded, recorded, None)
            for contact_id, opted_in, recorded in listed
        ]
    with duckdb.connect(str(path)) as connection:
        connection.execute("create schema marts")
        for statement in (CUSTOMER_360, CRM_CONTACTS, *OTHER_TABLES):
            connection.execute(statement)
        insert(connection, "marts.customer_360", people)
        insert(connection, "marts.dim_customers", [(row[0], True) for row in people])
        insert(connection, "marts.dim_crm_contacts", contacts)
        # a send is of a campaign with a member list ("TARGETED"), unless it names another (a newsletter's)
        rows = [
            (customer, "send", sent_on, campaign[0] if campaign else "TARGETED")
            for customer, sent_on, *campaign in sends
        ]
        insert(connection, "marts.fct_interactions", rows)
        members = [(campaign, customer, f"K-{customer}", group, 0) for campaign, customer, group in memberships]
        members += [
            ("TARGETED", customer, f"K-{customer}", "target", 1) for customer, _, *campaign in sends if not campaign
        ]
        insert(connection, "marts.fct_campaign_contacts", members)
        rows = [(campaign, "earlier", "email", None, end_date) for campaign, end_date in campaigns]
        insert(connection, "marts.dim_campaigns", rows)
    return path


def insert(connection: duckdb.DuckDBPyConnection, table: str, rows: list[tuple]) -> None:
    """All ``rows`` in one statement (row by row, a file commits each)."""
    if rows:
        columns = [list(column) for column in zip(*rows, strict=True)]
        connection.execute(f"insert into {table} select {', '.join(['unnest(?)'] * len(columns))}", columns)


NO_LANDING_ZONE = Path(__file__).parent / "no_landing_zone"  # does not exist: no campaign saved and not ingested


def settings(**changes):
    defaults = {"campaign_cooldown_days": 30, "campaign_control_share": 0.1, "landing_dir": NO_LANDING_ZONE}
    return load_settings().replace(**{**defaults, **changes})


def open_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=True)


def crowd(count: int) -> list[Customer]:
    """``count`` eligible customers spread unevenly over the segments (and some with none: prospects)."""
    rng = np.random.default_rng(3)
    segments = rng.choice([*SEGMENTS, None], size=count, p=[0.5, 0.3, 0.15, 0.05])
    return [Customer(f"C{index:05d}", segment=segment, clv=float(index)) for index, segment in enumerate(segments)]


# --- exclusions ---------------------------------------------------------------------------------------------------


@pytest.fixture
def special_cases(tmp_path: Path) -> Path:
    customers = [
        Customer("OK"),
        Customer("NO_CRM_CONTACT", contacts=()),
        Customer("NO_EMAIL_ADDRESS", has_email=False),
        Customer("SMS_ONLY", email_consent=False, sms_consent=True),
        # two contacts: the older opted in, the newer opted out; the customer's consent is the latest: none
        Customer(
            "OPTED_OUT_LATER", email_consent=False, contacts=(("K1", True, "2024-01-01"), ("K2", False, "2026-03-01"))
        ),
        # the customer says yes but none of its contacts does: no contact may be listed
        Customer("NO_CONSENTED_CONTACT", contacts=(("K3", False, "2025-01-01"),)),
        Customer("SENT_RECENTLY"),
        Customer("SENT_LONG_AGO"),
        Customer("HELD_OUT_RECENTLY"),
        # two consented contacts: the later opt-in is the one listed
        Customer("TWO_CONTACTS", contacts=(("K4", True, "2024-01-01"), ("K5", True, "2025-06-01"))),
    ]
    # a newsletter (a campaign without a member list) sent to OK last week does not cool OK down
    sends = [
        ("SENT_RECENTLY", date(2026, 6, 10)),
        ("SENT_LONG_AGO", date(2026, 5, 30)),
        ("OK", date(2026, 6, 24), "NL"),
    ]
    memberships = [("EARLIER", "HELD_OUT_RECENTLY", "control")]
    campaigns = [("EARLIER", date(2026, 6, 5))]
    return build_snapshot(tmp_path / "snapshot.duckdb", customers, sends, memberships, campaigns)


def test_each_excluded_customer_is_counted_once_under_the_first_reason_that_applies(special_cases: Path):
    with open_read_only(special_cases) as connection:
        plan = plan_campaign(connection, Audience(name="Test", channel="email"), settings(), seed=1)
    assert plan.matched == 10
    assert plan.exclusions == {"no_contact": 2, "no_consent": 3, "cool_down": 2}
    listed = dict(zip(plan.members["customer_id"], plan.members["contact_id"], strict=True))
    assert listed == {"OK": "K-OK", "SENT_LONG_AGO": "K-SENT_LONG_AGO", "TWO_CONTACTS": "K5"}


def test_the_cool_down_counts_back_from_the_start_date(special_cases: Path):
    audience = Audience(name="Test", channel="email", start_date=date(2026, 7, 11))  # 30 days back: 2026-06-11
    with open_read_only(special_cases) as connection:
        plan = plan_campaign(connection, audience, settings(), seed=1)
    assert plan.exclusions["cool_down"] == 0
    with open_read_only(special_cases) as connection:
        longer = plan_campaign(connection, audience, settings(campaign_cooldown_days=45), seed=1)
    assert longer.exclusions["cool_down"] == 3  # from 2026-05-27: the send of 2026-05-30 counts too


def test_consent_is_the_campaigns_channel(special_cases: Path):
    with open_read_only(special_cases) as connection:
        plan = plan_campaign(connection, Audience(name="Test", channel="sms"), settings(), seed=1)
    assert set(plan.members["customer_id"]) == {"SMS_ONLY"}


def test_an_offer_filter_without_offers_in_the_snapshot_selects_nobody_and_says_why(special_cases: Path):
    audience = Audience(name="Test", channel="email", offer_item="Herbs")
    with open_read_only(special_cases) as connection:
        plan = plan_campaign(connection, audience, settings(), seed=1)
    assert plan.members.height == 0 and plan.matched == 0
    assert any("ml.next_best_offers is not in the published snapshot" in note for note in plan.notes)


def test_filters_and_ranking_choose_the_top_customers_by_the_score(tmp_path: Path):
    snapshot = build_snapshot(tmp_path / "snapshot.duckdb", crowd(300))
    audience = Audience(
        name="Top", channel="email", segments=("Champions", "at risk"), clv=(50, None), rank_by="clv", limit=40
    )
    with open_read_only(snapshot) as connection:
        plan = plan_campaign(connection, audience, settings(), seed=5)
        (expected,) = connection.execute(
            "select list(customer_id order by clv desc) from (select * from marts.customer_360 "
            "where rfm_segment in ('champions', 'at risk') and clv >= 50 order by clv desc limit 40)"
        ).fetchone()
    assert sorted(plan.members["customer_id"]) == sorted(expected)
    assert plan.members["targeting_score"].to_list() == plan.members["expected_value"].to_list()
    assert plan.beyond_limit == plan.matched - 40


# --- the control draw ---------------------------------------------------------------------------------------------


def test_each_stratum_holds_out_its_share_rounded():
    frame = pl.DataFrame(
        {
            "customer_id": [f"C{index}" for index in range(1000)],
            "stratum": ["a"] * 503 + ["b"] * 250 + ["c"] * 215 + ["d"] * 25 + ["e"] * 7,
        }
    )
    for share in (0.1, 0.25, 0.5):
        drawn = stratified_control(frame, share, seed=9)
        counts = drawn.group_by("stratum").agg(
            pl.len().alias("members"), (pl.col("member_group") == "control").sum().alias("control")
        )
        for stratum, members, control in counts.iter_rows():
            assert abs(control - share * members) <= 0.5, (share, stratum, members, control)
        assert drawn["customer_id"].to_list() == frame["customer_id"].to_list()  # order kept, nobody lost


def test_the_draw_is_random_within_a_stratum():
    """Over many seeds every customer is drawn about as often as the share says, wherever they sort."""
    frame = pl.DataFrame({"customer_id": [f"C{index:03d}" for index in range(40)], "stratum": ["a"] * 40})
    draws = 2000
    drawn = np.zeros(40)
    for seed in range(draws):
        drawn += (stratified_control(frame, 0.25, seed)["member_group"] == "control").to_numpy()
    frequency = drawn / draws
    # binomial(2000, 0.25): standard deviation 0.0097; 5 of them is far beyond what chance gives 40 customers
    assert np.abs(frequency - 0.25).max() < 0.05, frequency
    assert frequency[:10].mean() == pytest.approx(frequency[-10:].mean(), abs=0.03)


def test_the_same_seed_draws_the_same_group_and_another_seed_another(tmp_path: Path):
    snapshot = build_snapshot(tmp_path / "snapshot.duckdb", crowd(400))
    audience = Audience(name="Seeded", channel="email")
    with open_read_only(snapshot) as connection:
        first = plan_campaign(connection, audience, settings(), seed=123)
        again = plan_campaign(connection, audience, settings(), seed=123)
        other = plan_campaign(connection, audience, settings(), seed=124)
    assert first.members.equals(again.members)
    controls = {
        name: set(plan.members.filter(pl.col("member_group") == "control")["customer_id"])
        for name, plan in (("first", first), ("other", other))
    }
    assert controls["first"] != controls["other"]
    assert len(controls["first"]) == len(controls["other"])
    assert "seed 123" in first.control_draw and "seed 123" in "\n".join(first.summary())


def test_a_plan_without_a_seed_draws_one_and_records_it(tmp_path: Path):
    snapshot = build_snapshot(tmp_path / "snapshot.duckdb", crowd(100))
    with open_read_only(snapshot) as connection:
        plan = plan_campaign(connection, Audience(name="Unseeded", channel="email"), settings())
        replayed = plan_campaign(connection, Audience(name="Unseeded", channel="email"), settings(), seed=plan.seed)
    assert plan.members.equals(replayed.members)


def test_the_stratum_of_a_customer_without_a_segment_is_named(tmp_path: Path):
    snapshot = build_snapshot(tmp_path / "snapshot.duckdb", crowd(200))
    with open_read_only(snapshot) as connection:
        plan = plan_campaign(connection, Audience(name="All", channel="email"), settings(), seed=2)
    assert set(plan.members["stratum"]) == {*SEGMENTS, "no segment"}


# --- the files --------------------------------------------------------------------------------------------------


@pytest.fixture
def plan(tmp_path: Path):
    snapshot = build_snapshot(tmp_path / "snapshot.duckdb", crowd(120))
    audience = Audience(name='=HYPERLINK("http://x","Spring"), with a comma', channel="email", offer="Herbs")
    with open_read_only(snapshot) as connection:
        return plan_campaign(connection, audience, settings(), seed=8)


def test_the_saved_files_are_what_the_marketing_contracts_read(plan, tmp_path: Path):
    landing = tmp_path / "landing"
    campaign_path, members_path = save_campaign(plan, landing)
    assert (campaign_path, members_path) == campaign_files(landing, plan.campaign_id)
    for contract_name, path in (("marketing/campaigns", campaign_path), ("marketing/campaign_members", members_path)):
        assert find_contract(contract_name).matching_files(landing) == [path]
    campaign = pl.read_csv(campaign_path, infer_schema=False).row(0, named=True)
    assert campaign["name"] == plan.audience.name  # the landing file keeps the name as it is; exports neutralise
    assert campaign["control_draw"] == plan.control_draw and "seed 8" in campaign["control_draw"]
    members = pl.read_csv(members_path, infer_schema=False)
    assert members.height == plan.members.height
    assert members["email"].null_count() == members.height and members["phone"].null_count() == members.height
    assert set(members["assigned_at"]) == {"2026-06-30T10:00:00Z"}  # noon in Madrid (summer time)
    assert sorted(os.listdir(landing / "marketing")) == sorted([campaign_path.name, members_path.name])


def test_a_saved_campaign_is_never_overwritten(plan, tmp_path: Path):
    landing = tmp_path / "landing"
    assert not is_saved(landing, plan.campaign_id)
    paths = save_campaign(plan, landing)
    assert is_saved(landing, plan.campaign_id)
    before = [path.read_bytes() for path in paths]
    redrawn = dataclasses.replace(plan, seed=9, members=plan.members.reverse())
    with pytest.raises(CampaignError, match="saved already"):
        save_campaign(redrawn, landing)
    assert [path.read_bytes() for path in paths] == before


def test_a_campaign_file_appearing_while_saving_leaves_nothing_half_written(plan, tmp_path: Path, monkeypatch):
    """Another save of the same id wins the race for the campaign file: ours leaves no member file behind."""
    landing = tmp_path / "landing"
    campaign_path, _ = campaign_files(landing, plan.campaign_id)
    real_link = os.link

    def link_after_a_rival(source, target):
        if Path(target) == campaign_path:
            campaign_path.write_text("the rival's campaign\n")
        return real_link(source, target)

    monkeypatch.setattr(os, "link", link_after_a_rival)
    with pytest.raises(CampaignError, match="never overwritten"):
        save_campaign(plan, landing)
    assert campaign_path.read_text() == "the rival's campaign\n"
    assert sorted(os.listdir(landing / "marketing")) == [campaign_path.name]


def test_a_campaign_saved_but_not_ingested_yet_cools_its_members_down(tmp_path: Path):
    snapshot = build_snapshot(tmp_path / "snapshot.duckdb", crowd(120))
    landing = tmp_path / "landing"
    with open_read_only(snapshot) as connection:
        first = plan_campaign(
            connection, Audience(name="First", channel="email"), settings(landing_dir=landing), seed=1
        )
        save_campaign(first, landing)
        second = plan_campaign(
            connection, Audience(name="Second", channel="email"), settings(landing_dir=landing), seed=2
        )
        later = Audience(name="Later", channel="email", start_date=first.end_date + timedelta(days=31))
        after_cool_down = plan_campaign(connection, later, settings(landing_dir=landing), seed=3)
    # every member of the first, targets and control alike, is cooling down for the second: nobody is left
    assert second.exclusions["cool_down"] == first.members.height and second.members.is_empty()
    assert after_cool_down.exclusions["cool_down"] == 0


def test_a_plan_the_snapshot_already_knows_or_without_members_is_refused(plan, tmp_path: Path):
    with pytest.raises(CampaignError, match="already holds a campaign"):
        save_campaign(dataclasses.replace(plan, id_taken=True), tmp_path / "landing")
    with pytest.raises(CampaignError, match="no members"):
        save_campaign(dataclasses.replace(plan, members=plan.members.clear()), tmp_path / "landing")
    assert not (tmp_path / "landing").exists()


def test_member_rows_carry_the_stratum_and_score_but_no_contact_details(plan):
    rows = members_frame(plan)
    assert rows.columns == [
        "campaign_id",
        "contact_id",
        "email",
        "phone",
        "member_group",
        "assigned_at",
        "stratum",
        "targeting_score",
    ]
    assert rows["stratum"].to_list() == plan.members["stratum"].to_list()


# --- audiences ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"channel": "fax"}, "channel 'fax'"),
        ({"name": " "}, "needs a name"),
        ({"clv": (500, 100)}, "CLV: the minimum 500 is above the maximum 100"),
        ({"limit": 10}, "give a positive limit and rank_by"),
        ({"rank_by": "age"}, "rank by 'age'"),
        ({"control_share": 1.0}, "below 1"),
        ({"campaign_id": "../etc"}, "letters, digits"),
        ({"start_date": date(2026, 7, 2), "end_date": date(2026, 7, 1)}, "ends"),
        ({"offer_max_rank": 3}, "needs the offer item"),
    ],
)
def test_an_audience_that_cannot_be_planned_says_why(changes, message):
    with pytest.raises(CampaignError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Audience(**{"name": "A", "channel": "email", **changes})


def test_a_campaign_cannot_start_before_it_is_planned(special_cases: Path):
    audience = Audience(name="Late", channel="email", start_date=date(2026, 6, 1))
    with open_read_only(special_cases) as connection, pytest.raises(CampaignError, match="before it is planned"):
        plan_campaign(connection, audience, settings(), seed=1)


def test_the_audience_describes_itself_in_words():
    audience = Audience(
        name="A", channel="email", segments=["at risk"], clv=(100, None), has_purchased=True, rank_by="clv", limit=50
    )
    assert audience.segments == ("at risk",)
    assert audience.describe() == "RFM segment in at risk; CLV from 100; has purchased; top 50 ranked by CLV"
    assert Audience(name="A", channel="sms").describe() == "everyone"


# --- results ------------------------------------------------------------------------------------------------------


def test_results_read_the_measurement_mart_or_say_it_is_absent(tmp_path: Path):
    path = tmp_path / "results.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("create schema marts")
    with open_read_only(path) as connection:
        assert campaign_results(connection) is None
    with duckdb.connect(str(path)) as connection:
        connection.execute(
            "create table marts.rpt_campaign_results as select * from (values "
            "('C1', 'Spring', 'email', 'campaign', null, 900, 100, 0.25, 0.20, 0.05, 0.01, 0.09, 1234.5, true, null), "
            "('C1', 'Spring', 'email', 'segment', 'lost', 90, 10, 0.2, 0.1, 0.1, 0.0, 0.2, 10.0, true, null), "
            "('C2', 'Tool', 'sms', 'campaign', null, 500, 0, 0.3, null, null, null, null, null, false, "
            "'No control group: lift cannot be measured.')) as t(campaign_id, campaign_name, channel, breakdown, "
            "breakdown_value, target_members, control_members, target_conversion_rate, control_conversion_rate, "
            "conversion_lift, conversion_lift_low, conversion_lift_high, incremental_revenue, is_window_closed, note)"
        )
    with open_read_only(path) as connection:
        every = campaign_results(connection)
        one = campaign_results(connection, "C2")
    assert every["campaign_id"].to_list() == ["C1", "C2"] and one["campaign_id"].to_list() == ["C2"]
    assert result_lines(every) == [
        "C1 Spring (email): 900 targets, 100 control; conversion 25.0% against 20.0%: lift +5.0 points "
        "(95% interval +1.0 points to +9.0 points)",
        "C2 Tool (sms): 500 targets, 0 control; lift not measured",
        "    No control group: lift cannot be measured.",
    ]
