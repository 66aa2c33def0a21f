"""The call centre's Asterisk call detail records (``cdr_csv`` Master.csv)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from . import vocab
from .erp import Returns
from .formats import write_asterisk_csv
from .identities import phone_numbers, render_phones
from .params import SECONDS_PER_DAY
from .simulate import to_seconds
from .world import World, local_datetimes

DISPOSITIONS = ("ANSWERED", "NO ANSWER", "BUSY", "FAILED")


def write_calls(world: World, out: Path, cases: pl.DataFrame, returns: Returns) -> tuple[dict[str, int], pl.DataFrame]:
    """Write ``callcenter/Master.csv``: sales calls behind phone orders, support and returns calls, and calls
    from numbers nobody in the CRM has. Returns rows written and the identity rows of known callers' calls."""
    rng = world.rngs["callcenter"]
    clock = world.clock
    orders = world.orders
    h = orders.n_history
    phone_orders = np.flatnonzero(orders.channel[:h] == 2)
    talk = 90 + rng.exponential(300, len(phone_orders))
    sales = (orders.person[phone_orders], orders.t[phone_orders] - talk.astype(np.int64) - 20, 0, True)
    case_person = cases["person"].to_numpy()
    calls_case = rng.random(len(case_person)) < 0.5
    queue = np.where(cases["category"].to_numpy() == "Returns", 2, 1)
    support = (
        case_person[calls_case],
        cases["opened"].to_numpy()[calls_case] - rng.integers(60, 900, calls_case.sum()),
        queue[calls_case],
        False,
    )
    calls_return = rng.random(len(returns.line)) < 0.25
    return_person = orders.person[world.lines.order[returns.line[calls_return]]]
    before = (rng.uniform(0.2, 3.0, calls_return.sum()) * SECONDS_PER_DAY).astype(np.int64)
    return_calls = (return_person, returns.returned_at[calls_return] - before, 2, False)

    person = np.concatenate([np.asarray(c[0], np.int64) for c in (sales, support, return_calls)])
    start = np.concatenate([c[1] for c in (sales, support, return_calls)])
    queue_index = np.concatenate(
        [np.broadcast_to(np.asarray(c[2]), len(c[0])) for c in (sales, support, return_calls)]
    ).astype(np.int64)
    always_answered = np.concatenate([np.full(len(c[0]), c[3]) for c in (sales, support, return_calls)])
    n_unknown = round(world.params.unknown_caller_share * len(person))
    origin_days = rng.random(n_unknown) * clock.days(clock.cutoff)
    person = np.concatenate([person, np.full(n_unknown, -1)])
    start = np.concatenate([start, to_seconds(clock, origin_days)])
    queue_index = np.concatenate([queue_index, rng.integers(0, 3, n_unknown)])
    always_answered = np.concatenate([always_answered, np.zeros(n_unknown, bool)])
    keep = np.flatnonzero(start < clock.cutoff)
    keep = keep[np.argsort(start[keep], kind="stable")]
    person, start, queue_index, always_answered = person[keep], start[keep], queue_index[keep], always_answered[keep]
    n = len(start)

    people = world.people.frame
    country = people["country"].to_numpy()
    caller_country = np.where(
        person >= 0, country[np.maximum(person, 0)], np.asarray(vocab.COUNTRIES)[rng.integers(0, 5, n)]
    )
    own_phone = (person >= 0) & (rng.random(n) < 0.9)
    nsn = pl.select(
        pl.when(pl.Series(own_phone))
        .then(people["phone_nsn"].gather(np.maximum(person, 0)))
        .otherwise(phone_numbers(rng, caller_country, "other"))
    ).to_series()
    src = render_phones(rng, nsn, caller_country, np.full(n, "network"))
    hotline = {code: plan["hotline"] for code, plan in vocab.PHONE_PLANS.items()}
    dst = pl.Series(caller_country).replace_strict(hotline, return_dtype=pl.String)

    disposition = np.searchsorted([0.82, 0.92, 0.97], rng.random(n), side="right")
    disposition = np.where(always_answered, 0, disposition)
    answered = disposition == 0
    ring = np.where(disposition >= 2, rng.integers(0, 4, n), rng.integers(4, 45, n))
    talk = np.where(answered, 30 + rng.exponential(260, n), 0).astype(np.int64)
    answer = start + ring
    end = answer + talk
    sequence = np.arange(n)
    uniqueid = pl.format("{}.{}", pl.Series(start), pl.Series(sequence))
    tz = clock.timezone
    fmt = "%Y-%m-%d %H:%M:%S"
    agent = rng.integers(101, 140, n)
    frame = pl.select(
        pl.lit("").alias("accountcode"),
        src.alias("src"),
        dst.alias("dst"),
        pl.lit("from-trunk").alias("dcontext"),
        pl.format('"{}" <{}>', src, src).alias("clid"),
        pl.format("PJSIP/trunk-{}", pl.Series(sequence).cast(pl.String).str.zfill(8)).alias("channel"),
        pl.when(pl.Series(answered))
        .then(pl.format("PJSIP/agent{}-{}", pl.Series(agent), pl.Series(sequence).cast(pl.String).str.zfill(8)))
        .otherwise(pl.lit(""))
        .alias("dstchannel"),
        pl.lit("Queue").alias("lastapp"),
        pl.Series("lastdata", np.asarray(["sales", "support", "returns"])[queue_index]),
        local_datetimes(start, tz).dt.strftime(fmt).alias("start"),
        pl.when(pl.Series(answered))
        .then(local_datetimes(answer, tz).dt.strftime(fmt))
        .otherwise(pl.lit(""))
        .alias("answer"),
        local_datetimes(end, tz).dt.strftime(fmt).alias("end"),
        pl.Series("duration", end - start),
        pl.Series("billsec", end - answer).clip(0) * pl.Series(answered).cast(pl.Int64),
        pl.Series("disposition", np.asarray(DISPOSITIONS)[disposition]),
        pl.lit("DOCUMENTATION").alias("amaflags"),
        uniqueid.alias("uniqueid"),
        pl.lit("").alias("userfield"),
    )
    rows = {"callcenter/Master.csv": write_asterisk_csv(frame, out / "callcenter" / "Master.csv")}
    known = person >= 0
    identity = pl.DataFrame(
        {
            "source_system": "callcenter",
            "source_table": "Master",
            "source_record_id": frame["uniqueid"].filter(pl.Series(known)),
            "person_id": people["person_id"].gather(person[known]),
        }
    )
    return rows, identity
