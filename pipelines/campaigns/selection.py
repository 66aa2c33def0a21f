"""The customers an audience matches in a published snapshot, each with the reason it cannot be contacted, if any.

Read-only SQL over the snapshot's marts: customer_360 (scores, attributes, the customer's consent), dim_customers,
dim_crm_contacts (which CRM contacts a customer has, and which consented), fct_interactions and
fct_campaign_contacts (who was contacted when, for the cool-down) and, when the audience asks for them,
ml.next_best_offers. Every value from the audience is a bound parameter; column names come from the constants here.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from pipelines import sql
from pipelines.campaigns.audience import CAMPAIGN_FILE, MEMBERS_FILE, Audience

# Per channel: the consent flag (customer_360 and dim_crm_contacts), when the contact's consent was recorded, and
# the flag saying the customer has an address for the channel.
CONSENT_FLAG = {"email": "has_email_consent", "sms": "has_sms_consent", "phone": "has_phone_consent"}
CONSENT_UPDATED_AT = {
    "email": "email_consent_updated_at",
    "sms": "sms_consent_updated_at",
    "phone": "phone_consent_updated_at",
}
ADDRESS_FLAG = {"email": "has_email", "sms": "has_phone", "phone": "has_phone"}

# Filters on a list of values (compared without case), by Audience field.
LIST_FILTERS = {
    "segments": "list_contains(?, lower(customers.rfm_segment))",
    "behaviour_segments": "list_contains(?, lower(customers.behaviour_segment))",
    "churn_risk_bands": "list_contains(?, lower(customers.churn_risk_band))",
    "tiers": "list_contains(?, lower(customers.loyalty_tier))",
    "tier_movements": "list_contains(?, lower(customers.tier_movement))",
    "countries": "list_contains(?, lower(customers.country_code))",
    "customer_types": "list_contains(?, lower(customers.customer_type))",
    "preferred_channels": "list_contains(?, lower(customers.preferred_channel_by_interactions))",
}
RANGE_COLUMNS = {
    "churn_probability": "customers.churn_probability",
    "clv": "customers.clv",
    "p_alive": "customers.p_alive",
}
SCORE_SQL = {**RANGE_COLUMNS, "offer_score": "offers.offer_score"}
NO_SCORE = "cast(null as double)"

# The customer's best score among their next best offers of the latest run, optionally only offers of one item
# (by id or name) ranked well enough.
OFFERS_CTE = """,
offers as (
    select
        customer_id,
        max(score) as offer_score
    from ml.next_best_offers
    where
        as_of = (select max(as_of) from ml.next_best_offers)
        and (cast(? as varchar) is null or lower(cast(item_id as varchar)) = ? or lower(item_name) = ?)
        and (cast(? as integer) is null or offer_rank <= ?)
    group by customer_id
)"""
OFFERS_INNER_JOIN = "inner join offers on customers.customer_id = offers.customer_id"
OFFERS_LEFT_JOIN = "left join offers on customers.customer_id = offers.customer_id"

# A customer is cooling down after a send, or after a campaign they were listed in without a send (its control
# group, or a planned campaign not sent yet) until that campaign's end: an earlier campaign's control group must
# stay untouched through its end, and a planned one counts before its sends arrive. Sends of a campaign without a
# member list (a newsletter to every subscriber) do not count: the cool-down keeps one targeted offer from landing
# on another, and a monthly newsletter would otherwise cool down everyone who reads email.
CANDIDATES_SQL = """
with consented as (
    select
        customer_id,
        contact_id
    from marts.dim_crm_contacts
    where {consent}
    qualify row_number() over (partition by customer_id order by {consent_updated_at} desc nulls last, contact_id) = 1
),

known_contacts as (
    select distinct customer_id from marts.dim_crm_contacts
),

contact_dates as (
    select
        customer_id,
        occurred_date as contacted_on
    from marts.fct_interactions
    where
        interaction_type = 'send' and customer_id is not null
        and campaign_id in (select campaign_id from marts.fct_campaign_contacts)
    union all
    select
        members.customer_id,
        campaigns.end_date as contacted_on
    from marts.fct_campaign_contacts as members
    inner join marts.dim_campaigns as campaigns on members.campaign_id = campaigns.campaign_id
    where members.sends = 0
),

last_contacts as (
    select
        customer_id,
        max(contacted_on) as last_contacted_on
    from contact_dates
    group by customer_id
){offers}

select
    customers.customer_id,
    consented.contact_id,
    coalesce(customers.rfm_segment, 'no segment') as stratum,
    {score} as targeting_score,
    customers.clv as expected_value,
    case
        when known_contacts.customer_id is null or not coalesce(customers.{address}, false) then 'no_contact'
        when not coalesce(customers.{consent}, false) or consented.contact_id is null then 'no_consent'
        when last_contacts.last_contacted_on >= ? then 'cool_down'
    end as exclusion_reason
from marts.customer_360 as customers
left join marts.dim_customers as dims on customers.customer_id = dims.customer_id
left join consented on customers.customer_id = consented.customer_id
left join known_contacts on customers.customer_id = known_contacts.customer_id
left join last_contacts on customers.customer_id = last_contacts.customer_id
{offers_join}
where {conditions}
order by customers.customer_id
"""

CANDIDATE_SCHEMA = {
    "customer_id": pl.String,
    "contact_id": pl.String,
    "stratum": pl.String,
    "targeting_score": pl.Float64,
    "expected_value": pl.Float64,
    "exclusion_reason": pl.String,
}


def select_candidates(
    connection: duckdb.DuckDBPyConnection, audience: Audience, cooling_from: date, with_offers: bool
) -> pl.DataFrame:
    """Every customer matching ``audience``'s filters: customer_id, contact_id (the CRM contact to list: the one
    whose opt-in for the channel is the latest), stratum (RFM segment), targeting_score, expected_value (CLV) and
    exclusion_reason (no_contact, no_consent, cool_down for a contact on or after ``cooling_from``; null when
    eligible). ``with_offers``: ml.next_best_offers is in the snapshot (an audience using offers needs it)."""
    channel = audience.channel
    parameters: list = []
    offers, offers_join = "", ""
    if audience.uses_offers and with_offers:
        item = audience.offer_item.strip().lower() if audience.offer_item else None
        parameters += [item, item, item, audience.offer_max_rank, audience.offer_max_rank]
        offers = OFFERS_CTE
        offers_join = OFFERS_INNER_JOIN if item is not None else OFFERS_LEFT_JOIN
    parameters.append(cooling_from)
    conditions = ["true"]
    for field, condition in LIST_FILTERS.items():
        values = getattr(audience, field)
        if values:
            conditions.append(condition)
            parameters.append([str(value).strip().lower() for value in values])
    for field, column in RANGE_COLUMNS.items():
        low, high = getattr(audience, field)
        if low is not None:
            conditions.append(f"{column} >= ?")
            parameters.append(float(low))
        if high is not None:
            conditions.append(f"{column} <= ?")
            parameters.append(float(high))
    if audience.has_purchased is not None:
        conditions.append("coalesce(dims.has_purchased, false) = ?")
        parameters.append(audience.has_purchased)
    score = NO_SCORE
    if audience.rank_by is not None and (audience.rank_by != "offer_score" or offers):
        score = SCORE_SQL[audience.rank_by]
    query = CANDIDATES_SQL.format(
        consent=sql.identifier(CONSENT_FLAG[channel]),
        consent_updated_at=sql.identifier(CONSENT_UPDATED_AT[channel]),
        address=sql.identifier(ADDRESS_FLAG[channel]),
        offers=offers,
        score=score,
        offers_join=offers_join,
        conditions=" and ".join(conditions),
    )
    frame = connection.sql(query, params=parameters).pl()
    return frame.cast(CANDIDATE_SCHEMA) if frame.height else pl.DataFrame(schema=CANDIDATE_SCHEMA)


def consented_contacts(connection: duckdb.DuckDBPyConnection, channel: str, contact_ids: list[str]) -> pl.DataFrame:
    """Of ``contact_ids``, those that may be contacted over ``channel`` as the snapshot stands: the contact's own
    latest consent is an opt-in AND so is its customer's (the latest state of any of the customer's contacts).
    Columns contact_id, customer_id."""
    consent = sql.identifier(CONSENT_FLAG[channel])
    query = CONSENTED_SQL.format(consent=consent)
    return connection.sql(query, params=[contact_ids]).pl()


CONSENTED_SQL = """
select
    contacts.contact_id,
    contacts.customer_id
from marts.dim_crm_contacts as contacts
inner join marts.customer_360 as customers on contacts.customer_id = customers.customer_id
where list_contains(?, contacts.contact_id) and contacts.{consent} and customers.{consent}
"""


def pending_contacts(connection: duckdb.DuckDBPyConnection, landing_dir: Path, cooling_from: date) -> pl.Series:
    """customer_id of every member (target or control) of a campaign saved in ``landing_dir`` but not yet in the
    snapshot that ends on or after ``cooling_from``: the cool-down counts them as the marts will after the next
    night, so two campaigns planned on one day cannot share customers (nor one take the other's control group)."""
    known = {row[0] for row in connection.execute("select campaign_id from marts.dim_campaigns").fetchall()}
    contact_ids: list[str] = []
    for campaign_path in sorted(Path(landing_dir).glob(CAMPAIGN_FILE.format(campaign_id="*"))):
        campaign = pl.read_csv(campaign_path, infer_schema=False)
        if campaign.is_empty():
            continue
        campaign_id, ends_on = campaign["campaign_id"][0], campaign["ends_on"][0]
        members_path = Path(landing_dir) / MEMBERS_FILE.format(campaign_id=campaign_id)
        if campaign_id in known or not members_path.exists() or date.fromisoformat(ends_on) < cooling_from:
            continue
        contact_ids += pl.read_csv(members_path, infer_schema=False)["contact_id"].drop_nulls().to_list()
    return contact_customers(connection, contact_ids)["customer_id"]


def contact_customers(connection: duckdb.DuckDBPyConnection, contact_ids: list[str]) -> pl.DataFrame:
    """contact_id -> customer_id for ``contact_ids`` the snapshot knows."""
    return connection.sql(
        "select contact_id, customer_id from marts.dim_crm_contacts where list_contains(?, contact_id)",
        params=[contact_ids],
    ).pl()
