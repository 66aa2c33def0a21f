"""Assemble the simulated world: people, the purchase process with its effects, campaigns and orders.

Nothing here writes files; :mod:`exports` renders the world the way each source system would, and
:mod:`truth` writes what really happened.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from . import vocab
from .campaigns import CampaignRun, run_campaigns, sample_effects, schedule
from .catalog import Catalogue, Lines, build_catalogue, split_orders
from .engagement import (
    Engagement,
    Newsletters,
    campaign_responses,
    draw_engagement,
    drop_withdrawn,
    newsletter_responses,
    schedule_newsletters,
    send_newsletters,
)
from .identities import Contacts, People, draw_contacts, draw_people
from .params import SECONDS_PER_DAY, Clock, Params
from .simulate import Buyers, Events, base_events, death_times, draw_buyers, realised, tier_index, trailing_spend

STREAMS = (
    "buyers", "people", "contacts", "catalogue", "purchases", "campaigns", "orders", "lines", "rates", "erp", "crm",
    "callcenter", "marketing", "web", "engagement", "newsletters", "responses",
)  # fmt: skip
SALES_CHANNELS = ("web", "store", "phone")
CURRENCIES = ("EUR", "GBP", "USD")
STORE_CODES = tuple(code for country in vocab.COUNTRIES for code in vocab.STORES[country])


def local_datetimes(seconds: np.ndarray, timezone: str) -> pl.Series:
    """Naive local wall-clock datetimes (microseconds) for Unix seconds."""
    return (
        pl.from_epoch(pl.Series(np.asarray(seconds, dtype=np.int64)), time_unit="s")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone(timezone)
        .dt.replace_time_zone(None)
    )


def utc_datetimes(seconds: np.ndarray) -> pl.Series:
    """Naive UTC datetimes for Unix seconds."""
    return pl.from_epoch(pl.Series(np.asarray(seconds, dtype=np.int64)), time_unit="s")


def month_index(day: dt.date) -> int:
    return day.year * 12 + day.month - 1


@dataclass
class Orders:
    """Realised orders (history and the future window) in time order; ``order_no`` follows that order."""

    person: np.ndarray
    t: np.ndarray
    value_eur: np.ndarray
    send: np.ndarray
    case_open: np.ndarray
    case_close: np.ndarray
    satisfaction: np.ndarray
    channel: np.ndarray  # index into SALES_CHANNELS
    store: np.ndarray  # index into STORE_CODES, -1 when not a store order
    currency: np.ndarray  # index into CURRENCIES
    eur_per_unit: np.ndarray  # rate of the order's currency in its local month
    n_history: int  # the first n_history orders are before the cutoff

    def __len__(self) -> int:
        return len(self.t)


@dataclass
class World:
    seed: int
    customers: int
    effects: frozenset[str]
    params: Params
    clock: Clock
    buyers: Buyers
    people: People
    contacts: Contacts
    catalogue: Catalogue
    campaigns: CampaignRun
    campaign_effects: pl.DataFrame  # per campaign, what it did to its target group (campaigns.sample_effects)
    engagement: Engagement
    newsletters: Newsletters
    death: np.ndarray
    orders: Orders
    total_cents: np.ndarray  # per history order, in its currency
    lines: Lines  # lines of the history orders
    rates: pl.DataFrame  # currency_code, rate_month (date), eur_per_unit, month (index)
    favourite_group: np.ndarray
    rngs: dict[str, np.random.Generator]


def monthly_rates(rng: np.random.Generator, clock: Clock) -> pl.DataFrame:
    """EUR per unit of GBP and USD on the first of each month (a random walk), EUR itself at 1."""
    origin_day = dt.datetime.fromtimestamp(clock.origin, dt.UTC).date()
    first, last = month_index(origin_day), month_index(dt.datetime.fromtimestamp(clock.end, dt.UTC).date())
    months = np.arange(first, last + 1)
    days = [dt.date(int(m // 12), int(m % 12) + 1, 1) for m in months]
    frames = []
    for code, level in (("EUR", 1.0), ("GBP", 1.16), ("USD", 0.91)):
        walk = np.ones(len(months)) if code == "EUR" else level * np.exp(np.cumsum(rng.normal(0, 0.015, len(months))))
        frames.append(
            pl.DataFrame(
                {"currency_code": code, "rate_month": days, "eur_per_unit": np.round(walk, 6), "month": months}
            )
        )
    return pl.concat(frames)


def build_world(customers: int, seed: int, as_of: dt.date, effects: frozenset[str], params: Params) -> World:
    """Simulate ``customers`` buyers (and the leads, contacts, campaigns and orders around them)."""
    streams = np.random.SeedSequence(seed).spawn(len(STREAMS))
    rngs = {name: np.random.default_rng(s) for name, s in zip(STREAMS, streams, strict=True)}
    clock = Clock.build(as_of, params)
    buyers = draw_buyers(rngs["buyers"], customers, params, clock)
    people = draw_people(rngs["people"], buyers, params)
    contacts = draw_contacts(rngs["contacts"], people, buyers, params, clock)
    has_contact = contacts.primary[:customers] >= 0
    origin_day = dt.datetime.fromtimestamp(clock.origin, dt.UTC).date()
    catalogue = build_catalogue(rngs["catalogue"], origin_day)

    engagement = draw_engagement(rngs["engagement"], buyers, len(people), params)

    base = base_events(rngs["purchases"], buyers, has_contact, params, clock, effects)
    base_alive = realised(base, death_times(base, buyers, params, clock, effects))
    table = schedule(rngs["campaigns"], params, clock, catalogue, "campaigns" in effects)
    # newsletters first: the campaigns then respect their unsubscribes, and newsletters sent after a campaign's
    # unsubscribe are dropped afterwards, so no send ever follows a withdrawal
    newsletters = send_newsletters(rngs["newsletters"], schedule_newsletters(params, clock, table), contacts, params)
    run = run_campaigns(
        rngs["campaigns"], table, buyers, contacts, base, base_alive, has_contact, engagement.responsiveness,
        params, clock,
    )  # fmt: skip
    newsletters = drop_withdrawn(newsletters, contacts)
    events = Events.concat([base, run.extras]).sorted_by_person(clock.origin) if len(run.extras) else base
    del base, base_alive
    death = death_times(events, buyers, params, clock, effects)
    campaign_effects = sample_effects(events, death, buyers, run, params, clock, effects)
    happened = events.take(np.flatnonzero(realised(events, death)))
    del events
    contact_person = contacts.frame["person"].to_numpy()
    campaign_responses(rngs["responses"], run, engagement, death, params)
    newsletters = newsletter_responses(rngs["responses"], newsletters, engagement, contact_person, death, params)
    order = np.lexsort((happened.person, happened.t))
    happened = happened.take(order)

    rng = rngs["orders"]
    country = people.country[:customers]
    currency_of_country = {code: CURRENCIES.index(vocab.CURRENCY_BY_COUNTRY[code]) for code in vocab.COUNTRIES}
    currency_of_buyer = pl.Series(country).replace_strict(currency_of_country, return_dtype=pl.Int64).to_numpy()
    preference = rng.dirichlet([5.0, 3.0, 1.0], customers)
    cumulative = np.cumsum(preference, axis=1)
    channel = (rng.random(len(happened))[:, None] > cumulative[happened.person]).sum(axis=1).clip(0, 2)
    home_store = np.zeros(customers, np.int64)
    for code in vocab.COUNTRIES:
        rows = np.flatnonzero(country == code)
        first_store = STORE_CODES.index(vocab.STORES[code][0])
        home_store[rows] = first_store + rng.integers(0, len(vocab.STORES[code]), len(rows))
    store = np.where(channel == 1, home_store[happened.person], -1)
    favourite_group = rng.choice(len(catalogue.group_names), customers, p=catalogue.group_weight)

    rates = monthly_rates(rngs["rates"], clock)
    local = local_datetimes(happened.t, clock.timezone)
    month = (local.dt.year().cast(pl.Int64) * 12 + local.dt.month().cast(pl.Int64) - 1).to_numpy()
    currency = currency_of_buyer[happened.person]
    lookup = rates.select("currency_code", "month", "eur_per_unit")
    eur_per_unit = (
        pl.DataFrame({"currency_code": pl.Series(CURRENCIES).gather(currency), "month": month})
        .join(lookup, on=["currency_code", "month"], how="left", maintain_order="left")["eur_per_unit"]
        .to_numpy()
    )
    n_history = int(np.searchsorted(happened.t, clock.cutoff, side="left"))
    orders = Orders(
        happened.person, happened.t, happened.value, happened.send, happened.case_open, happened.case_close,
        happened.satisfaction, channel, store, currency, eur_per_unit, n_history,
    )  # fmt: skip

    history = slice(0, n_history)
    send = orders.send[history]
    offer = run.table["offer"].to_numpy()
    forced = np.where(send >= 0, offer[run.send_campaign[np.maximum(send, 0)]] if len(run.send_campaign) else -1, -1)
    total_cents, lines = split_orders(
        rngs["lines"], orders.value_eur[history], orders.eur_per_unit[history],
        favourite_group[orders.person[history]], forced, catalogue, params, "affinities" in effects,
    )  # fmt: skip
    return World(
        seed, customers, effects, params, clock, buyers, people, contacts, catalogue, run, campaign_effects,
        engagement, newsletters, death, orders, total_cents, lines, rates, favourite_group, rngs,
    )  # fmt: skip


def tier_at(world: World, instant: int) -> np.ndarray:
    """Loyalty tier index of every buyer from realised spend in the 12 months before ``instant``."""
    orders = world.orders
    before = orders.t < instant
    recent = before & (orders.t >= instant - world.params.tier_window_days * SECONDS_PER_DAY)
    spend = np.bincount(orders.person[recent], weights=orders.value_eur[recent], minlength=world.customers)
    return tier_index(spend, world.params)


__all__ = ["World", "build_world", "local_datetimes", "tier_at", "trailing_spend", "utc_datetimes"]
