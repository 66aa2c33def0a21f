"""Planning a campaign on the published snapshot: who is eligible, who is excluded and why, and a random control
group stratified by segment, drawn once and logged as such."""

from __future__ import annotations

import math
import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import polars as pl

from pipelines.campaigns.audience import RANK_SCORES, Audience, CampaignError
from pipelines.campaigns.selection import CANDIDATE_SCHEMA, pending_contacts, select_candidates
from pipelines.publish.snapshot import current_snapshot, snapshot_tables
from pipelines.settings import Settings

# Why a customer who matches the filters is left out, in the order they are tested: a customer is counted once,
# under the first that applies.
EXCLUSION_REASONS = {
    "no_contact": "no CRM contact, or no {address} for the channel",
    "no_consent": "no consent for {channel} at the snapshot's date",
    "cool_down": "contacted by a campaign within {days} days before the start",
}
ADDRESS_WORDS = {"email": "email address", "sms": "phone number", "phone": "phone number"}
STRATUM = "RFM segment"
CAMPAIGN_DAYS = 28  # a campaign without an end date lasts four weeks
EXPECTED_VALUE = (
    "the targets' CLV (marts.customer_360.clv: expected spend over the CLV horizon, discounted): the value at stake "
    "in the targets, not what the campaign adds"
)
REQUIRED_TABLES = (
    "marts.customer_360",
    "marts.dim_customers",
    "marts.dim_crm_contacts",
    "marts.fct_interactions",
    "marts.fct_campaign_contacts",
    "marts.dim_campaigns",
)
OFFERS_TABLE = "ml.next_best_offers"
MEMBER_COLUMNS = ("customer_id", "contact_id", "member_group", "stratum", "targeting_score", "expected_value")


@dataclass(frozen=True)
class CampaignPlan:
    """A campaign ready to save: its members (customer_id, contact_id, member_group target|control, stratum,
    targeting_score, expected_value) and the account of who was left out and how the control group was drawn."""

    campaign_id: str
    audience: Audience
    snapshot_as_of: date
    plan_date: date
    start_date: date
    end_date: date
    control_share: float
    seed: int
    drawn_at: datetime
    assigned_at: datetime  # when the members joined: noon of the plan date, business time
    matched: int  # customers matching the filters
    exclusions: dict[str, int]  # by EXCLUSION_REASONS code, each excluded customer once
    beyond_limit: int  # eligible customers left out by the audience's limit
    members: pl.DataFrame
    cooldown_days: int
    currency: str
    id_taken: bool = False  # the snapshot already knows a campaign of this id
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def channel(self) -> str:
        return self.audience.channel

    @property
    def targets(self) -> int:
        return self.members.filter(pl.col("member_group") == "target").height

    @property
    def controls(self) -> int:
        return self.members.filter(pl.col("member_group") == "control").height

    @property
    def expected_value(self) -> float:
        """Sum of the targets' CLV (a target without one counts 0): see EXPECTED_VALUE."""
        targets = self.members.filter(pl.col("member_group") == "target")
        return float(targets["expected_value"].fill_null(0).sum())

    @property
    def targets_without_value(self) -> int:
        return self.members.filter((pl.col("member_group") == "target") & pl.col("expected_value").is_null()).height

    @property
    def control_draw(self) -> str:
        """How the control group was drawn, in words: the campaign file records it."""
        return (
            f"random: {self.control_share:.0%} of each {STRATUM}'s eligible customers (rounded), seed {self.seed}, "
            f"drawn {self.drawn_at:%Y-%m-%dT%H:%M:%SZ} on the snapshot as of {self.snapshot_as_of}"
        )

    def exclusion_words(self) -> dict[str, str]:
        words = {"address": ADDRESS_WORDS[self.channel], "channel": self.channel, "days": self.cooldown_days}
        return {code: text.format(**words) for code, text in EXCLUSION_REASONS.items()}

    def summary(self) -> list[str]:
        """The plan in lines of words, as the command line and the campaigns page show it."""
        audience = self.audience
        words = self.exclusion_words()
        excluded = sum(self.exclusions.values())
        lines = [
            f"Campaign {self.campaign_id}: {audience.name} ({self.channel}), {self.start_date} to {self.end_date}",
            f"Planned on {self.plan_date} from the snapshot as of {self.snapshot_as_of}",
            f"Audience: {audience.describe()}",
            f"Matched the filters: {self.matched:,} customers",
            f"Excluded: {excluded:,}",
        ]
        lines += [f"  {self.exclusions[code]:>9,}  {code}: {words[code]}" for code in EXCLUSION_REASONS]
        if self.beyond_limit:
            lines.append(f"Left out by the limit of {audience.limit:,}: {self.beyond_limit:,}")
        lines += [
            f"Members: {self.members.height:,} = {self.targets:,} targets + {self.controls:,} control",
            f"Control group: {self.control_draw}",
            f"Expected value: {self.currency} {self.expected_value:,.0f}, {EXPECTED_VALUE}"
            + (f"; {self.targets_without_value:,} targets without a CLV count 0" if self.targets_without_value else ""),
        ]
        if audience.rank_by:
            lines.append(f"Targeting score: {RANK_SCORES[audience.rank_by]} (members' targeting_score, for Qini)")
        return lines + [f"Note: {note}" for note in self.notes]


def open_published(published_dir: Path) -> tuple[duckdb.DuckDBPyConnection, dict]:
    """A read-only connection to the current published snapshot and its pointer (current.json)."""
    pointer = current_snapshot(Path(published_dir))
    if pointer is None or not Path(pointer["path"]).exists():
        raise CampaignError(f"nothing is published in {published_dir}: run `crm run` first")
    return duckdb.connect(pointer["path"], read_only=True), pointer


def plan_campaign(
    connection: duckdb.DuckDBPyConnection,
    audience: Audience,
    settings: Settings,
    seed: int | None = None,
    plan_date: date | None = None,
) -> CampaignPlan:
    """Plan ``audience`` on the published snapshot ``connection`` (read-only): the customers matching its filters,
    less those with no CRM contact or address for the channel, no consent for it, or a contact within the
    campaign_cooldown_days setting before the start; ranked and cut by the audience's score and limit; then a
    control group of the audience's control share (else the campaign_control_share setting) drawn at random
    within each RFM segment (:func:`stratified_control`) with ``seed`` (a fresh random one when None; the plan
    records it). ``plan_date`` defaults to the snapshot's as-of date, the day the data end."""
    tables = snapshot_tables(connection)
    missing = [table for table in REQUIRED_TABLES if table not in tables]
    if missing:
        raise CampaignError(
            f"the published snapshot lacks {', '.join(missing)} (published by an older release): run `crm run` again"
        )
    [(snapshot_as_of,)] = connection.execute("select max(as_of_date) from marts.customer_360").fetchall()
    if snapshot_as_of is None:
        raise CampaignError("the published snapshot holds no customers")
    plan_date = plan_date or snapshot_as_of
    start_date = audience.start_date or plan_date
    end_date = audience.end_date or start_date + timedelta(days=CAMPAIGN_DAYS - 1)
    if start_date < plan_date:
        raise CampaignError(f"the campaign starts ({start_date}) before it is planned ({plan_date})")
    if end_date < start_date:
        raise CampaignError(f"the campaign ends ({end_date}) before it starts ({start_date})")
    share = settings.campaign_control_share if audience.control_share is None else audience.control_share
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    notes = []
    with_offers = OFFERS_TABLE in tables
    if audience.uses_offers and not with_offers:
        notes.append(
            f"{OFFERS_TABLE} is not in the published snapshot (the next best offers have not run): "
            + (
                "no customer can match the offer filter"
                if audience.offer_item
                else "nobody can be ranked by it, so nobody is selected"
            )
        )
        candidates = pl.DataFrame(schema=CANDIDATE_SCHEMA)
    else:
        cooling_from = start_date - timedelta(days=settings.campaign_cooldown_days)
        candidates = select_candidates(connection, audience, cooling_from, with_offers)
        pending = pending_contacts(connection, settings.landing_dir, cooling_from)
        candidates = candidates.with_columns(
            exclusion_reason=pl.when(
                pl.col("exclusion_reason").is_null() & pl.col("customer_id").is_in(pending.implode())
            )
            .then(pl.lit("cool_down"))
            .otherwise(pl.col("exclusion_reason"))
        )
    exclusions = {code: candidates.filter(pl.col("exclusion_reason") == code).height for code in EXCLUSION_REASONS}
    eligible = candidates.filter(pl.col("exclusion_reason").is_null()).drop("exclusion_reason")
    beyond_limit = 0
    if audience.rank_by is not None:
        eligible = eligible.sort(["targeting_score", "customer_id"], descending=[True, False], nulls_last=True)
        unscored = eligible["targeting_score"].null_count()
        if unscored and eligible.height:
            notes.append(f"{unscored:,} eligible customers have no {RANK_SCORES[audience.rank_by]}: ranked last")
        if audience.limit is not None and eligible.height > audience.limit:
            beyond_limit = eligible.height - audience.limit
            eligible = eligible.head(audience.limit)
    members = stratified_control(eligible, share, seed).select(MEMBER_COLUMNS)
    campaign_id = audience.campaign_id or campaign_id_for(audience.name, start_date, seed)
    [(taken,)] = connection.execute(
        "select count(*) from marts.dim_campaigns where campaign_id = ?", [campaign_id]
    ).fetchall()
    if taken:
        notes.append(f"the snapshot already holds a campaign {campaign_id}: choose another id or name to save")
    zone = ZoneInfo(settings.timezone)
    return CampaignPlan(
        campaign_id=campaign_id,
        audience=audience,
        snapshot_as_of=snapshot_as_of,
        plan_date=plan_date,
        start_date=start_date,
        end_date=end_date,
        control_share=share,
        seed=seed,
        drawn_at=datetime.now(UTC).replace(microsecond=0),
        assigned_at=datetime.combine(plan_date, time(12), zone).astimezone(UTC),
        matched=candidates.height,
        exclusions=exclusions,
        beyond_limit=beyond_limit,
        members=members,
        cooldown_days=settings.campaign_cooldown_days,
        currency=settings.currency,
        id_taken=bool(taken),
        notes=tuple(notes),
    )


def stratified_control(eligible: pl.DataFrame, share: float, seed: int) -> pl.DataFrame:
    """``eligible`` (one row per customer_id, with a stratum) with member_group: in each stratum, round(share x n)
    customers (halves up) drawn uniformly at random without replacement are 'control', the rest 'target'.

    Stratified random assignment: every stratum holds out the same share (up to rounding), so the target and
    control groups have the same segment mix and the segment breakdown of the lift has a control in each
    segment. The draw depends only on ``seed`` and the eligible customers (strata and customers in sorted order),
    so the same seed on the same snapshot draws the same group."""
    for column in ("customer_id", "stratum"):
        if column not in eligible.columns:
            raise CampaignError(f"the eligible customers lack the column {column}")
    if eligible["customer_id"].n_unique() != eligible.height:
        raise CampaignError("the eligible customers list a customer_id twice")
    if not 0 <= share < 1:
        raise CampaignError(f"control share {share} must be at least 0 and below 1")
    ordered = eligible.with_row_index("_order").sort(["stratum", "customer_id"])
    generator = np.random.default_rng(seed)
    is_control = np.zeros(ordered.height, dtype=bool)
    start = 0
    for size in ordered.group_by("stratum", maintain_order=True).len()["len"]:
        drawn = math.floor(share * size + 0.5)
        is_control[start + generator.permutation(size)[:drawn]] = True
        start += size
    grouped = ordered.with_columns(
        pl.Series("member_group", np.where(is_control, "control", "target"), dtype=pl.String)
    )
    return grouped.sort("_order").drop("_order")


def campaign_id_for(name: str, start_date: date, seed: int) -> str:
    """``PLN-<start yyyymmdd>-<name as ASCII words joined by dashes>`` (the seed when the name has no letters)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")[:40].strip("-")
    return f"PLN-{start_date:%Y%m%d}-{slug or seed}"
