"""The email/SMS tool's exports: campaigns, members (targets and controls), sends, responses, consents.

The monthly newsletters are campaigns of the same tool (objective ``newsletter``, no members, no control group):
their sends and responses follow the campaigns' in the same files, written newsletter by newsletter.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import polars as pl

from . import vocab
from .campaigns import member_windows
from .formats import ToolCsv, write_tool_csv
from .identities import CHANNELS
from .simulate import NEVER, person_keys
from .world import World, utc_datetimes


def orders_in_windows(world: World, person: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Realised orders of each ``person`` in ``[start, end)`` (Unix seconds)."""
    orders = world.orders
    key = np.sort(person_keys(orders.person, orders.t, world.clock.origin))
    person = person.astype(np.int64)
    low = np.searchsorted(key, person_keys(person, start, world.clock.origin))
    high = np.searchsorted(key, person_keys(person, end, world.clock.origin))
    return high - low


def write_marketing(world: World, out: Path) -> dict[str, int]:
    """Write ``marketing/*.csv`` (conversions are the realised orders a send led to or a click preceded)."""
    rng = world.rngs["marketing"]
    folder = out / "marketing"
    rows: dict[str, int] = {}
    run = world.campaigns
    table = run.table
    cutoff = world.clock.cutoff
    newsletters = world.newsletters
    columns = ("campaign_id", "name", "channel", "objective", "offer_category", "starts_on", "ends_on", "control_share")
    rows["marketing/campaigns.csv"] = write_tool_csv(
        pl.concat([table.select(columns), newsletters.table.select(columns)]), folder / "campaigns.csv"
    )
    contacts = world.contacts.frame
    contact_id = contacts["contact_id"]
    campaign_id = table["campaign_id"]
    email_clean = contacts["email"].str.strip_chars()
    members = pl.DataFrame(
        {
            "campaign_id": campaign_id.gather(run.member_campaign),
            "contact_id": contact_id.gather(run.member_contact),
            "email": email_clean.gather(run.member_contact),
            "phone": contacts["mobile"].gather(run.member_contact),
            "member_group": np.where(run.member_control, "control", "target"),
            "assigned_at": utc_datetimes(run.member_assigned_at),
        }
    )
    rows["marketing/campaign_members.csv"] = write_tool_csv(members, folder / "campaign_members.csv")

    channel = table["channel"].to_numpy()[run.send_campaign]
    people = world.people.frame
    calling_code = {code: vocab.PHONE_PLANS[code]["cc"] for code in vocab.COUNTRIES}
    country = people["country"].gather(run.send_person).replace_strict(calling_code, return_dtype=pl.String)
    e164 = pl.select(pl.concat_str(pl.lit("+"), country, people["phone_nsn"].gather(run.send_person))).to_series()
    address = pl.select(
        pl.when(pl.Series(channel == "email"))
        .then(email_clean.gather(run.send_contact).str.to_lowercase())
        .otherwise(e164)
    ).to_series()
    n_sends = len(run.send_at)
    sends = pl.DataFrame(
        {
            "send_id": np.arange(1, n_sends + 1),
            "campaign_id": campaign_id.gather(run.send_campaign),
            "contact_id": contact_id.gather(run.send_contact),
            "channel": channel.astype(str),
            "address": address,
            "sent_at": utc_datetimes(run.send_at),
        }
    )
    with ToolCsv(folder / "sends.csv") as writer:
        writer.write(sends)
        bounds = np.searchsorted(newsletters.send_newsletter, np.arange(newsletters.table.height + 1))
        for k, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            contact = newsletters.send_contact[lo:hi]
            writer.write(
                pl.DataFrame(
                    {
                        "send_id": n_sends + np.arange(lo + 1, hi + 1),
                        "campaign_id": pl.repeat(newsletters.table["campaign_id"][k], int(hi - lo), eager=True),
                        "contact_id": contact_id.gather(contact),
                        "channel": pl.repeat("email", int(hi - lo), eager=True),
                        "address": email_clean.gather(contact).str.to_lowercase(),
                        "sent_at": utc_datetimes(newsletters.send_at[lo:hi]),
                    }
                )
            )
    rows["marketing/sends.csv"] = writer.rows

    # Conversions: every realised order a send induced, and the first order within the campaign after a click.
    orders = world.orders
    induced = np.flatnonzero(orders.send >= 0)
    induced_send = orders.send[induced]
    induced_t = orders.t[induced]
    open_at, click_at = run.open_at.copy(), run.click_at.copy()
    if len(induced):
        lead = np.full(n_sends, NEVER)
        np.minimum.at(lead, induced_send, induced_t)
        has = lead < NEVER
        clicked = np.maximum(run.send_at + 1, lead - rng.integers(60, 3600, n_sends))
        click_at = np.where(has, np.minimum(click_at, clicked), click_at)
        opened = np.maximum(run.send_at, click_at - rng.integers(10, 600, n_sends))
        is_email = channel == "email"
        open_at = np.where(has & is_email, np.minimum(open_at, opened), open_at)
    end = table["end"].to_numpy()[run.send_campaign]
    key = np.sort(person_keys(orders.person, orders.t, world.clock.origin))
    after_click = np.searchsorted(
        key, person_keys(run.send_person.astype(np.int64), np.minimum(click_at, end), world.clock.origin), side="right"
    )
    valid = (click_at < end) & (after_click < len(key))
    next_key = key[np.minimum(after_click, len(key) - 1)]
    next_person = next_key >> 31
    next_t = (next_key & ((1 << 31) - 1)) + world.clock.origin
    converted = valid & (next_person == run.send_person) & (next_t < end)
    base_conversion = np.flatnonzero(converted)
    response_send = np.concatenate(
        [np.flatnonzero(open_at < NEVER), np.flatnonzero(click_at < NEVER), induced_send, base_conversion,
         np.flatnonzero(run.unsubscribe_at < NEVER)]
    )  # fmt: skip
    response_t = np.concatenate(
        [open_at[open_at < NEVER], click_at[click_at < NEVER], induced_t, next_t[base_conversion],
         run.unsubscribe_at[run.unsubscribe_at < NEVER]]
    )  # fmt: skip
    kinds = ["open", "click", "conversion", "conversion", "unsubscribe"]
    sizes = [(open_at < NEVER).sum(), (click_at < NEVER).sum(), len(induced_send), len(base_conversion),
             (run.unsubscribe_at < NEVER).sum()]  # fmt: skip
    response_type = np.repeat(np.asarray(kinds), sizes)
    # one conversion per order: an induced order that also follows a click is counted once
    frame = pl.DataFrame({"send": response_send, "t": response_t, "type": response_type}).unique(maintain_order=True)
    newsletter_frame = pl.DataFrame(
        {
            "send": n_sends + np.concatenate([newsletters.opened, newsletters.clicked, newsletters.unsubscribed]),
            "t": np.concatenate([newsletters.open_at, newsletters.click_at, newsletters.unsubscribe_at]),
            "type": np.repeat(
                np.asarray(["open", "click", "unsubscribe"]),
                [len(newsletters.opened), len(newsletters.clicked), len(newsletters.unsubscribed)],
            ),
        }
    )
    frame = pl.concat([frame.cast(newsletter_frame.schema), newsletter_frame])
    frame = frame.filter(pl.col("t") < cutoff).sort("t", "send", "type")
    responses = pl.DataFrame(
        {
            "response_id": np.arange(1, frame.height + 1),
            "send_id": frame["send"] + 1,
            "response_type": frame["type"],
            "responded_at": utc_datetimes(frame["t"].to_numpy()),
        }
    )
    rows["marketing/responses.csv"] = write_tool_csv(responses, folder / "responses.csv")

    created = contacts["created"].to_numpy()
    opt_in = world.contacts.opt_in
    opt_out_at = world.contacts.opt_out_at
    withdrawn = opt_in & (opt_out_at < cutoff)
    status = np.where(opt_in & ~withdrawn, "opt_in", "opt_out")
    updated = np.where(withdrawn, opt_out_at, created[:, None] + rng.integers(0, 600, opt_in.shape))
    n = len(created)
    consents = pl.DataFrame(
        {
            "contact_id": contact_id.gather(np.repeat(np.arange(n), 3)),
            "channel": np.tile(np.asarray(CHANNELS), n),
            "status": status.reshape(-1),
            "updated_at": utc_datetimes(updated.reshape(-1)),
        }
    )
    rows["marketing/consents.csv"] = write_tool_csv(consents, folder / "consents.csv")
    return rows


def campaign_uplift(world: World) -> pl.DataFrame:
    """Per campaign: the simulated uplift and what it did.

    Orders per member within the campaign's dates, target vs control; the share of targets who bought in the
    warehouse's measurement window; and the campaign's true effect on its targets in that window
    (:func:`campaigns.sample_effects`). Newsletters have no uplift and no members: they are not here.
    """
    run = world.campaigns
    table = run.table
    start = table["start"].to_numpy()[run.member_campaign]
    end = table["end"].to_numpy()[run.member_campaign]
    bought = orders_in_windows(world, run.member_person, start, end)
    window_orders = orders_in_windows(world, run.member_person, *member_windows(run, world.params, world.clock))
    frame = pl.DataFrame(
        {"campaign": run.member_campaign, "control": run.member_control, "orders": bought, "window": window_orders}
    )
    sends = np.bincount(run.send_campaign, minlength=table.height)
    summary = frame.group_by("campaign").agg(
        (~pl.col("control")).sum().alias("targets"),
        pl.col("control").sum().alias("controls"),
        pl.col("orders").filter(~pl.col("control")).mean().alias("orders_per_target"),
        pl.col("orders").filter(pl.col("control")).mean().alias("orders_per_control"),
        (pl.col("window") > 0).filter(~pl.col("control")).mean().alias("target_conversion_rate"),
    )
    base = table.select(
        pl.int_range(pl.len()).alias("campaign"),
        "campaign_id",
        "channel",
        "control_share",
        pl.col("uplift").alias("uplift_rate"),
    ).with_columns(pl.Series("sends", sends))
    return (
        base.join(summary, on="campaign", how="left")
        .sort("campaign")
        .drop("campaign")
        .with_columns(pl.col("targets").fill_null(0), pl.col("controls").fill_null(0))
        .hstack(world.campaign_effects)
    )
