"""Marketing campaigns: audiences, random control groups, sends within consent, responses and uplift.

Campaigns run in date order. Each picks an audience from what the retailer could see before it started
(recency and frequency of the customer's purchases, a reachable address for the channel), holds out a
random control group (``control_share``), and sends to the targets whose consent allows the channel at send
time. With the campaigns effect on, a treated customer buys at rate ``lambda * (1 + uplift * s)`` from the day
after the send to the campaign's end, ``s`` their responsiveness to the campaign's channel (mean 1, see
:mod:`engagement`): the extra purchases are an independent Poisson process of rate ``lambda * uplift * s``
superposed on the base process, and they count as repeat purchases for dropout. Opens and clicks are drawn
once dropout is known (:func:`engagement.campaign_responses`), since they fade after it.

The audience reads the history of the base process (without other campaigns' extra purchases), which keeps
the simulation one pass; since the control split is random within the audience, treated and control twins
stay comparable whatever the audience rule.

:func:`sample_effects` measures what each campaign did to its own target group: the same world without that
campaign's extra purchases, with every dropout recomputed, gives what the targets would have bought.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from .catalog import Catalogue
from .identities import Contacts
from .params import SECONDS_PER_DAY, Clock, Params
from .simulate import NEVER, Buyers, Events, death_times, group_starts, make_events, person_keys, to_seconds

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

    table: pl.DataFrame  # campaigns.csv columns plus start, end (Unix s), uplift, offer (category index), open_rate,
    # click_rate (of an average responsive customer: opens of an email, clicks of an opened email or of a text)
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
        open_rate = float(rng.uniform(0.2, 0.45))
        click_rate = float(rng.uniform(0.1, 0.3) if channel == "email" else rng.uniform(0.03, 0.1))
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
                "open_rate": open_rate,
                "click_rate": click_rate,
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
    responsiveness: np.ndarray,
    params: Params,
    clock: Clock,
) -> CampaignRun:
    """Pick audiences, split control groups at random, send within consent, draw unsubscribes and uplift.

    ``contacts.opt_out_at`` is updated in place with the unsubscribes. ``responsiveness`` (people x
    ``CAMPAIGN_CHANNELS``) scales each target's uplift.
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
        unsubscribe = rng.random(m) < {"email": 0.004, "sms": 0.01, "phone": 0.02}[row["channel"]]
        unsubscribe_at = np.where(unsubscribe, sent + (rng.exponential(SECONDS_PER_DAY, m)).astype(np.int64), NEVER)
        contacts.opt_out_at[target_contact, column] = np.minimum(
            contacts.opt_out_at[target_contact, column], unsubscribe_at
        )
        sends.append((np.full(m, k), target_contact, targets, sent, unsubscribe_at))

        if row["uplift"] > 0:
            begin = np.ceil(clock.days(sent))
            length = np.maximum(clock.days(end) - begin, 0.0)
            responsive = responsiveness[targets, CAMPAIGN_CHANNELS.index(row["channel"])]
            extra = rng.poisson(buyers.lam[targets] * row["uplift"] * responsive * length)
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
    sent_at = stack(sends, 3)
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
        send_at=sent_at,
        open_at=np.full(len(sent_at), NEVER),  # drawn once dropout is known (engagement.campaign_responses)
        click_at=np.full(len(sent_at), NEVER),
        unsubscribe_at=stack(sends, 4),
        extras=Events.concat([empty, *extras]),
    )


def member_windows(run: CampaignRun, params: Params, clock: Clock) -> tuple[np.ndarray, np.ndarray]:
    """Each member's measurement window as Unix seconds ``[start, end)``, the warehouse's (fct_campaign_contacts).

    From local midnight of the day the member was assigned to local midnight after the campaign's last day plus
    ``campaign_attribution_days``, cut at the cutoff: orders on those local dates count.
    """
    zone = ZoneInfo(clock.timezone)
    assigned_day = (
        pl.from_epoch(pl.Series(run.member_assigned_at, dtype=pl.Int64), time_unit="s")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone(clock.timezone)
        .dt.replace_time_zone(None)
        .dt.truncate("1d")
    )
    start = assigned_day.dt.replace_time_zone(clock.timezone).dt.epoch("s").to_numpy()
    after = dt.timedelta(days=params.campaign_attribution_days + 1)
    end = [min(_local_midnight(day + after, zone), clock.cutoff) for day in run.table["ends_on"].to_list()]
    return start, np.asarray(end, np.int64)[run.member_campaign]


def sample_effects(
    events: Events, death: np.ndarray, buyers: Buyers, run: CampaignRun, params: Params, clock: Clock, effects
) -> pl.DataFrame:
    """What each campaign did to its own target group, in the warehouse's measurement window.

    For every target member, their orders in the window (whether any, how many, their EUR value) as simulated,
    minus the same in the world without this campaign's extra purchases, where the targets' dropout is
    recomputed (an extra purchase can be the one after which a customer drops out, or lift them to a tier that
    keeps them longer). Every other draw (the base process, other campaigns, support cases) is shared by both
    worlds, so the difference is exactly the campaign's effect on this sample of targets, the quantity a
    target-versus-control comparison estimates. ``events`` are every potential purchase sorted by person and time,
    ``death`` the dropout computed from them.

    Returns
    -------
    pl.DataFrame
        One row per campaign: ``true_conversion_lift``, ``true_orders_lift_per_member`` and
        ``true_incremental_revenue_per_member`` (EUR at order value, before returns), each a mean over all the
        campaign's target members (those whom consent kept from a send count with no effect); 0 without targets.
    """
    starts = np.append(group_starts(events.person, len(buyers)), len(events))
    window_start, window_end = member_windows(run, params, clock)
    send_campaign = np.append(run.send_campaign, -1)  # events of the base process have send -1
    campaign_of = send_campaign[events.send]
    realised = events.t <= death[events.person]
    rows = []
    for k in range(run.table.height):
        target = np.flatnonzero((run.member_campaign == k) & ~run.member_control)
        owners = np.unique(events.person[campaign_of == k])  # targets this campaign made buy more
        lift = np.zeros(3)
        if len(owners):
            size = starts[owners + 1] - starts[owners]
            local = np.repeat(np.arange(len(owners)), size)
            index = starts[owners][local] + np.arange(size.sum()) - (np.cumsum(size) - size)[local]
            own = events.take(index)
            own.person = local.astype(np.int32)
            by_person = np.argsort(run.member_person[target])
            member = target[by_person[np.searchsorted(run.member_person[target][by_person], owners)]]
            inside = (own.t >= window_start[member][local]) & (own.t < window_end[member][local])
            kept = np.flatnonzero(campaign_of[index] != k)
            without = own.take(kept)
            owner_buyers = Buyers(**{f.name: getattr(buyers, f.name)[owners] for f in fields(Buyers)})
            without_death = death_times(without, owner_buyers, params, clock, effects)
            bought = realised[index] & inside
            would_buy = (without.t <= without_death[without.person]) & inside[kept]
            orders = np.bincount(local[bought], minlength=len(owners))
            orders_without = np.bincount(without.person[would_buy], minlength=len(owners))
            lift = np.array(
                [
                    np.sum((orders > 0).astype(np.int64) - (orders_without > 0)),
                    orders.sum() - orders_without.sum(),
                    own.value[bought].sum() - without.value[would_buy].sum(),
                ]
            ) / len(target)
        rows.append(lift)
    lifts = np.asarray(rows).reshape(-1, 3)
    return pl.DataFrame(
        {
            "true_conversion_lift": lifts[:, 0],
            "true_orders_lift_per_member": lifts[:, 1],
            "true_incremental_revenue_per_member": lifts[:, 2],
        }
    )
