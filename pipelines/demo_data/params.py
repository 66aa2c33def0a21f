"""Parameters of the synthetic retailer, the switchable effects and the simulation clock.

The defaults describe a plausible mid-sized European retailer: a customer buys about 3.3 times a year while
active (BG/NBD ``r / alpha`` per day), one in four repeat purchases is the last (``a / (a + b)``), and an order
is worth about EUR 80 on average (Gamma-Gamma ``p_spend * gamma / (q - 1)``). With acquisitions spread over
four years this gives about 3.5 orders of about 2.8 lines, so about 10 order lines per customer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

EFFECTS: frozenset[str] = frozenset({"affinities", "campaigns", "support", "tiers"})
TIERS = ("bronze", "silver", "gold", "platinum")
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Params:
    """Every generator parameter, written to ``truth/params.json``.

    Attributes
    ----------
    r, alpha : float
        BG/NBD purchase-rate heterogeneity, ``lambda ~ Gamma(shape=r, rate=alpha)`` per day
        (Fader, Hardie & Lee 2005, "Counting your customers the easy way").
    a, b : float
        BG/NBD dropout heterogeneity, ``p ~ Beta(a, b)``, dropout after each repeat purchase.
    p_spend, q, gamma : float
        Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"; Colombo & Jiang 1999):
        ``nu ~ Gamma(shape=q, rate=gamma)``, order value in EUR ``z ~ Gamma(shape=p_spend, rate=nu)``.
    engagement_shape : float
        Engagement ``e ~ Gamma(shape, rate=shape)`` (mean 1) of every person, independent of the purchase
        process; a buyer's activity is ``e`` times ``sqrt(lambda)`` scaled to mean 1 (see :mod:`engagement`).
    browse_sessions_per_purchase : float
        Web sessions a buyer of activity 1 opens, while alive, per purchase made at the mean rate ``r / alpha``.
    engagement_fade_days : float
        After dropout, browsing and newsletter opens decay as ``exp(-days since dropout / fade days)``.
    channel_responsiveness_sigma, channel_responsiveness_correlation : float
        Per person and channel (email, sms, phone), a responsiveness multiplier ``exp(sigma z - sigma^2 / 2)``
        (mean 1) with standard normal ``z`` correlated across the three channels.
    """

    r: float = 0.9
    alpha: float = 100.0
    a: float = 1.2
    b: float = 3.6
    p_spend: float = 6.0
    q: float = 4.0
    gamma: float = 40.0
    history_years: int = 4
    future_months: int = 6
    timezone: str = "Europe/Madrid"
    acquisition_growth_per_year: float = 0.15
    acquisition_seasonality: float = 0.25
    lead_share: float = 0.10
    contact_share: float = 0.88
    duplicate_contact_share: float = 0.06
    contact_has_erp_number_share: float = 0.75
    mean_extra_lines: float = 2.0
    min_line_value_eur: float = 8.0
    favourite_group_prob: float = 0.6
    in_group_line_prob: float = 0.8
    return_rate_per_line: float = 0.07
    case_rate_per_order: float = 0.05
    case_answer_rate: float = 0.55
    case_satisfaction_shares: tuple[float, ...] = (0.12, 0.10, 0.18, 0.30, 0.30)
    bad_case_dropout_prob: float = 0.35
    tier_thresholds_eur: tuple[float, ...] = (250.0, 750.0, 2000.0)
    tier_dropout_multipliers: tuple[float, ...] = (1.0, 1.0, 0.7, 0.5)
    tier_window_days: int = 365
    campaigns: int = 16
    campaign_uplift_range: tuple[float, float] = (0.3, 1.2)
    campaign_control_shares: tuple[float, ...] = (0.1, 0.15, 0.2, 0.25)
    campaign_audience_share_range: tuple[float, float] = (0.15, 0.5)
    phone_campaign_audience_share: float = 0.05
    consent_opt_in: tuple[float, float, float] = (0.7, 0.5, 0.4)
    consent_mean_years_to_opt_out: float = 8.0
    anonymous_session_share: float = 0.3
    browse_sessions_per_web_order: float = 0.8
    unknown_caller_share: float = 0.1
    campaign_attribution_days: int = 14
    engagement_shape: float = 2.0
    browse_sessions_per_purchase: float = 1.5
    engagement_fade_days: float = 30.0
    window_shopper_share: float = 0.3
    window_shopper_sessions_per_month: float = 2.0
    lead_sessions: float = 1.5
    newsletter_months: int = 24
    newsletter_day: int = 5
    newsletter_open_rate: float = 0.3
    newsletter_click_rate: float = 0.12
    newsletter_unsubscribe_rate: float = 0.003
    channel_responsiveness_sigma: float = 0.6
    channel_responsiveness_correlation: float = 0.3


@dataclass(frozen=True)
class Clock:
    """Instants of the simulation as Unix seconds (UTC).

    ``origin`` is the UTC midnight opening the history window; ``cutoff`` and ``end`` are local midnights
    (the ERP's time zone) of ``as_of`` and ``future_months`` later. Acquisitions fall in
    ``[origin, last_acquisition)``, whole UTC days before the cutoff.
    """

    as_of: dt.date
    origin: int
    cutoff: int
    end: int
    last_acquisition: int
    timezone: str

    @classmethod
    def build(cls, as_of: dt.date, params: Params) -> Clock:
        zone = ZoneInfo(params.timezone)
        start = _add_months(as_of, -12 * params.history_years)
        origin = int(dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC).timestamp())
        cutoff = int(dt.datetime(as_of.year, as_of.month, as_of.day, tzinfo=zone).timestamp())
        future = _add_months(as_of, params.future_months)
        end = int(dt.datetime(future.year, future.month, future.day, tzinfo=zone).timestamp())
        last_acquisition = origin + (cutoff - origin) // SECONDS_PER_DAY * SECONDS_PER_DAY
        return cls(as_of, origin, cutoff, end, last_acquisition, params.timezone)

    def days(self, seconds):
        """Days since ``origin`` (float) for Unix seconds."""
        return (seconds - self.origin) / SECONDS_PER_DAY

    @property
    def horizon_days(self) -> float:
        return self.days(self.end)

    @property
    def future_days(self) -> float:
        return (self.end - self.cutoff) / SECONDS_PER_DAY


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    for last in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise ValueError(day)
