"""Engagement between purchases: browsing, the monthly newsletter, and how each person responds to each channel.

Every person has an engagement level ``e ~ Gamma(engagement_shape, rate=engagement_shape)`` (mean 1), drawn
independently of the purchase process. A buyer's activity is ``a = e * sqrt(lambda / m) / E[sqrt(lambda / m)]``
with ``m = r / alpha`` the mean purchase rate: correlated with the purchase rate but not equal to it, mean 1. A
lead's activity is ``e``.

- Browsing: while alive a buyer opens web sessions as a Poisson process of rate
  ``browse_sessions_per_purchase * m * a`` a day, from the first purchase; after dropout the rate decays as
  ``exp(-days since dropout / engagement_fade_days)`` (lapsing customers drift away rather than vanish).
  Window-shoppers, a share of the leads, browse ``window_shopper_sessions_per_month * e`` a month from the day
  their CRM contact was created and never buy (they are leads: they have no purchase process at all).
- Newsletter: every month (the last ``newsletter_months``) one email goes to every contact with a usable email
  address and email consent at the time it is sent; a recipient opens it with probability
  ``1 - (1 - newsletter_open_rate) ** (a * s_email * f)``, with ``s_email`` the email responsiveness below and
  ``f`` the fade factor after dropout, and clicks an opened one with probability
  ``1 - (1 - newsletter_click_rate) ** s_email``. Newsletters have no control group and cause no purchase.
- Channel responsiveness: per person and channel (email, sms, phone) ``s = exp(sigma z - sigma^2 / 2)`` (mean 1)
  with standard normal ``z`` correlated ``channel_responsiveness_correlation`` across channels. It scales the
  person's chance to open and click a campaign email, click a campaign text, and the campaign's uplift of their
  purchase rate over every channel (:mod:`campaigns`).

Nothing here changes when anybody buys: browsing and newsletters only observe the purchase process, so a world
with every effect off stays pure BG/NBD.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from .campaigns import CAMPAIGN_CHANNELS, CONSENT_COLUMN, CampaignRun
from .identities import Contacts
from .params import SECONDS_PER_DAY, Clock, Params
from .simulate import NEVER, Buyers, to_seconds

EMAIL = CAMPAIGN_CHANNELS.index("email")
DAYS_PER_MONTH = 365.25 / 12
NEWSLETTER_HOUR = 10  # local time the tool starts sending; it sends in batches over the next two hours


@dataclass
class Engagement:
    """Latent engagement of every person (buyers first, then leads, as ``People``)."""

    level: np.ndarray  # e, mean 1
    activity: np.ndarray  # a: e scaled by the relative purchase rate for buyers, e for leads
    browse_rate: np.ndarray  # web sessions a day while alive (0 for leads who are not window-shoppers)
    window_shopper: np.ndarray  # bool: a lead who browses often and never buys
    responsiveness: np.ndarray  # people x CAMPAIGN_CHANNELS multipliers, mean 1

    def best_channel(self) -> np.ndarray:
        """Index into ``CAMPAIGN_CHANNELS`` of each person's most responsive channel."""
        return self.responsiveness.argmax(axis=1)


def draw_engagement(rng: np.random.Generator, buyers: Buyers, n_people: int, params: Params) -> Engagement:
    """Engagement, browsing rate, window-shoppers and channel responsiveness of every person."""
    n_buyers = len(buyers)
    level = rng.gamma(params.engagement_shape, 1.0 / params.engagement_shape, n_people)
    mean_rate = params.r / params.alpha
    # E[sqrt(lambda / m)] for lambda ~ Gamma(r, rate alpha) is Gamma(r + 1/2) / (Gamma(r) sqrt(r))
    sqrt_mean = math.exp(math.lgamma(params.r + 0.5) - math.lgamma(params.r)) / math.sqrt(params.r)
    activity = level.copy()
    activity[:n_buyers] *= np.sqrt(buyers.lam / mean_rate) / sqrt_mean
    window_shopper = np.zeros(n_people, bool)
    window_shopper[n_buyers:] = rng.random(n_people - n_buyers) < params.window_shopper_share
    browse_rate = np.where(window_shopper, params.window_shopper_sessions_per_month / DAYS_PER_MONTH * level, 0.0)
    browse_rate[:n_buyers] = params.browse_sessions_per_purchase * mean_rate * activity[:n_buyers]
    rho, sigma = params.channel_responsiveness_correlation, params.channel_responsiveness_sigma
    shared = rng.standard_normal(n_people)[:, None]
    z = np.sqrt(rho) * shared + np.sqrt(1.0 - rho) * rng.standard_normal((n_people, len(CAMPAIGN_CHANNELS)))
    responsiveness = np.exp(sigma * z - sigma**2 / 2)
    return Engagement(level, activity, browse_rate, window_shopper, responsiveness)


def fade(at: np.ndarray, death: np.ndarray, params: Params) -> np.ndarray:
    """Share of the alive engagement left at ``at`` for people who dropped out at ``death`` (1 before it)."""
    days_since = np.maximum((at - death) / SECONDS_PER_DAY, 0.0)
    return np.exp(-days_since / params.engagement_fade_days)


def person_death(death: np.ndarray, n_people: int) -> np.ndarray:
    """Dropout time of every person: the buyers' ``death``, ``NEVER`` for leads (they have no purchase process)."""
    return np.concatenate([death, np.full(n_people - len(death), NEVER)])


def browse_sessions(
    rng: np.random.Generator,
    engagement: Engagement,
    buyers: Buyers,
    death: np.ndarray,
    lead_start: np.ndarray,
    clock: Clock,
    params: Params,
) -> tuple[np.ndarray, np.ndarray]:
    """Engagement web sessions before the cutoff: person and Unix seconds of each.

    Buyers browse from their first purchase at their ``browse_rate`` until dropout, then at that rate times
    ``exp(-s / tau)`` ``s`` days after it; window-shoppers (leads) from ``lead_start`` (their contact's
    creation, one per lead) at theirs. The faded count is Poisson with mean ``rate * tau * (1 - exp(-D / tau))``
    over the ``D`` days from dropout to the cutoff, its times drawn from the truncated exponential.
    """
    n_people = len(engagement.browse_rate)
    rate = engagement.browse_rate
    cutoff = clock.days(clock.cutoff)
    start = np.concatenate([buyers.t0_days, clock.days(lead_start)])
    dropout = np.minimum(clock.days(person_death(death, n_people)), cutoff + 1.0)
    alive = np.clip(np.minimum(dropout, cutoff) - start, 0.0, None)
    count = rng.poisson(rate * alive)
    person = np.repeat(np.arange(n_people), count)
    days = start[person] + rng.random(len(person)) * alive[person]
    tau = params.engagement_fade_days
    mass = -np.expm1(-np.clip(cutoff - dropout, 0.0, None) / tau)
    faded_count = rng.poisson(rate * tau * mass)
    faded_person = np.repeat(np.arange(n_people), faded_count)
    faded_days = dropout[faded_person] - tau * np.log1p(-rng.random(len(faded_person)) * mass[faded_person])
    return np.concatenate([person, faded_person]), to_seconds(clock, np.concatenate([days, faded_days]))


@dataclass
class Newsletters:
    """The monthly newsletters and what each send led to; opens, clicks and unsubscribes index the sends."""

    table: pl.DataFrame  # campaigns.csv columns plus start (Unix seconds the sending starts)
    send_newsletter: np.ndarray  # index into table, sends grouped by newsletter in date order
    send_contact: np.ndarray
    send_at: np.ndarray
    unsubscribed: np.ndarray  # send indexes
    unsubscribe_at: np.ndarray
    opened: np.ndarray
    open_at: np.ndarray
    clicked: np.ndarray
    click_at: np.ndarray


def schedule_newsletters(params: Params, clock: Clock, campaigns: pl.DataFrame) -> pl.DataFrame:
    """One newsletter a month on ``newsletter_day`` (moved a day on when an email campaign starts that day),
    the last ``newsletter_months`` before the cutoff that fall inside the history."""
    zone = ZoneInfo(clock.timezone)
    origin_day = dt.datetime.fromtimestamp(clock.origin, dt.UTC).date()
    email_days = set(campaigns.filter(pl.col("channel") == "email")["starts_on"].to_list())
    rows = []
    month = clock.as_of.year * 12 + clock.as_of.month - 1
    while len(rows) < params.newsletter_months:
        year, month_of_year = divmod(month, 12)
        day = dt.date(year, month_of_year + 1, params.newsletter_day)
        while day in email_days:
            day += dt.timedelta(days=1)
        month -= 1
        if day >= clock.as_of:
            continue
        if day <= origin_day:
            break
        start = int(dt.datetime(day.year, day.month, day.day, NEWSLETTER_HOUR, tzinfo=zone).timestamp())
        rows.append(
            {
                "campaign_id": f"NL-{year}-{month_of_year + 1:02d}",
                "name": f"Newsletter {year}-{month_of_year + 1:02d}",
                "channel": "email",
                "objective": "newsletter",
                "offer_category": None,
                "starts_on": day,
                "ends_on": day,
                "control_share": 0.0,
                "start": start,
            }
        )
    schema = {
        "campaign_id": pl.String, "name": pl.String, "channel": pl.String, "objective": pl.String,
        "offer_category": pl.String, "starts_on": pl.Date, "ends_on": pl.Date, "control_share": pl.Float64,
        "start": pl.Int64,
    }  # fmt: skip
    return pl.DataFrame(rows[::-1], schema=schema)


def send_newsletters(rng: np.random.Generator, table: pl.DataFrame, contacts: Contacts, params: Params) -> Newsletters:
    """Send every newsletter to the contacts with a usable email and email consent when it goes out.

    Unsubscribes withdraw the email consent (``contacts.opt_out_at`` is updated in place). Run before the
    campaigns, whose sends then respect these unsubscribes; :func:`drop_withdrawn` afterwards removes the
    newsletters sent after a campaign's unsubscribe.
    """
    frame = contacts.frame
    usable = frame["email_usable"].to_numpy()
    created = frame["created"].to_numpy()
    column = CONSENT_COLUMN["email"]
    sends, leaves = [], []
    offset = 0
    for k, start in enumerate(table["start"].to_list()):
        sent = start + (rng.random(len(usable)) * 2 * 3600).astype(np.int64)
        consented = contacts.opt_in[:, column] & (contacts.opt_out_at[:, column] > sent)
        who = np.flatnonzero(usable & (created < start - SECONDS_PER_DAY) & consented)
        at = sent[who]
        leave = np.flatnonzero(rng.random(len(who)) < params.newsletter_unsubscribe_rate)
        leave_at = at[leave] + rng.exponential(SECONDS_PER_DAY, len(leave)).astype(np.int64)
        contacts.opt_out_at[who[leave], column] = np.minimum(contacts.opt_out_at[who[leave], column], leave_at)
        sends.append((np.full(len(who), k, np.int32), who.astype(np.int32), at))
        leaves.append((offset + leave, leave_at))
        offset += len(who)

    def stack(parts, i, dtype):
        return np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, dtype)

    empty = np.zeros(0, np.int64)
    return Newsletters(
        table,
        stack(sends, 0, np.int32),
        stack(sends, 1, np.int32),
        stack(sends, 2, np.int64),
        stack(leaves, 0, np.int64),
        stack(leaves, 1, np.int64),
        empty, empty, empty, empty,
    )  # fmt: skip


def drop_withdrawn(newsletters: Newsletters, contacts: Contacts) -> Newsletters:
    """Remove the newsletters sent after the contact withdrew email consent (a campaign's unsubscribe)."""
    allowed = newsletters.send_at < contacts.opt_out_at[newsletters.send_contact, CONSENT_COLUMN["email"]]
    new_index = np.cumsum(allowed) - 1
    leave = allowed[newsletters.unsubscribed]
    return Newsletters(
        newsletters.table,
        newsletters.send_newsletter[allowed],
        newsletters.send_contact[allowed],
        newsletters.send_at[allowed],
        new_index[newsletters.unsubscribed[leave]],
        newsletters.unsubscribe_at[leave],
        newsletters.opened, newsletters.open_at, newsletters.clicked, newsletters.click_at,
    )  # fmt: skip


def _probability(rate, exponent: np.ndarray) -> np.ndarray:
    """``1 - (1 - rate) ** exponent``: a base probability ``rate`` scaled smoothly, staying below 1."""
    return -np.expm1(np.log1p(-np.asarray(rate)) * exponent)


def newsletter_responses(
    rng: np.random.Generator,
    newsletters: Newsletters,
    engagement: Engagement,
    contact_person: np.ndarray,
    death: np.ndarray,
    params: Params,
) -> Newsletters:
    """Opens and clicks of every newsletter send (newsletter by newsletter, to keep the arrays small)."""
    dropout = person_death(death, len(engagement.level))
    bounds = np.searchsorted(newsletters.send_newsletter, np.arange(newsletters.table.height + 1))
    opened, open_at, clicked, click_at = [], [], [], []
    for lo, hi in itertools.pairwise(bounds):
        person = contact_person[newsletters.send_contact[lo:hi]]
        sent = newsletters.send_at[lo:hi]
        email = engagement.responsiveness[person, EMAIL]
        exponent = engagement.activity[person] * email * fade(sent, dropout[person], params)
        did_open = np.flatnonzero(rng.random(hi - lo) < _probability(params.newsletter_open_rate, exponent))
        at = sent[did_open] + rng.exponential(8 * 3600, len(did_open)).astype(np.int64)
        did_click = rng.random(len(did_open)) < _probability(params.newsletter_click_rate, email[did_open])
        opened.append(lo + did_open)
        open_at.append(at)
        clicked.append(lo + did_open[did_click])
        click_at.append(at[did_click] + 1 + rng.exponential(600, did_click.sum()).astype(np.int64))
    empty = [np.zeros(0, np.int64)]
    return Newsletters(
        newsletters.table, newsletters.send_newsletter, newsletters.send_contact, newsletters.send_at,
        newsletters.unsubscribed, newsletters.unsubscribe_at,
        np.concatenate(empty + opened), np.concatenate(empty + open_at),
        np.concatenate(empty + clicked), np.concatenate(empty + click_at),
    )  # fmt: skip


def campaign_responses(
    rng: np.random.Generator, run: CampaignRun, engagement: Engagement, death: np.ndarray, params: Params
) -> None:
    """Opens and clicks of the campaign sends (``run.open_at`` and ``run.click_at``, in place).

    Email: opened with probability ``1 - (1 - open_rate) ** (s_email * f)`` and, once opened, clicked with
    ``1 - (1 - click_rate) ** s_email``; text: clicked with ``1 - (1 - click_rate) ** (s_sms * f)``; calls leave
    no open or click. ``open_rate`` and ``click_rate`` are the campaign's, ``s`` the person's responsiveness,
    ``f`` the fade after dropout.
    """
    table = run.table
    channel = table["channel"].to_numpy()[run.send_campaign]
    open_rate = table["open_rate"].to_numpy()[run.send_campaign]
    click_rate = table["click_rate"].to_numpy()[run.send_campaign]
    person = run.send_person
    channel_index = np.asarray([CAMPAIGN_CHANNELS.index(c) for c in table["channel"]], np.int64)
    responsive = engagement.responsiveness[person, channel_index[run.send_campaign]]
    left = fade(run.send_at, death[person], params)
    n = len(person)
    is_email, is_sms = channel == "email", channel == "sms"
    opened = is_email & (rng.random(n) < _probability(open_rate, responsive * left))
    run.open_at = np.where(opened, run.send_at + rng.exponential(8 * 3600, n).astype(np.int64), NEVER)
    clicked_email = opened & (rng.random(n) < _probability(click_rate, responsive))
    clicked_sms = is_sms & (rng.random(n) < _probability(click_rate, responsive * left))
    delay = np.where(is_email, rng.exponential(600, n) + 1, rng.exponential(3600, n)).astype(np.int64)
    run.click_at = np.where(clicked_email, run.open_at + delay, np.where(clicked_sms, run.send_at + delay, NEVER))
