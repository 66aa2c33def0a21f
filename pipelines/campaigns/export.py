"""The target list of a campaign as CSV, with contact details for the targets who may be contacted, and no one else.

Consent is checked again at export, on the snapshot the caller opened (the newest, for a saved campaign): a target
who withdrew consent since the plan is left out. Control members are never exported. The details (name, and the
channel's address only) come from the contacts file, which only roles that see contact details may open: the
caller passes it or None (pipelines/users.py decides; the command line runs as the server's owner). The file is
written through pipelines/exports.py, so no cell can act as a spreadsheet formula.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from pipelines import sql
from pipelines.campaigns.audience import CampaignError
from pipelines.campaigns.files import planned_campaign
from pipelines.campaigns.plan import CampaignPlan
from pipelines.campaigns.selection import consented_contacts, contact_customers
from pipelines.exports import neutralised, write_csv
from pipelines.publish.contacts import CONTACTS_SCHEMA, CONTACTS_TABLE

ADDRESS_COLUMN = {"email": "email", "sms": "phone", "phone": "phone"}
NO_CONTACTS_FILE = (
    "no contacts file is published beside the snapshot (the run wrote none, or this role may not see contact "
    "details): the target list cannot carry contact details, so nothing was exported"
)
LEFT_OUT = {
    "control": "control group: never contacted",
    "no_consent": "no consent for the channel in the snapshot (withdrawn since the plan, or never given)",
    "no_address": "no address for the channel in the contacts file",
}


@dataclass(frozen=True)
class TargetList:
    """The targets who may be contacted, with their details (text as it is: write it through :meth:`csv` or
    pipelines/exports.py, never as it is), and how many members were left out, by LEFT_OUT code."""

    campaign_id: str
    rows: pl.DataFrame
    left_out: dict[str, int]

    def csv(self) -> str:
        """The list as CSV text, every cell formula-safe (for a download button)."""
        return neutralised(self.rows).write_csv()


@dataclass(frozen=True)
class ExportResult:
    campaign_id: str
    path: Path
    rows: int
    left_out: dict[str, int]  # by LEFT_OUT code


@dataclass(frozen=True)
class _Campaign:
    campaign_id: str
    name: str
    channel: str
    offer: str | None
    members: pl.DataFrame  # customer_id, contact_id, member_group


def target_list(
    connection: duckdb.DuckDBPyConnection,
    campaign: CampaignPlan | str,
    contacts_file: Path | None,
    landing_dir: Path | None = None,
) -> TargetList:
    """The targets of ``campaign`` (a plan, or a campaign id: looked up in the snapshot ``connection``, else among
    the campaigns saved in ``landing_dir`` and not ingested yet) who may be contacted over its channel as the
    snapshot stands, with their name and the channel's address from ``contacts_file``. Raises CampaignError
    without the contacts file, or for an unknown campaign."""
    if contacts_file is None or not Path(contacts_file).exists():
        raise CampaignError(NO_CONTACTS_FILE)
    found = campaign if isinstance(campaign, CampaignPlan) else None
    source = _from_plan(found) if found else _from_id(connection, str(campaign), landing_dir)
    members = source.members
    targets = members.filter(pl.col("member_group") == "target")
    consented = consented_contacts(connection, source.channel, targets["contact_id"].drop_nulls().to_list())
    allowed = targets.join(consented, on=["contact_id", "customer_id"], how="inner")
    address = ADDRESS_COLUMN[source.channel]
    with duckdb.connect(str(contacts_file), read_only=True) as contacts:
        # the file's catalog is named after it, and may be named like its schema ("contacts"): qualify in full
        [(catalog,)] = contacts.execute("select current_database()").fetchall()
        table = f"{sql.identifier(catalog)}.{sql.qualified(CONTACTS_SCHEMA, CONTACTS_TABLE)}"
        details = contacts.sql(
            f"select customer_id, full_name, email, phone from {table} where list_contains(?, customer_id)",
            params=[allowed["customer_id"].to_list()],
        ).pl()
    rows = (
        allowed.join(details.select("customer_id", "full_name", address), on="customer_id", how="inner")
        .filter(pl.col(address).is_not_null())
        .sort("customer_id")
        .select(
            pl.lit(source.campaign_id).alias("campaign_id"),
            pl.lit(source.name).alias("campaign_name"),
            pl.lit(source.channel).alias("channel"),
            pl.lit(source.offer, dtype=pl.String).alias("offer"),
            "customer_id",
            "contact_id",
            "full_name",
            address,
        )
    )
    left_out = {
        "control": members.height - targets.height,
        "no_consent": targets.height - allowed.height,
        "no_address": allowed.height - rows.height,
    }
    return TargetList(source.campaign_id, rows, left_out)


def export_targets(
    connection: duckdb.DuckDBPyConnection,
    campaign: CampaignPlan | str,
    contacts_file: Path | None,
    out: Path,
    landing_dir: Path | None = None,
) -> ExportResult:
    """Write :func:`target_list` to ``out`` as CSV through pipelines/exports.py (formula-safe), replacing it whole:
    written under a hidden name and renamed, so a reader never sees half a list."""
    targets = target_list(connection, campaign, contacts_file, landing_dir)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    os.close(handle)
    try:
        write_csv(targets.rows, Path(temporary))
        os.replace(temporary, out)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return ExportResult(targets.campaign_id, out, targets.rows.height, targets.left_out)


def _from_plan(plan: CampaignPlan) -> _Campaign:
    members = plan.members.select("customer_id", "contact_id", "member_group")
    return _Campaign(plan.campaign_id, plan.audience.name, plan.channel, plan.audience.offer, members)


def _from_id(connection: duckdb.DuckDBPyConnection, campaign_id: str, landing_dir: Path | None) -> _Campaign:
    rows = connection.execute(
        "select campaign_name, channel_id, offer_category_name from marts.dim_campaigns where campaign_id = ?",
        [campaign_id],
    ).fetchall()
    if rows:
        row = rows[0]
        members = connection.sql(
            "select customer_id, contact_id, member_group from marts.fct_campaign_contacts where campaign_id = ?",
            params=[campaign_id],
        ).pl()
        return _Campaign(campaign_id, row[0], row[1], row[2], members)
    planned = planned_campaign(landing_dir, campaign_id) if landing_dir is not None else None
    if planned is None:
        raise CampaignError(f"no campaign {campaign_id} in the published snapshot, nor saved in the landing zone")
    campaign, listed = planned
    # saved, not ingested yet: the contacts resolve to customers as the snapshot knows them
    resolved = contact_customers(connection, listed["contact_id"].drop_nulls().to_list())
    members = listed.join(resolved, on="contact_id", how="left").select("customer_id", "contact_id", "member_group")
    return _Campaign(campaign_id, campaign["name"], campaign["channel"], campaign["offer_category"], members)
