"""The web shop's analytics: sessions (with the customer number when logged in) and their events."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import polars as pl

from .engagement import browse_sessions
from .erp import customer_numbers
from .formats import ToolCsv, write_parquet
from .params import SECONDS_PER_DAY
from .simulate import NEVER, to_seconds
from .world import World, utc_datetimes

DEVICES = ("desktop", "mobile", "tablet")
SOURCES = ("google", "direct", "facebook", "instagram", "bing", "affiliate", "newsletter", "sms")
SOURCE_SHARES = (0.42, 0.28, 0.1, 0.1, 0.05, 0.05)
EVENT_TYPES = ("page_view", "product_view", "add_to_cart", "checkout")


def random_hex(rng: np.random.Generator, n: int, n_bytes: int) -> pl.Series:
    """``n`` random identifiers of ``2 * n_bytes`` hexadecimal digits."""
    return _hex(rng.integers(0, 256, (n, n_bytes), dtype=np.uint8))


def _hex(raw: np.ndarray) -> pl.Series:
    """Rows of bytes as hexadecimal strings."""
    return pl.Series(np.frombuffer(raw.tobytes(), dtype=f"S{raw.shape[1]}")).bin.encode("hex")


def _pick(rng: np.random.Generator, shares, n: int) -> np.ndarray:
    cdf = np.cumsum(shares) / np.sum(shares)
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(shares) - 1)


# What opened a session: an order (the checkout session), browsing in the days before a web order, a lead's
# visit, an anonymous visitor, engagement browsing (see engagement.py), a click in an email or text.
ORDER, BEFORE_ORDER, LEAD, ANONYMOUS, BROWSE, CLICK = range(6)


def write_web(world: World, out: Path) -> tuple[dict[str, int], pl.DataFrame]:
    """Write ``web/sessions.csv`` and ``web/events/events_YYYY-MM.parquet``; return rows and identity rows.

    Sessions are drawn as compact arrays (who, when, why), then rendered and written a month at a time, so the
    memory the text takes does not grow with the history.
    """
    rng = world.rngs["web"]
    clock = world.clock
    params = world.params
    orders = world.orders
    h = orders.n_history
    lines = world.lines
    n_people = len(world.people)
    n_buyers = world.customers

    web_order = np.flatnonzero(orders.channel[:h] == 0)
    n_orders = len(web_order)
    order_person = orders.person[web_order]
    order_t = orders.t[web_order]
    # one spare entry so that index 0 stays valid for sessions without an order, even with no web order at all
    line_start = np.append(np.searchsorted(lines.order, web_order), 0)
    line_count = np.append(np.searchsorted(lines.order, web_order, side="right"), 0) - line_start

    browse_count = rng.poisson(params.browse_sessions_per_web_order, n_orders)
    browse_person = np.repeat(order_person, browse_count)
    browse_t = np.repeat(order_t, browse_count) - (rng.random(browse_count.sum()) * 14 * SECONDS_PER_DAY).astype(
        np.int64
    )
    leads = np.arange(n_buyers, n_people)
    lead_created = np.full(len(leads), clock.origin)
    primary = world.contacts.primary[leads]
    has = primary >= 0
    lead_created[has] = world.contacts.frame["created"].to_numpy()[primary[has]]
    # window-shoppers browse at their own rate (engagement); the other leads visit a few times
    visits = np.where(world.engagement.window_shopper[leads], 0, rng.poisson(params.lead_sessions, len(leads)))
    lead_person = np.repeat(leads, visits)
    span = np.maximum(clock.cutoff - lead_created, 1)
    lead_t = np.repeat(lead_created, visits) + (rng.random(visits.sum()) * np.repeat(span, visits)).astype(np.int64)
    engaged_person, engaged_t = browse_sessions(
        rng, world.engagement, world.buyers, world.death, lead_created, clock, params
    )
    click_person, click_t, click_source = _click_sessions(world)
    known = n_orders + len(browse_person) + len(lead_person) + len(engaged_person) + len(click_person)
    n_anonymous = round(params.anonymous_session_share * known)
    anonymous_t = to_seconds(clock, rng.random(n_anonymous) * clock.days(clock.cutoff))

    sizes = [n_orders, len(browse_person), len(lead_person), n_anonymous, len(engaged_person), len(click_person)]
    kind = np.repeat(np.arange(6, dtype=np.int8), sizes)
    person = np.concatenate(
        [order_person, browse_person, lead_person, np.full(n_anonymous, -1), engaged_person, click_person]
    ).astype(np.int64)
    anchor = np.concatenate([order_t, browse_t, lead_t, anonymous_t, engaged_t, click_t])
    order_ref = np.concatenate([np.arange(n_orders), np.full(len(kind) - n_orders, -1)])
    fixed_source = np.concatenate([np.full(len(kind) - len(click_person), -1), click_source]).astype(np.int8)
    del order_person, browse_person, lead_person, engaged_person, click_person
    n = len(kind)
    is_order = kind == ORDER
    duration = np.where(is_order, 120 + rng.exponential(720, n), 20 + rng.exponential(360, n)).astype(np.int64)
    start = np.where(is_order, anchor - duration, anchor)
    end = np.where(is_order, anchor + rng.integers(5, 60, n), anchor + duration)
    del anchor, duration, is_order
    keep = np.flatnonzero((start < clock.cutoff) & (start >= clock.origin))
    keep = keep[np.argsort(start[keep], kind="stable")]
    kind, person, start, end = kind[keep], person[keep], start[keep], np.minimum(end[keep], clock.cutoff - 1)
    order_ref, fixed_source = order_ref[keep], fixed_source[keep]
    del keep

    visitors = _Visitors(rng, n_people, max(1, int(0.6 * (person < 0).sum())))
    customer_no = customer_numbers(n_buyers)
    person_id = world.people.frame["person_id"]
    campaign_channel = world.campaigns.table["channel"].to_numpy()
    catalogue = world.catalogue
    sku = catalogue.frame["sku"]
    slug = {name: name.lower().replace(" & ", "-").replace(" ", "-") for name in catalogue.category_names}
    slugs = pl.Series([slug[c] for c in catalogue.category_names])

    rows: dict[str, int] = {}
    identity = []
    pending: dict[int, list[pl.DataFrame]] = {}
    sessions_month = start.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
    bounds = np.flatnonzero(np.concatenate([[True], sessions_month[1:] != sessions_month[:-1], [True]]))
    next_event_id = 1
    with ToolCsv(out / "web" / "sessions.csv") as writer:
        for lo, hi in itertools.pairwise(bounds):
            chunk = slice(lo, hi)
            m = hi - lo
            who, what, ref = person[chunk], kind[chunk], order_ref[chunk]
            is_order = what == ORDER
            logged_in = (who >= 0) & (who < n_buyers) & (rng.random(m) < np.where(is_order, 0.92, 0.45))
            visitor, device = visitors.pick(rng, who)
            source = _pick(rng, SOURCE_SHARES, m)
            induced = np.where(ref >= 0, orders.send[web_order[np.maximum(ref, 0)]], -1)
            send_channel = np.where(
                induced >= 0,
                campaign_channel[world.campaigns.send_campaign[np.maximum(induced, 0)]]
                if len(world.campaigns.send_at)
                else "",
                "",
            )
            source = np.where(send_channel == "email", 6, np.where(send_channel == "sms", 7, source))
            source = np.where(fixed_source[chunk] >= 0, fixed_source[chunk], source)

            # events: page views, product views, add to cart, checkout, in that order inside a session
            n_lines = np.where(is_order, line_count[np.maximum(ref, 0)], 0)
            counts = np.stack(
                [
                    1 + rng.poisson(0.7, m),
                    np.where(is_order, n_lines + rng.poisson(0.5, m), rng.poisson(1.5, m)),
                    np.where(is_order, n_lines, (rng.random(m) < 0.08).astype(np.int64)),
                    is_order.astype(np.int64),
                ]
            )
            order_line = line_start[np.maximum(ref, 0)]
            random_first = rng.integers(0, len(catalogue.list_price), m)
            first_product = np.where(
                is_order, lines.product[np.minimum(order_line, len(lines.product) - 1)], random_first
            )
            session_id = random_hex(rng, m, 12)
            page_kind = _pick(rng, (0.3, 0.35, 0.3, 0.05), m)
            category_slug = slugs.gather(catalogue.product_category[first_product])
            landing = pl.select(
                pl.when(pl.Series(page_kind == 0))
                .then(pl.lit("/"))
                .when(pl.Series(page_kind == 1))
                .then(pl.concat_str(pl.lit("/c/"), category_slug))
                .when(pl.Series(page_kind == 2))
                .then(pl.concat_str(pl.lit("/p/"), sku.gather(first_product).str.to_lowercase()))
                .otherwise(pl.lit("/sale"))
            ).to_series()
            writer.write(
                pl.DataFrame(
                    {
                        "session_id": session_id,
                        "visitor_id": visitor,
                        "customer_no": pl.select(
                            pl.when(pl.Series(logged_in)).then(customer_no.gather(np.clip(who, 0, n_buyers - 1)))
                        ).to_series(),
                        "started_at": utc_datetimes(start[chunk]),
                        "ended_at": utc_datetimes(end[chunk]),
                        "device": pl.Series(DEVICES).gather(device),
                        "utm_source": pl.Series(SOURCES).gather(source),
                        "landing_page": landing,
                    }
                )
            )
            known_session = who >= 0
            identity.append(
                pl.DataFrame(
                    {
                        "source_system": "web",
                        "source_table": "sessions",
                        "source_record_id": session_id.filter(pl.Series(known_session)),
                        "person_id": person_id.gather(who[known_session]),
                    }
                )
            )
            first_event = next_event_id - 1 + np.cumsum(counts.sum(axis=0)) - counts.sum(axis=0)
            next_event_id += int(counts.sum())
            frame, month = _events(rng, counts, first_event, start[chunk], end[chunk], order_line, is_order,
                                   lines.product, session_id, sku)  # fmt: skip
            for label in np.unique(month):
                pending.setdefault(int(label), []).append(frame.filter(pl.Series(month == label)))
            for label in sorted(k for k in pending if k <= sessions_month[lo]):
                rows.update(_write_month(out, label, pending.pop(label)))
    rows["web/sessions.csv"] = writer.rows
    for label in sorted(pending):
        rows.update(_write_month(out, label, pending.pop(label)))
    columns = ("source_system", "source_table", "source_record_id", "person_id")
    return rows, pl.concat([pl.DataFrame(schema=dict.fromkeys(columns, pl.String)), *identity])


class _Visitors:
    """Cookie ids: three devices per known person (a device type each), a pool of anonymous ones."""

    def __init__(self, rng: np.random.Generator, n_people: int, pool: int):
        self.person_raw = rng.integers(0, 256, (3 * n_people, 8), dtype=np.uint8)
        self.person_device = rng.integers(0, 3, 3 * n_people)
        self.anonymous_raw = rng.integers(0, 256, (pool, 8), dtype=np.uint8)

    def pick(self, rng: np.random.Generator, person: np.ndarray) -> tuple[pl.Series, np.ndarray]:
        """Visitor id and device of each session of ``person`` (-1: anonymous)."""
        n = len(person)
        slot = np.maximum(person, 0) * 3 + _pick(rng, (0.6, 0.3, 0.1), n)
        anonymous = rng.integers(0, len(self.anonymous_raw), n)
        raw = np.where((person >= 0)[:, None], self.person_raw[slot], self.anonymous_raw[anonymous])
        device = np.where(person >= 0, self.person_device[slot], rng.integers(0, 3, n))
        return _hex(raw), device


def _click_sessions(world: World) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A session for every click in a newsletter or a campaign email or text: person, time, utm source index."""
    run, newsletters = world.campaigns, world.newsletters
    contact_person = world.contacts.frame["person"].to_numpy()
    clicked = np.flatnonzero(run.click_at < NEVER)
    channel = run.table["channel"].to_numpy()[run.send_campaign[clicked]]
    person = np.concatenate([run.send_person[clicked], contact_person[newsletters.send_contact[newsletters.clicked]]])
    at = np.concatenate([run.click_at[clicked], newsletters.click_at])
    source = np.concatenate(
        [np.where(channel == "sms", SOURCES.index("sms"), SOURCES.index("newsletter")),
         np.full(len(newsletters.clicked), SOURCES.index("newsletter"))]
    )  # fmt: skip
    return person.astype(np.int64), at.astype(np.int64), source


def _write_month(out: Path, month: int, parts: list[pl.DataFrame]) -> dict[str, int]:
    label = str(np.datetime64(month, "M"))
    key = f"web/events/events_{label}.parquet"
    return {key: write_parquet(pl.concat(parts), out / key)}


def _events(
    rng: np.random.Generator,
    counts: np.ndarray,
    first_event: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    order_line: np.ndarray,
    is_order: np.ndarray,
    line_product: np.ndarray,
    session_id: pl.Series,
    sku: pl.Series,
) -> tuple[pl.DataFrame, np.ndarray]:
    """Events of a chunk of sessions, with the month (``datetime64[M]`` as int) of each event."""
    n_page, n_product, n_cart, _ = counts
    n_events = counts.sum(axis=0)
    local = np.repeat(np.arange(len(n_events)), n_events)
    first = np.cumsum(n_events) - n_events
    rank = np.arange(len(local)) - first[local]
    stage = (
        (rank >= n_page[local]).astype(np.int64)
        + (rank >= (n_page + n_product)[local])
        + (rank >= (n_page + n_product + n_cart)[local])
    )
    ordered = is_order[local]
    view_rank = rank - n_page[local]
    cart_rank = view_rank - n_product[local]
    n_lines = n_cart[local]
    from_view = (stage == 1) & ordered & (view_rank < n_lines)
    from_cart = (stage == 2) & ordered
    line = order_line[local] + np.where(from_view, view_rank, cart_rank)
    random_product = rng.integers(0, len(sku), len(local))
    product = np.where(from_view | from_cart, line_product[np.clip(line, 0, len(line_product) - 1)], random_product)
    session_start = start[local]
    span = end[local] - session_start
    event_at = session_start + ((rank + rng.random(len(local))) / n_events[local] * span).astype(np.int64)
    product_event = (stage == 1) | (stage == 2)
    frame = pl.DataFrame(
        {
            "event_id": first_event[local] + rank + 1,
            "session_id": session_id.gather(local),
            "event_at": utc_datetimes(event_at).dt.replace_time_zone("UTC"),
            "event_type": pl.Series(EVENT_TYPES).gather(stage),
            "sku": pl.select(pl.when(pl.Series(product_event)).then(sku.gather(product))).to_series(),
        }
    )
    return frame, event_at.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
