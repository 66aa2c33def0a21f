"""A planned campaign saved into the landing zone as two files the marketing contracts read, so that the next run
ingests it like any other source (dashboards never write to the warehouse).

``marketing/campaigns_planned_<id>.csv`` matches the campaigns contract (``marketing/campaigns*.csv``) and
``marketing/campaign_members_planned_<id>.csv`` the members' (``marketing/campaign_members*.csv``). The member list
is frozen: a saved campaign is never overwritten. Members carry no email or phone: contact details stay in the
contacts file, and the export reads them there when the list is sent.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import polars as pl

from pipelines.campaigns.audience import CAMPAIGN_FILE, CAMPAIGN_ID, MEMBERS_FILE, CampaignError
from pipelines.campaigns.plan import CampaignPlan

TIMESTAMP = "%Y-%m-%dT%H:%M:%SZ"  # the members contract's assigned_at format, UTC


def campaign_files(landing_dir: Path, campaign_id: str) -> tuple[Path, Path]:
    """The campaign file and the member file of ``campaign_id`` in the landing zone."""
    if not CAMPAIGN_ID.fullmatch(campaign_id):
        raise CampaignError(f"campaign id {campaign_id!r} must be 1 to 64 letters, digits, dashes or underscores")
    landing_dir = Path(landing_dir)
    return (
        landing_dir / CAMPAIGN_FILE.format(campaign_id=campaign_id),
        landing_dir / MEMBERS_FILE.format(campaign_id=campaign_id),
    )


def is_saved(landing_dir: Path, campaign_id: str) -> bool:
    """Whether a campaign of this id is saved in the landing zone already (saving it again would be refused)."""
    return any(path.exists() for path in campaign_files(landing_dir, campaign_id))


def campaign_frame(plan: CampaignPlan) -> pl.DataFrame:
    """The campaign's one row, headed as the campaigns contract reads it."""
    audience = plan.audience
    return pl.DataFrame(
        {
            "campaign_id": [plan.campaign_id],
            "name": [audience.name.strip()],
            "channel": [plan.channel],
            "objective": [audience.objective],
            "offer_category": [audience.offer],
            "starts_on": [plan.start_date.isoformat()],
            "ends_on": [plan.end_date.isoformat()],
            "control_share": [plan.control_share],
            "audience": [audience.describe()],
            "control_draw": [plan.control_draw],
        },
        schema_overrides={"objective": pl.String, "offer_category": pl.String},
    )


def members_frame(plan: CampaignPlan) -> pl.DataFrame:
    """The members, headed as the campaign_members contract reads them (no email, no phone)."""
    return plan.members.select(
        pl.lit(plan.campaign_id).alias("campaign_id"),
        "contact_id",
        pl.lit(None, dtype=pl.String).alias("email"),
        pl.lit(None, dtype=pl.String).alias("phone"),
        "member_group",
        pl.lit(plan.assigned_at.strftime(TIMESTAMP)).alias("assigned_at"),
        "stratum",
        "targeting_score",
    )


def save_campaign(plan: CampaignPlan, landing_dir: Path) -> tuple[Path, Path]:
    """Write ``plan`` into the landing zone (members first, then the campaign); return the two paths.

    Each file is written in full under a hidden temporary name (which the ingest does not list) and then linked
    under its real name, which fails if that name exists: a campaign already saved is never overwritten, even by
    a save running at the same moment. Refused: a plan without members, one whose id the snapshot already holds,
    and an id already saved."""
    if plan.id_taken:
        raise CampaignError(f"the published snapshot already holds a campaign {plan.campaign_id}: choose another id")
    if plan.members.height == 0:
        raise CampaignError(f"campaign {plan.campaign_id} has no members: nothing to save")
    if plan.members["contact_id"].null_count():
        raise CampaignError("every member needs a CRM contact id")
    campaign_path, members_path = campaign_files(landing_dir, plan.campaign_id)
    for path in (campaign_path, members_path):
        if path.exists():
            raise CampaignError(
                f"campaign {plan.campaign_id} is saved already ({path}): its member list is frozen; "
                "plan the campaign under another id"
            )
    _write_new(members_path, members_frame(plan).write_csv())
    try:
        _write_new(campaign_path, campaign_frame(plan).write_csv())
    except BaseException:
        members_path.unlink()  # ours: written a moment ago, and no campaign goes with it
        raise
    return campaign_path, members_path


def _write_new(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, which must not exist, so that no reader ever sees a part of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)  # atomic, and unlike a rename it never replaces an existing file
        except FileExistsError as error:
            raise CampaignError(f"{path} exists already: a saved campaign is never overwritten") from error
    finally:
        os.unlink(temporary)


def planned_campaign(landing_dir: Path, campaign_id: str) -> tuple[dict, pl.DataFrame] | None:
    """A campaign saved in the landing zone (the campaign's row, its members), or None when there is none: what
    an export reads before the next run has ingested the campaign."""
    campaign_path, members_path = campaign_files(landing_dir, campaign_id)
    if not (campaign_path.exists() and members_path.exists()):
        return None
    campaign = pl.read_csv(campaign_path, infer_schema=False).row(0, named=True)
    members = pl.read_csv(members_path, infer_schema=False).select("contact_id", "member_group")
    return campaign, members
