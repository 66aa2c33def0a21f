"""What really happened: latent parameters, engagement, identities, the future window, affinities, channel
responsiveness and uplift."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import polars as pl

from .campaigns import CAMPAIGN_CHANNELS
from .engagement import EMAIL
from .erp import customer_numbers, order_numbers
from .formats import write_parquet
from .marketing import campaign_uplift
from .params import TIERS
from .simulate import NEVER
from .world import World, local_datetimes, tier_at


def oracle_purchases(lam: np.ndarray, p: np.ndarray, days: float) -> np.ndarray:
    """Expected purchases in ``days`` of a customer alive at the start, BG/NBD with known parameters.

    Dropout hazard ``lambda * p`` per day, purchases at rate ``lambda`` while alive, so
    ``E[X(t)] = (1 - exp(-lambda p t)) / p`` (Fader, Hardie & Lee 2005).
    """
    return -np.expm1(-lam * p * days) / p


def write_truth(world: World, truth: Path, identity: list[pl.DataFrame]) -> dict[str, int]:
    """Write ``truth/``: params.json, people, identity, future orders, category affinity, channel responsiveness
    and campaign uplift.

    The oracle uses the true ``lambda``, ``p`` and alive state at the cutoff; with the tiers effect on, ``p``
    is scaled by the dropout multiplier of the tier held at the cutoff. It ignores tier changes inside the
    window and support cases still to close, so with effects on it is a close oracle rather than an exact one.
    """
    truth.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    params, clock, buyers = world.params, world.clock, world.buyers
    n, tz = world.customers, clock.timezone
    tier = tier_at(world, clock.cutoff)
    alive = world.death >= clock.cutoff
    p_effective = buyers.p.copy()
    if "tiers" in world.effects:
        p_effective = p_effective * np.asarray(params.tier_dropout_multipliers)[tier]
    mean_value = params.p_spend / buyers.nu
    expected = np.where(alive, oracle_purchases(buyers.lam, p_effective, clock.future_days), 0.0)
    orders = world.orders
    future = slice(orders.n_history, len(orders))
    before = np.bincount(orders.person[: orders.n_history], minlength=n)
    actual = np.bincount(orders.person[future], minlength=n)
    actual_spend = np.bincount(orders.person[future], weights=orders.value_eur[future], minlength=n)
    died = world.death < NEVER
    leads = len(world.people) - n
    person_id = world.people.frame["person_id"]
    engagement = world.engagement

    def pad(values, fill=None):
        return pl.concat([pl.Series(values), pl.Series([fill] * leads, dtype=pl.Series(values).dtype)])

    people = pl.DataFrame(
        {
            "person_id": person_id,
            "erp_customer_no": pad(customer_numbers(n)),
            "acquired_on": pad(local_datetimes(buyers.t0, tz).dt.date()),
            "lambda_per_day": pad(buyers.lam),
            "p_dropout": pad(buyers.p),
            "spend_nu": pad(buyers.nu),
            "mean_order_value": pad(mean_value),
            "dropout_on": pad(
                pl.select(
                    pl.when(pl.Series(died)).then(local_datetimes(np.where(died, world.death, 0), tz).dt.date())
                ).to_series()
            ),
            "is_alive_at_cutoff": pad(alive),
            "tier_at_cutoff": pad(np.asarray(TIERS)[tier]),
            "purchases_before_cutoff": pad(before.astype(np.int64), 0),
            "expected_purchases_6m": pad(expected, 0.0),
            "expected_spend_6m": pad(expected * mean_value, 0.0),
            "actual_purchases_6m": pad(actual.astype(np.int64), 0),
            "actual_spend_6m": pad(np.round(actual_spend, 2), 0.0),
            "engagement": engagement.level,
            "activity": engagement.activity,
            "browse_sessions_per_day": engagement.browse_rate,
            "newsletter_open_probability": -np.expm1(
                np.log1p(-params.newsletter_open_rate) * engagement.activity * engagement.responsiveness[:, EMAIL]
            ),
            "is_window_shopper": engagement.window_shopper,
        }
    ).sort("person_id")
    rows["truth/people.parquet"] = write_parquet(people, truth / "people.parquet")
    rows["truth/identity.parquet"] = write_parquet(pl.concat(identity), truth / "identity.parquet")

    index = np.arange(orders.n_history, len(orders))
    future_orders = pl.DataFrame(
        {
            "order_no": order_numbers(index),
            "person_id": person_id.gather(orders.person[future]),
            "customer_no": customer_numbers(n).gather(orders.person[future]),
            "ordered_at": local_datetimes(orders.t[future], tz),
            "order_value_eur": np.round(orders.value_eur[future], 2),
        }
    )
    rows["truth/future_orders.parquet"] = write_parquet(future_orders, truth / "future_orders.parquet")
    rows["truth/category_affinity.parquet"] = write_parquet(
        category_affinity(world), truth / "category_affinity.parquet"
    )
    responsiveness = pl.DataFrame(
        {
            "person_id": person_id,
            "erp_customer_no": pad(customer_numbers(n)),
            **{f"{c}_propensity": engagement.responsiveness[:, i] for i, c in enumerate(CAMPAIGN_CHANNELS)},
            "best_channel": np.asarray(CAMPAIGN_CHANNELS)[engagement.best_channel()],
        }
    ).sort("person_id")
    rows["truth/channel_responsiveness.parquet"] = write_parquet(
        responsiveness, truth / "channel_responsiveness.parquet"
    )
    rows["truth/campaign_uplift.parquet"] = write_parquet(campaign_uplift(world), truth / "campaign_uplift.parquet")

    document = {
        "seed": world.seed,
        "as_of": clock.as_of.isoformat(),
        "customers": n,
        "leads": leads,
        "effects": sorted(world.effects),
        "time_unit": "day",
        "history_start_utc": int(clock.origin),
        "cutoff_unix": int(clock.cutoff),
        "future_end_unix": int(clock.end),
        "future_days": clock.future_days,
        "params": asdict(params),
        "oracle": "expected_purchases_6m = (1 - exp(-lambda p' t)) / p' for customers alive at the cutoff, "
        "p' = p times the dropout multiplier of the tier at the cutoff when the tiers effect is on; "
        "expected_spend_6m = expected_purchases_6m * p_spend / nu (EUR)",
        "campaign_attribution_days": params.campaign_attribution_days,
        "campaign_uplift": "per campaign, over its target members: the campaign's effect on them in the "
        "warehouse's window (local dates from the day a member was assigned to the campaign's last day plus "
        "campaign_attribution_days, before the cutoff): as simulated minus the same world without the "
        "campaign's extra purchases (dropout recomputed); revenue in EUR at order value, before returns",
    }
    (truth / "params.json").write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    rows["truth/params.json"] = 1
    return rows


def category_affinity(world: World) -> pl.DataFrame:
    """The designed category pairs (same basket group) with their lift over orders before the cutoff.

    ``lift = P(a and b in an order) / (P(a) P(b))``. Empty when the affinities effect is off: no pair is
    bought together by design then.
    """
    schema = {
        "basket_group": pl.String, "category_a": pl.String, "category_b": pl.String, "orders": pl.Int64,
        "orders_with_a": pl.Int64, "orders_with_b": pl.Int64, "orders_with_both": pl.Int64, "lift": pl.Float64,
    }  # fmt: skip
    if "affinities" not in world.effects:
        return pl.DataFrame(schema=schema)
    catalogue = world.catalogue
    lines = world.lines
    bits = np.left_shift(np.int64(1), catalogue.product_category[lines.product].astype(np.int64))
    starts = np.flatnonzero(np.concatenate([[True], lines.order[1:] != lines.order[:-1]]))
    mask = np.bitwise_or.reduceat(bits, starts)
    total = len(mask)
    rows = []
    for g, name in enumerate(catalogue.group_names):
        members = catalogue.group_members(g)
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                has_a = (mask >> a) & 1 == 1
                has_b = (mask >> b) & 1 == 1
                both = int((has_a & has_b).sum())
                n_a, n_b = int(has_a.sum()), int(has_b.sum())
                lift = both * total / (n_a * n_b) if n_a and n_b else float("nan")
                rows.append(
                    (name, catalogue.category_names[a], catalogue.category_names[b], total, n_a, n_b, both, lift)
                )
    return pl.DataFrame(rows, schema=schema, orient="row")
