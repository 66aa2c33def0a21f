"""Marketing campaigns: audiences, random control groups, sends within consent, responses and uplift.

Campaigns run in date order. Each picks an audience from what the retailer could see before it started
(recency and frequency of the customer's purchases, a reachable address for the channel), holds out a
random control group (``control_share``), and sends to the targets whose consent allows the channel at send
time. With the campaigns effect on, a treated customer buys at rate ``lambda * (1 + uplift)`` from the day
after the send to the campaign's end: the extra purchases are an independent Poisson process of rate
``lambda * uplift`` superposed on the base process, and they count as repeat purchases for dropout.

The audience reads the history of the base process (without other campaigns' extra purchases), which keeps
the simulation one pass; since the control split is random within the audience, treated and control twins
stay comparable whatever the audience rule.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from .catalog import Catalogue
from .identities import Contacts
from .params import SECONDS_PER_DAY, Clock, Params
from .simulate import NEVER, Buyers, Events, make_events, person_keys, to_seconds

CAMPAIGN_CHANNELS = ("email", "sms", "phone")
CONSENT_COLUMN = {"email": 0, "phone": 1, "sms": 2}
OBJECTIVES = ("winback", "cross_sell", "loyalty", "seasonal")
_OBJECTIVE_LABEL = {
    "winback": "We miss you",
    "cross_sell": "You might also like",
    "loyalty": "Thank you",
    "seasonal": "Season sale",
}
_SEASON = (
    "Winter",
    "Winter",
    "Spring",
    "Spring",
    "Spring",
    "Summer",
    "Summer",
    "Summer",
    "Autumn",
    "Autumn",
    "Autumn",
    "Winter",
)


@dataclass
class CampaignRun:
    """What the campaigns did; member, send and response arrays are aligned within each group."""

    table: pl.DataFrame  # campaigns.csv columns plus start, end (Unix s), uplift, channel, offer (category index)
    member_campaign: np.ndarray
    member_contact: np.ndarray
    member_person: np.ndarray
    member_control: np.ndarray
    member_assigned_at: np.ndarray
    send_campaign: np.ndarray
    send_contact: np.ndarray
    send_person: np.ndarray
    send_at: np.ndarray
    open_at: np.ndarray  # NEVER when not opened
    click_at: np.ndarray
    unsubscribe_at: np.ndarray
    extras: Events  # potential purchases induced by sends (``send`` indexes the send arrays)


def _local_midnight(day: dt.date, zone: ZoneInfo) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())


def schedule(rng: np.random.Generator, params: Params, clock: Clock, catalogue: Catalogue, uplift_on: bool):
    """Campaign calendar: evenly spread over the history after the first months, all ended before cutoff."""
    zone = ZoneInfo(clock.timezone)
    origin_day = dt.datetime.fromtimestamp(clock.origin, dt.UTC).date()
    span = (clock.as_of - origin_day).days
    first, last = int(span * 0.15), span - 40
    rows = []
    objective_offset = int(rng.integers(0, len(OBJECTIVES)))
    n_email = round(0.6 * params.campaigns)
    n_sms = round(0.25 * params.campaigns)
    channels = rng.permutation(
        ["email"] * n_email + ["sms"] * n_sms + ["phone"] * (params.campaigns - n_email - n_sms)
    ).tolist()
    for k in range(params.campaigns):
        start_day = origin_day + dt.timedelta(
            days=int(first + (last - first) * (k + rng.uniform(0.1, 0.9)) / params.campaigns)
        )
        length = int(rng.integers(14, 29))
        end_day = start_day + dt.timedelta(days=length - 1)
        channel = channels[k]
        objective = OBJECTIVES[(k + objective_offset) % len(OBJECTIVES)]
        offer = int(rng.integers(0, len(catalogue.category_names)))
        control_share = float(params.campaign_control_shares[int(rng.integers(0, len(params.campaign_control_shares)))])
        uplift = float(rng.uniform(*params.campaign_uplift_range))
        audience = (
            params.phone_campaign_audience_share
            if channel == "phone"
            else float(rng.uniform(*params.campaign_audience_share_range))
        )
        offer_name = catalogue.category_names[offer]
        label = f"{_SEASON[start_day.month - 1]} {start_day.year}: {_OBJECTIVE_LABEL[objective]}"
        rows.append(
            {
                "campaign_id": f"CMP-{k + 1:03d}",
                "name": f"{label} - {offer_name}",
                "channel": channel,
                "objective": objective,
                "offer_category": offer_name,
                "starts_on": start_day,
                "ends_on": end_day,
                "control_share": control_share,
                "start": _local_midnight(start_day, zone),
                "end": _local_midnight(end_day + dt.timedelta(days=1), zone),
                "uplift": uplift if uplift_on else 0.0,
                "offer": offer,
                "audience_share": audience,
            }
        )
    return pl.DataFrame(rows)


def run_campaigns(
    rng: np.random.Generator,
    table: pl.DataFrame,
    buyers: Buyers,
    contacts: Contacts,
    base: Events,
    base_realised: np.ndarray,
    has_contact: np.ndarray,
    params: Params,
    clock: Clock,
) -> CampaignRun:
    """Pick audiences, split control groups at random, send within consent, draw responses and uplift.

    ``contacts.opt_out_at`` is updated in place with the unsubscribes.
    """
    n = len(buyers)
    real = np.flatnonzero(base_realised)
    keys = person_keys(base.person[real], base.t[real], clock.origin)
    real_t = base.t[real]
    person_key = np.arange(n, dtype=np.int64) << 31
    first_row = np.searchsorted(keys, person_key)
    primary = contacts.primary[:n]
    created = contacts.frame["created"].to_numpy()
    email_ok = contacts.frame["email_usable"].to_numpy()
    mobile_ok = contacts.frame["mobile_usable"].to_numpy()
    members: list[tuple] = []
    sends: list[tuple] = []
    extras: list[Events] = []
    send_offset = 0
    for k, row in enumerate(table.iter_rows(named=True)):
        start, end = row["start"], row["end"]
        position = np.searchsorted(keys, person_key | (start - clock.origin))
        count = position - first_row
        last = np.where(count > 0, real_t[np.maximum(position - 1, 0)], NEVER)
        since = (start - last) / SECONDS_PER_DAY
        objective = row["objective"]
        if objective == "winback":
            rule = (count > 0) & (since >= 180) & (since <= 730)
        elif objective == "cross_sell":
            rule = (count > 0) & (since <= 365)
        elif objective == "loyalty":
            rule = (count >= 3) & (since <= 365)
        else:
            rule = (count > 0) & (since <= 730)
        contact = np.maximum(primary, 0)
        reachable = email_ok[contact] if row["channel"] == "email" else mobile_ok[contact]
        eligible = rule & (primary >= 0) & reachable & (created[contact] < start - 3 * SECONDS_PER_DAY)
        chosen = np.flatnonzero(eligible & (rng.random(n) < row["audience_share"]))
        control = rng.random(len(chosen)) < row["control_share"]
        assigned = start - ((1 + 2 * rng.random(len(chosen))) * SECONDS_PER_DAY).astype(np.int64)
        members.append((np.full(len(chosen), k), primary[chosen], chosen, control, assigned))

        targets = chosen[~control]
        target_contact = primary[targets]
        # a call centre works through its list over a few days; emails and texts go out the first day
        day = rng.integers(0, 5 if row["channel"] == "phone" else 1, len(targets))
        sent = start + ((day + rng.uniform(8 / 24, 18 / 24, len(targets))) * SECONDS_PER_DAY).astype(np.int64)
        column = CONSENT_COLUMN[row["channel"]]
        allowed = contacts.opt_in[target_contact, column] & (contacts.opt_out_at[target_contact, column] > sent)
        targets, target_contact, sent = targets[allowed], target_contact[allowed], sent[allowed]
        m = len(targets)
        open_at = np.full(m, NEVER)
        click_at = np.full(m, NEVER)
        if row["channel"] == "email":
            opened = rng.random(m) < rng.uniform(0.2, 0.45)
            open_at = np.where(opened, sent + (rng.exponential(8 * 3600, m)).astype(np.int64), NEVER)
            clicked = opened & (rng.random(m) < rng.uniform(0.1, 0.3))
            click_at = np.where(clicked, open_at + (rng.exponential(600, m)).astype(np.int64) + 1, NEVER)
            unsubscribe = rng.random(m) < 0.004
        elif row["channel"] == "sms":
            clicked = rng.random(m) < rng.uniform(0.03, 0.1)
            click_at = np.where(clicked, sent + (rng.exponential(3600, m)).astype(np.int64), NEVER)
            unsubscribe = rng.random(m) < 0.01
        else:
            unsubscribe = rng.random(m) < 0.02
        unsubscribe_at = np.where(unsubscribe, sent + (rng.exponential(SECONDS_PER_DAY, m)).astype(np.int64), NEVER)
        contacts.opt_out_at[target_contact, column] = np.minimum(
            contacts.opt_out_at[target_contact, column], unsubscribe_at
        )
        sends.append((np.full(m, k), target_contact, targets, sent, open_at, click_at, unsubscribe_at))

        if row["uplift"] > 0:
            begin = np.ceil(clock.days(sent))
            length = np.maximum(clock.days(end) - begin, 0.0)
            extra = rng.poisson(buyers.lam[targets] * row["uplift"] * length)
            owner = np.repeat(np.arange(m), extra)
            days = begin[owner] + rng.random(len(owner)) * length[owner]
            t = np.minimum(to_seconds(clock, days), end - 1)
            extras.append(
                make_events(
                    rng,
                    targets[owner],
                    t,
                    rng.random(len(owner)),
                    np.zeros(len(owner), bool),
                    send_offset + owner,
                    buyers,
                    has_contact,
                    params,
                )
            )
        send_offset += m

    def stack(parts, i):
        return np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, np.int64)

    empty = make_events(
        rng,
        np.zeros(0, np.int64),
        np.zeros(0, np.int64),
        np.zeros(0),
        np.zeros(0, bool),
        np.zeros(0, np.int64),
        buyers,
        has_contact,
        params,
    )
    return CampaignRun(
        table=table,
        member_campaign=stack(members, 0),
        member_contact=stack(members, 1),
        member_person=stack(members, 2),
        member_control=stack(members, 3).astype(bool),
        member_assigned_at=stack(members, 4),
        send_campaign=stack(sends, 0),
        send_contact=stack(sends, 1),
        send_person=stack(sends, 2),
        send_at=stack(sends, 3),
        open_at=stack(sends, 4),
        click_at=stack(sends, 5),
        unsubscribe_at=stack(sends, 6),
        extras=Events.concat([empty, *extras]),
    )
