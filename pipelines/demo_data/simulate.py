"""The latent purchase process: BG/NBD timing, Gamma-Gamma order values and the switchable effects.

Every buyer makes a first purchase at acquisition and then repeat purchases as a Poisson process of rate
``lambda`` while alive; after each repeat purchase they drop out with probability ``p`` (Fader, Hardie & Lee
2005, "Counting your customers the easy way: an alternative to the Pareto/NBD model", Marketing Science 24(2)).
Each order is worth ``z ~ Gamma(p_spend, nu)`` EUR (Fader, Hardie & Lee 2005, "RFM and CLV: using iso-value
curves for customer base analysis", JMR 42(4); Colombo & Jiang 1999).

The effects only change *when a customer dies* and *how many purchases a campaign adds*, so everything is
vectorised over "potential" purchases: all purchases a customer would make if they never died (cut at a
guaranteed dropout, see :func:`draw_repeat_purchases`), each carrying its own uniform draw for the dropout
decision and its own support-case fate. A customer's death time is then the earliest dropout candidate,
and a potential purchase is realised when it happens no later than that. This is exact: a candidate's
own history (trailing spend for the tier, earlier cases) is made of purchases before it, which are realised
whenever the candidate itself could matter.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .params import SECONDS_PER_DAY, Clock, Params

NEVER = np.iinfo(np.int64).max
_KEY_SHIFT = 31  # person << 31 | seconds since origin; the window spans well under 2**31 seconds

# Share of purchases per local hour (the ERP's zone), shifted one hour to UTC; used to place a purchase
# inside its day so that shops are busy at noon and in the evening, not at 4 am.
_LOCAL_HOURLY = np.array(
    [
        1.0,
        0.6,
        0.3,
        0.2,
        0.2,
        0.3,
        0.6,
        1.2,
        2.0,
        3.0,
        3.6,
        4.0,
        4.0,
        3.6,
        3.2,
        3.2,
        3.4,
        3.8,
        4.2,
        4.6,
        4.8,
        4.2,
        3.0,
        1.8,
    ]
)
_UTC_HOURLY = np.roll(_LOCAL_HOURLY, -1)
_HOUR_CDF = np.concatenate([[0.0], np.cumsum(_UTC_HOURLY) / _UTC_HOURLY.sum()])
_HOUR_GRID = np.arange(25) / 24.0


def to_seconds(clock: Clock, days: np.ndarray) -> np.ndarray:
    """Unix seconds for continuous days since ``clock.origin``, placed within each day by the hourly profile.

    The map is monotone inside every UTC day and keeps the day, so counts per day (what a BG/NBD fit sees)
    are unchanged.
    """
    whole = np.floor(days)
    within = np.interp(days - whole, _HOUR_CDF, _HOUR_GRID)
    return clock.origin + ((whole + within) * SECONDS_PER_DAY).astype(np.int64)


@dataclass
class Buyers:
    """Latent traits of the ``n`` buyers, ordered by acquisition (the ERP numbers accounts in that order)."""

    t0: np.ndarray  # int64 Unix seconds of the first purchase
    t0_days: np.ndarray  # float days since origin (before placing within the day)
    lam: np.ndarray  # purchase rate per day
    p: np.ndarray  # dropout probability after a repeat purchase
    nu: np.ndarray  # Gamma-Gamma rate; mean order value is p_spend / nu

    def __len__(self) -> int:
        return len(self.t0)


def draw_buyers(rng: np.random.Generator, n: int, params: Params, clock: Clock) -> Buyers:
    """Draw acquisition dates and the BG/NBD and Gamma-Gamma parameters of ``n`` buyers.

    ``lambda ~ Gamma(r, rate=alpha)``, ``p ~ Beta(a, b)`` (Fader, Hardie & Lee 2005) and
    ``nu ~ Gamma(q, rate=gamma)`` (Colombo & Jiang 1999), independently of each other and of acquisition.
    """
    t0_days = _acquisition_days(rng, n, params, clock)
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = np.clip(rng.beta(params.a, params.b, n), 1e-12, 1.0)
    nu = rng.gamma(params.q, 1.0 / params.gamma, n)
    return Buyers(to_seconds(clock, t0_days), t0_days, lam, p, nu)


def _acquisition_days(rng: np.random.Generator, n: int, params: Params, clock: Clock) -> np.ndarray:
    """First-purchase days over the history window: growing year on year, busier before Christmas."""
    n_days = (clock.last_acquisition - clock.origin) // SECONDS_PER_DAY
    day = np.arange(n_days)
    dates = np.datetime64(clock.origin, "s").astype("datetime64[D]") + day
    day_of_year = (dates - dates.astype("datetime64[Y]")).astype(np.int64)
    weight = np.exp(params.acquisition_growth_per_year * day / 365.25) * (
        1.0 + params.acquisition_seasonality * np.cos(2 * np.pi * (day_of_year - 340) / 365.25)
    )
    cdf = np.cumsum(weight)
    cdf /= cdf[-1]
    picked = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), n_days - 1)
    return np.sort(picked + rng.random(n))


@dataclass
class Events:
    """Potential purchases (one row each), the columns aligned."""

    person: np.ndarray  # int32 buyer index
    t: np.ndarray  # int64 Unix seconds
    value: np.ndarray  # float64 order value in EUR (Gamma-Gamma)
    u_drop: np.ndarray  # float64 uniform deciding dropout after this purchase
    is_first: np.ndarray  # bool, the acquisition purchase (never followed by dropout)
    send: np.ndarray  # int32 index of the campaign send that induced it, -1 for the base process
    case_open: np.ndarray  # int64 Unix seconds a support case opens about this order, NEVER if none
    case_close: np.ndarray  # int64
    satisfaction: np.ndarray  # int8 true satisfaction 1-5 of that case, 0 if none
    shock: np.ndarray  # bool, a bad case that makes the customer leave (when the support effect is on)

    def __len__(self) -> int:
        return len(self.t)

    def take(self, index: np.ndarray) -> Events:
        return Events(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: list[Events]) -> Events:
        return Events(**{f.name: np.concatenate([getattr(e, f.name) for e in parts]) for f in fields(Events)})

    def sorted_by_person(self, origin: int) -> Events:
        return self.take(np.argsort(person_keys(self.person, self.t, origin), kind="stable"))


def person_keys(person: np.ndarray, t: np.ndarray, origin: int) -> np.ndarray:
    """Sort key ordering by person, then time."""
    return (person.astype(np.int64) << _KEY_SHIFT) | (t - origin)


def make_events(
    rng: np.random.Generator,
    person: np.ndarray,
    t: np.ndarray,
    u_drop: np.ndarray,
    is_first: np.ndarray,
    send: np.ndarray,
    buyers: Buyers,
    has_contact: np.ndarray,
    params: Params,
) -> Events:
    """Attach an order value and a support-case fate to purchases at ``t`` of ``person``.

    Order values follow Gamma-Gamma, ``z ~ Gamma(p_spend, rate=nu)`` (Colombo & Jiang 1999). A purchase of
    a buyer who has a CRM contact opens a case with probability ``case_rate_per_order``; the case's true
    satisfaction is drawn whether or not the customer answers the survey.
    """
    n = len(t)
    value = rng.gamma(params.p_spend, 1.0 / buyers.nu[person])
    has_case = (rng.random(n) < params.case_rate_per_order) & has_contact[person]
    open_delay = (0.2 + rng.exponential(4.0, n)) * SECONDS_PER_DAY
    close_delay = rng.gamma(1.5, 2.0, n) * SECONDS_PER_DAY
    case_open = np.where(has_case, t + open_delay.astype(np.int64), NEVER)
    case_close = np.where(has_case, case_open + close_delay.astype(np.int64), NEVER)
    shares = np.asarray(params.case_satisfaction_shares)
    satisfaction = np.where(has_case, 1 + np.searchsorted(np.cumsum(shares) / shares.sum(), rng.random(n)), 0)
    shock = has_case & (satisfaction <= 2) & (rng.random(n) < params.bad_case_dropout_prob)
    return Events(
        person.astype(np.int32),
        t.astype(np.int64),
        value,
        u_drop,
        is_first,
        send.astype(np.int32),
        case_open,
        case_close,
        satisfaction.astype(np.int8),
        shock,
    )


def draw_repeat_purchases(
    rng: np.random.Generator, buyers: Buyers, clock: Clock, min_dropout_multiplier: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Potential repeat purchases of every buyer up to the end of the simulated horizon.

    The base process is Poisson with rate ``lambda`` from the first purchase to the horizon, so the count is
    ``M ~ Poisson(lambda W)`` and, given ``M``, the times are uniform order statistics. Only the first
    ``min(M, J)`` are drawn, where ``J ~ Geometric(p * m)`` is the first purchase whose uniform falls below
    ``p * m`` with ``m`` the smallest dropout multiplier any effect can apply: that purchase ends the
    customer's life whatever else happens, so later ones could never be realised. The first ``k`` of ``M``
    uniform order statistics are ``W * S_k / (S_k' + G)`` with ``S`` cumulative standard exponentials and
    ``G ~ Gamma(M + 1 - k)`` standing in for the remaining spacings.

    Returns
    -------
    person, days, u_drop
        Buyer index, time in days since the origin (sorted within buyer), and the dropout uniform, which is
        below ``p * m`` exactly for the guaranteed dropout purchase. With ``m = 1`` (no effect changes
        dropout) this is the BG/NBD dropout after each repeat purchase with probability ``p``.
    """
    n = len(buyers)
    window = clock.horizon_days - buyers.t0_days
    count_all = rng.poisson(buyers.lam * window)
    p_min = buyers.p * min_dropout_multiplier
    guaranteed = rng.geometric(p_min)
    count = np.minimum(count_all, guaranteed)
    total = int(count.sum())
    person = np.repeat(np.arange(n, dtype=np.int32), count)
    starts = np.cumsum(count) - count
    spacings = np.cumsum(rng.standard_exponential(total))
    padded = np.concatenate([[0.0], spacings])
    offset = padded[starts]
    within_sum = padded[starts + count] - offset
    rest = rng.standard_gamma(count_all + 1 - count)
    days = buyers.t0_days[person] + window[person] * (spacings - offset[person]) / (within_sum + rest)[person]
    rank = np.arange(total) - starts[person] + 1
    is_guaranteed = rank == guaranteed[person]
    pm = p_min[person]
    u = rng.random(total)
    u_drop = np.where(is_guaranteed, u * pm, pm + u * (1.0 - pm))
    return person, days, u_drop


def base_events(
    rng: np.random.Generator, buyers: Buyers, has_contact: np.ndarray, params: Params, clock: Clock, effects
) -> Events:
    """First purchases plus potential repeat purchases of the base process, sorted by buyer and time."""
    multiplier = min(params.tier_dropout_multipliers) if "tiers" in effects else 1.0
    person, days, u_drop = draw_repeat_purchases(rng, buyers, clock, multiplier)
    n = len(buyers)
    first = np.arange(n, dtype=np.int32)
    all_person = np.concatenate([first, person])
    t = np.concatenate([buyers.t0, to_seconds(clock, days)])
    u_all = np.concatenate([np.ones(n), u_drop])
    is_first = np.concatenate([np.ones(n, bool), np.zeros(len(person), bool)])
    events = make_events(rng, all_person, t, u_all, is_first, np.full(len(t), -1), buyers, has_contact, params)
    keep = events.t < clock.end
    return events.take(np.flatnonzero(keep)).sorted_by_person(clock.origin)


def group_starts(person: np.ndarray, n: int) -> np.ndarray:
    """Index of the first row of each person in rows sorted by person (every person has a row)."""
    return np.searchsorted(person, np.arange(n))


def trailing_spend(events: Events, window_days: int, origin: int) -> np.ndarray:
    """Spend in EUR over ``(t - window, t]`` of each purchase's own customer, that purchase included."""
    key = person_keys(events.person, events.t, origin)
    lower = np.searchsorted(key, key - window_days * SECONDS_PER_DAY + 1, side="left")
    padded = np.concatenate([[0.0], np.cumsum(events.value)])
    return padded[np.arange(1, len(key) + 1)] - padded[lower]


def tier_index(spend: np.ndarray, params: Params) -> np.ndarray:
    """Loyalty tier (0 bronze .. 3 platinum) for a trailing 12-month spend in EUR."""
    return np.searchsorted(np.asarray(params.tier_thresholds_eur), spend, side="right")


def death_times(events: Events, buyers: Buyers, params: Params, clock: Clock, effects) -> np.ndarray:
    """Unix seconds each buyer drops out (``NEVER`` if not within the horizon).

    Candidates are repeat purchases whose uniform is below ``p * m`` (``m`` the dropout multiplier of the
    tier reached with that purchase when the tiers effect is on, else 1) and, when the support effect is on,
    the closing time of a bad case whose shock was drawn. ``events`` must be sorted by buyer and time.
    """
    multiplier = np.ones(len(events))
    if "tiers" in effects:
        spend = trailing_spend(events, params.tier_window_days, clock.origin)
        multiplier = np.asarray(params.tier_dropout_multipliers)[tier_index(spend, params)]
    drops = ~events.is_first & (events.u_drop < buyers.p[events.person] * multiplier)
    candidate = np.where(drops, events.t, NEVER)
    if "support" in effects:
        candidate = np.minimum(candidate, np.where(events.shock, events.case_close, NEVER))
    death = np.minimum.reduceat(candidate, group_starts(events.person, len(buyers)))
    return np.where(death < clock.end, death, NEVER)


def realised(events: Events, death: np.ndarray) -> np.ndarray:
    """Mask of potential purchases that happen (no later than the buyer's death)."""
    return events.t <= death[events.person]
