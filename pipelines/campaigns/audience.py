"""An audience: who a campaign is for (filters over the published scores and attributes) and what it is.

The filters are plain values; pipelines/campaigns/selection.py turns them into SQL with bound parameters only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import date

CHANNELS = ("email", "sms", "phone")
# The scores an audience can be ranked by, in words; the SQL for each is in selection.py.
RANK_SCORES = {
    "churn_probability": "churn probability",
    "clv": "CLV",
    "p_alive": "P(alive)",
    "offer_score": "next best offer score",
}
# A campaign id becomes part of a file name in the landing zone: letters, digits, dashes and underscores only.
CAMPAIGN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# Where a saved campaign and its frozen member list go in the landing zone (the marketing contracts read them).
CAMPAIGN_FILE = "marketing/campaigns_planned_{campaign_id}.csv"
MEMBERS_FILE = "marketing/campaign_members_planned_{campaign_id}.csv"

Range = tuple[float | None, float | None]


class CampaignError(ValueError):
    """An audience, plan, file or export that cannot be used; the message says why in words."""


@dataclass(frozen=True)
class Audience:
    """A campaign and the customers it is for. Empty filters select everyone; ranges are inclusive, either end
    may be open (None), and a customer without the score does not match a range on it."""

    name: str
    channel: str
    campaign_id: str | None = None  # None: made from the start date and the name
    objective: str | None = None
    offer: str | None = None  # what the campaign offers (the campaign file's offer_category)
    start_date: date | None = None  # None: the plan date
    end_date: date | None = None  # None: four weeks after the start
    segments: tuple[str, ...] = ()  # RFM segment names
    behaviour_segments: tuple[str, ...] = ()  # behaviour cluster names
    churn_risk_bands: tuple[str, ...] = ()
    churn_probability: Range = (None, None)
    clv: Range = (None, None)
    p_alive: Range = (None, None)
    tiers: tuple[str, ...] = ()
    tier_movements: tuple[str, ...] = ()
    offer_item: str | None = None  # an item id or name among the customer's next best offers
    offer_max_rank: int | None = None  # ... ranked this high or better
    countries: tuple[str, ...] = ()
    customer_types: tuple[str, ...] = ()  # customer, prospect
    has_purchased: bool | None = None
    preferred_channels: tuple[str, ...] = ()  # the channel the customer uses most (customer_360)
    rank_by: str | None = None  # one of RANK_SCORES: the members' targeting_score, highest first
    limit: int | None = None  # keep the top `limit` eligible customers by rank_by
    control_share: float | None = None  # None: the campaign_control_share setting

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, list):  # lists from a page or the command line: frozen as tuples
                object.__setattr__(self, field.name, tuple(value))
        if not self.name or not self.name.strip():
            raise CampaignError("a campaign needs a name")
        if self.channel not in CHANNELS:
            raise CampaignError(f"channel {self.channel!r} is not one of {', '.join(CHANNELS)}")
        if self.campaign_id is not None and not CAMPAIGN_ID.fullmatch(self.campaign_id):
            raise CampaignError(
                f"campaign id {self.campaign_id!r} must be 1 to 64 letters, digits, dashes or underscores"
            )
        for label, (low, high) in self.ranges().items():
            if low is not None and high is not None and low > high:
                raise CampaignError(f"{label}: the minimum {low} is above the maximum {high}")
        if self.rank_by is not None and self.rank_by not in RANK_SCORES:
            raise CampaignError(f"rank by {self.rank_by!r} is not one of {', '.join(RANK_SCORES)}")
        if self.limit is not None and (self.limit < 1 or self.rank_by is None):
            raise CampaignError("a limit keeps the top customers by a score: give a positive limit and rank_by")
        if self.offer_max_rank is not None and self.offer_max_rank < 1:
            raise CampaignError("the offer rank counts from 1")
        if self.offer_max_rank is not None and self.offer_item is None:
            raise CampaignError("an offer rank needs the offer item it ranks (--offer-item)")
        if self.control_share is not None and not 0 <= self.control_share < 1:
            raise CampaignError(f"control share {self.control_share} must be at least 0 and below 1")
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise CampaignError(f"the campaign ends ({self.end_date}) before it starts ({self.start_date})")

    def ranges(self) -> dict[str, Range]:
        return {"churn probability": self.churn_probability, "CLV": self.clv, "P(alive)": self.p_alive}

    @property
    def uses_offers(self) -> bool:
        return self.offer_item is not None or self.rank_by == "offer_score"

    def describe(self) -> str:
        """The filters in words, as the campaign file records them ("everyone" when there are none)."""
        parts = []
        lists = (
            ("RFM segment", self.segments),
            ("behaviour segment", self.behaviour_segments),
            ("churn risk band", self.churn_risk_bands),
            ("loyalty tier", self.tiers),
            ("tier movement", self.tier_movements),
            ("country", self.countries),
            ("customer type", self.customer_types),
            ("preferred channel", self.preferred_channels),
        )
        parts += [f"{label} in {', '.join(values)}" for label, values in lists if values]
        for label, (low, high) in self.ranges().items():
            if low is not None or high is not None:
                parts.append(f"{label} {_bound(low, 'from')} {_bound(high, 'to')}".replace("  ", " ").strip())
        if self.offer_item is not None:
            within = f" ranked {self.offer_max_rank} or better" if self.offer_max_rank else ""
            parts.append(f"next best offers include {self.offer_item}{within}")
        if self.has_purchased is not None:
            parts.append("has purchased" if self.has_purchased else "has never purchased")
        if self.rank_by is not None:
            top = f"top {self.limit:,} " if self.limit else ""
            parts.append(f"{top}ranked by {RANK_SCORES[self.rank_by]}")
        return "; ".join(parts) or "everyone"


def _bound(value: float | None, word: str) -> str:
    return "" if value is None else f"{word} {value:g}"
