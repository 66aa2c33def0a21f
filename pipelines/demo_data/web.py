"""The web shop's analytics: sessions (with the customer number when logged in) and their events."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import polars as pl

from .erp import customer_numbers
from .formats import write_parquet, write_tool_csv
from .params import SECONDS_PER_DAY
from .simulate import to_seconds
from .world import World, utc_datetimes

DEVICES = ("desktop", "mobile", "tablet")
SOURCES = ("google", "direct", "facebook", "instagram", "bing", "affiliate", "newsletter", "sms")
SOURCE_SHARES = (0.42, 0.28, 0.1, 0.1, 0.05, 0.05)
EVENT_TYPES = ("page_view", "product_view", "add_to_cart", "checkout")


def random_hex(rng: np.random.Generator, n: int, n_bytes: int) -> pl.Series:
    """``n`` random identifiers of ``2 * n_bytes`` hexadecimal digits."""
    raw = rng.integers(0, 256, (n, n_bytes), dtype=np.uint8)
    return pl.Series(np.frombuffer(raw.tobytes(), dtype=f"S{n_bytes}")).bin.encode("hex")


def _pick(rng: np.random.Generator, shares, n: int) -> np.ndarray:
    cdf = np.cumsum(shares) / np.sum(shares)
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(shares) - 1)


def write_web(world: World, out: Path) -> tuple[dict[str, int], pl.DataFrame]:
    """Write ``web/sessions.csv`` and ``web/events/events_YYYY-MM.parquet``; return rows and identity rows."""
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
    lead_count = rng.poisson(1.5, len(leads))
    lead_person = np.repeat(leads, lead_count)
    span = np.maximum(clock.cutoff - lead_created, 1)
    lead_t = np.repeat(lead_created, lead_count) + (rng.random(lead_count.sum()) * np.repeat(span, lead_count)).astype(
        np.int64
    )
    known = n_orders + len(browse_person) + len(lead_person)
    n_anonymous = round(params.anonymous_session_share * known)
    anonymous_t = to_seconds(clock, rng.random(n_anonymous) * clock.days(clock.cutoff))

    kind = np.repeat(np.arange(4), [n_orders, len(browse_person), len(lead_person), n_anonymous])
    person = np.concatenate([order_person, browse_person, lead_person, np.full(n_anonymous, -1)]).astype(np.int64)
    anchor = np.concatenate([order_t, browse_t, lead_t, anonymous_t])
    order_ref = np.concatenate([np.arange(n_orders), np.full(len(kind) - n_orders, -1)])
    n = len(kind)
    duration = np.where(kind == 0, 120 + rng.exponential(720, n), 20 + rng.exponential(360, n)).astype(np.int64)
    start = np.where(kind == 0, anchor - duration, anchor)
    end = np.where(kind == 0, anchor + rng.integers(5, 60, n), anchor + duration)
    keep = np.flatnonzero((start < clock.cutoff) & (start >= clock.origin))
    keep = keep[np.argsort(start[keep], kind="stable")]
    kind, person, start, end, order_ref = kind[keep], person[keep], start[keep], end[keep], order_ref[keep]
    end = np.minimum(end, clock.cutoff - 1)
    n = len(kind)

    logged_in = (person >= 0) & (person < n_buyers) & (rng.random(n) < np.where(kind == 0, 0.92, 0.45))
    device_slot = _pick(rng, (0.6, 0.3, 0.1), n)
    person_visitors = random_hex(rng, 3 * n_people, 8)
    person_devices = rng.integers(0, 3, 3 * n_people)
    pool = max(1, int(0.6 * (person < 0).sum()))
    anonymous_visitors = random_hex(rng, pool, 8)
    anonymous_pick = rng.integers(0, pool, n)
    slot = np.maximum(person, 0) * 3 + device_slot
    visitor = pl.select(
        pl.when(pl.Series(person >= 0))
        .then(person_visitors.gather(slot))
        .otherwise(anonymous_visitors.gather(anonymous_pick))
    ).to_series()
    device = np.where(person >= 0, person_devices[slot], rng.integers(0, 3, n))
    source = _pick(rng, SOURCE_SHARES, n)
    induced = np.where(order_ref >= 0, orders.send[web_order[np.maximum(order_ref, 0)]], -1)
    campaign_channel = world.campaigns.table["channel"].to_numpy()
    send_channel = np.where(
        induced >= 0,
        campaign_channel[world.campaigns.send_campaign[np.maximum(induced, 0)]] if len(world.campaigns.send_at) else "",
        "",
    )
    source = np.where(send_channel == "email", 6, np.where(send_channel == "sms", 7, source))

    # events: page views, product views, add to cart, checkout, in that order inside a session
    is_order = kind == 0
    n_lines = np.where(is_order, line_count[np.maximum(order_ref, 0)], 0)
    counts = np.stack(
        [
            1 + rng.poisson(0.7, n),
            np.where(is_order, n_lines + rng.poisson(0.5, n), rng.poisson(1.5, n)),
            np.where(is_order, n_lines, (rng.random(n) < 0.08).astype(np.int64)),
            is_order.astype(np.int64),
        ]
    )
    catalogue = world.catalogue
    n_products = len(catalogue.list_price)
    order_line = line_start[np.maximum(order_ref, 0)]
    random_first = rng.integers(0, n_products, n)
    first_product = np.where(is_order, lines.product[np.minimum(order_line, len(lines.product) - 1)], random_first)
    session_id = random_hex(rng, n, 12)
    sku = catalogue.frame["sku"]
    slug = {name: name.lower().replace(" & ", "-").replace(" ", "-") for name in catalogue.category_names}
    category = catalogue.product_category[first_product]
    page_kind = _pick(rng, (0.3, 0.35, 0.3, 0.05), n)
    slugs = pl.Series([slug[c] for c in catalogue.category_names]).gather(category)
    landing = pl.select(
        pl.when(pl.Series(page_kind == 0))
        .then(pl.lit("/"))
        .when(pl.Series(page_kind == 1))
        .then(pl.concat_str(pl.lit("/c/"), slugs))
        .when(pl.Series(page_kind == 2))
        .then(pl.concat_str(pl.lit("/p/"), sku.gather(first_product).str.to_lowercase()))
        .otherwise(pl.lit("/sale"))
    ).to_series()
    customer_no = customer_numbers(n_buyers)
    sessions = pl.DataFrame(
        {
            "session_id": session_id,
            "visitor_id": visitor,
            "customer_no": pl.select(
                pl.when(pl.Series(logged_in)).then(customer_no.gather(np.clip(person, 0, n_buyers - 1)))
            ).to_series(),
            "started_at": utc_datetimes(start),
            "ended_at": utc_datetimes(end),
            "device": pl.Series(DEVICES).gather(device),
            "utm_source": pl.Series(SOURCES).gather(source),
            "landing_page": landing,
        }
    )
    rows = {"web/sessions.csv": write_tool_csv(sessions, out / "web" / "sessions.csv")}

    sessions_month = start.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
    first_event = np.cumsum(counts.sum(axis=0)) - counts.sum(axis=0)
    bounds = np.flatnonzero(np.concatenate([[True], sessions_month[1:] != sessions_month[:-1], [True]]))
    pending: dict[int, list[pl.DataFrame]] = {}
    for lo, hi in itertools.pairwise(bounds):
        frame, month = _events(rng, slice(lo, hi), counts, first_event, start, end, order_line, is_order, lines.product,
                               n_products, session_id, sku)  # fmt: skip
        for m in np.unique(month):
            pending.setdefault(int(m), []).append(frame.filter(pl.Series(month == m)))
        for m in sorted(k for k in pending if k <= sessions_month[lo]):
            rows.update(_write_month(out, m, pending.pop(m)))
    for m in sorted(pending):
        rows.update(_write_month(out, m, pending.pop(m)))
    known_session = person >= 0
    identity = pl.DataFrame(
        {
            "source_system": "web",
            "source_table": "sessions",
            "source_record_id": session_id.filter(pl.Series(known_session)),
            "person_id": world.people.frame["person_id"].gather(person[known_session]),
        }
    )
    return rows, identity


def _write_month(out: Path, month: int, parts: list[pl.DataFrame]) -> dict[str, int]:
    label = str(np.datetime64(month, "M"))
    key = f"web/events/events_{label}.parquet"
    return {key: write_parquet(pl.concat(parts), out / key)}


def _events(
    rng: np.random.Generator,
    chunk: slice,
    counts: np.ndarray,
    first_event: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    order_line: np.ndarray,
    is_order: np.ndarray,
    line_product: np.ndarray,
    n_products: int,
    session_id: pl.Series,
    sku: pl.Series,
) -> tuple[pl.DataFrame, np.ndarray]:
    """Events of a chunk of sessions, with the month (``datetime64[M]`` as int) of each event."""
    n_page, n_product, n_cart, _ = (c[chunk] for c in counts)
    n_events = counts[:, chunk].sum(axis=0)
    local = np.repeat(np.arange(len(n_events)), n_events)
    first = np.cumsum(n_events) - n_events
    rank = np.arange(len(local)) - first[local]
    stage = (
        (rank >= n_page[local]).astype(np.int64)
        + (rank >= (n_page + n_product)[local])
        + (rank >= (n_page + n_product + n_cart)[local])
    )
    ordered = is_order[chunk][local]
    view_rank = rank - n_page[local]
    cart_rank = view_rank - n_product[local]
    n_lines = n_cart[local]
    from_view = (stage == 1) & ordered & (view_rank < n_lines)
    from_cart = (stage == 2) & ordered
    line = order_line[chunk][local] + np.where(from_view, view_rank, cart_rank)
    random_product = rng.integers(0, n_products, len(local))
    product = np.where(from_view | from_cart, line_product[np.clip(line, 0, len(line_product) - 1)], random_product)
    session_start = start[chunk][local]
    span = end[chunk][local] - session_start
    event_at = session_start + ((rank + rng.random(len(local))) / n_events[local] * span).astype(np.int64)
    product_event = (stage == 1) | (stage == 2)
    frame = pl.DataFrame(
        {
            "event_id": first_event[chunk][local] + rank + 1,
            "session_id": session_id[chunk].gather(local),
            "event_at": utc_datetimes(event_at).dt.replace_time_zone("UTC"),
            "event_type": pl.Series(EVENT_TYPES).gather(stage),
            "sku": pl.select(pl.when(pl.Series(product_event)).then(sku.gather(product))).to_series(),
        }
    )
    return frame, event_at.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
