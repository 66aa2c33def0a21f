"""Customer lookup: one customer's profile, scores, consent, every touchpoint and open cases, for the front line
(service, marketing) and analysts.

Roles with contact details (pipelines/users.py) search by id, name, email or phone and see them; the others search
by customer id only and see no name, email or phone anywhere, not even masked.
"""

import re

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import contacts
from dashboards.components import chart, empty, kpi, table
from dashboards.page import start

PAGE = {
    "title": "Customer lookup",
    "icon": ":material/person_search:",
    "order": 30,
    "roles": ("analyst", "marketing", "service", "admin"),
}

# No email_masked/phone_masked here: a role without contacts sees none, and one with contacts sees them whole.
CUSTOMER_SQL = """select customer_id, customer_type, city, country_code, loyalty_tier, rfm_segment, rfm_cell,
    behaviour_segment, p_alive, clv, clv_score_source, churn_probability, churn_risk_band, revenue_at_risk,
    churn_reasons, churn_score_source, tier_movement, tier_movement_reason, trailing_12m_net_revenue,
    lifetime_orders, lifetime_net_revenue, average_order_value, first_order_date, last_order_date,
    preferred_channel_by_interactions, support_cases, open_support_cases, last_contact_at, last_contact_channel,
    last_contact_type, has_email_consent, has_sms_consent, has_phone_consent
from marts.customer_360
where lower(customer_id) = lower(?)
order by customer_id = ? desc
limit 1"""
INTERACTIONS_SQL = """select
    interactions.occurred_at,
    strftime(interactions.occurred_at, '%Y-%m-%d %H:%M') as occurred,
    coalesce(channels.channel_name, interactions.channel_id) as channel,
    replace(interactions.interaction_type, '_', ' ') as interaction_type,
    interactions.direction,
    campaigns.campaign_name,
    interactions.net_revenue,
    interactions.duration_seconds / 60 as duration_minutes
from marts.fct_interactions as interactions
left join marts.dim_channels as channels on interactions.channel_id = channels.channel_id
left join marts.dim_campaigns as campaigns on interactions.campaign_id = campaigns.campaign_id
where interactions.customer_id = ?
order by interactions.occurred_at desc, interactions.interaction_id"""
OPEN_CASES_SQL = """select
    cases.case_number,
    cases.case_category,
    cases.priority,
    cases.case_status,
    strftime(cases.opened_at, '%Y-%m-%d %H:%M') as opened,
    date_diff('day', cases.opened_date, ?) as days_open,
    products.product_name
from marts.fct_support_cases as cases
left join marts.dim_products as products on cases.product_id = products.product_id
where cases.customer_id = ? and cases.is_open
order by cases.opened_at"""
OFFERS_SQL = """select offer_rank, item_name, score, source, reason, score_source
from ml.next_best_offers
where customer_id = ? and as_of = ?
order by offer_rank"""
CHANNEL_SQL = """select preferred_channel, evidence_note
from marts.customer_channel_preference
where customer_id = ?"""
CHANNEL_LABELS = {"email": "Email", "sms": "SMS", "phone": "Phone"}
LATEST_TOUCHPOINTS = 50
# Streamlit's badge colours nearest to the theme's TIER_COLOURS, RISK_COLOURS and MOVEMENT_COLOURS (badges take
# colour names only).
_TIER_BADGE = {"platinum": "blue", "gold": "yellow", "silver": "gray", "bronze": "orange"}
_BADGE = {
    "high": "red",
    "medium": "orange",
    "low": "green",
    "upgrade candidate": "green",
    "downgrade risk": "red",
    "stable": "gray",
}


def _plain(text: str) -> str:
    """Text from outside (what was typed, a product's name) shown as text, never read as Markdown (a link, an image)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$:])", r"\\\1", text)


page = start(PAGE)
formats = page.formats
as_of = page.as_of.isoformat()
contacts_path = contacts.contacts_file(page.settings.published_dir) if page.user.contacts else None

# --- search ----------------------------------------------------------------------------------------------------
if page.user.contacts:
    typed = st.text_input(
        "Customer id, name, email or phone",
        value=st.query_params.get("customer", ""),
        placeholder="An id, a name, an email or a phone such as +34 600 11 22 33",
    )
    if contacts_path is None:
        st.caption("This snapshot was published without contact details: search by customer id.")
else:
    typed = st.text_input("Customer id", value=st.query_params.get("customer", ""))
    st.caption("Search by customer id (your role does not see contact details).")
typed = typed.strip()
shown = _plain(typed)
if not typed:
    empty("Type a customer id to see their profile, scores, consent, touchpoints and open cases.")
    st.stop()

found = page.query(CUSTOMER_SQL, (typed, typed))
if found.empty and contacts_path is not None:
    matches = contacts.search(contacts_path, typed, page.settings.default_country)
    if len(matches) > 1:
        more = len(matches) > contacts.MATCH_LIMIT
        matches = matches.head(contacts.MATCH_LIMIT).fillna("")
        if more:
            st.write(
                f"More than {len(matches)} customers match “{shown}”: the first {len(matches)} by name. Type more "
                "of the name to narrow it, or pick one."
            )
        else:
            st.write(f"{len(matches)} customers match “{shown}”: pick one.")
        names = dict(zip(matches["customer_id"], matches["full_name"], strict=True))
        table(
            matches,
            {
                "customer_id": ("Customer", "text"),
                "full_name": ("Name", "text"),
                "email": ("Email", "text"),
                "phone": ("Phone", "text"),
            },
            formats,
            "Matching customers",
            downloads=False,
        )
        picked = st.selectbox("Customer", list(names), format_func=lambda key: f"{key} · {names[key]}")
        found = page.query(CUSTOMER_SQL, (picked, picked))
    elif len(matches) == 1:
        picked = matches["customer_id"].iloc[0]
        found = page.query(CUSTOMER_SQL, (picked, picked))
    else:
        empty(f"No customer {shown} in the snapshot of {as_of}: no customer id, name, email or phone matches.")
        st.stop()
if found.empty:
    empty(f"No customer {shown} in the snapshot of {as_of}.")
    st.stop()

customer = found.iloc[0]
customer_id = customer["customer_id"]
details = contacts.of_customer(contacts_path, customer_id) if contacts_path is not None else None

# --- profile card -----------------------------------------------------------------------------------------------
name = (details or {}).get("full_name")
st.subheader(name or f"Customer {customer_id}")
where = ", ".join(str(part) for part in (customer["city"], customer["country_code"]) if part)
since = (
    f"first order {customer['first_order_date']:%Y-%m-%d}, last {customer['last_order_date']:%Y-%m-%d}"
    if pd.notna(customer["first_order_date"])
    else "no order yet"
)
heading = f"Customer {customer_id}" if name else None  # the id, under a name
st.caption(" · ".join(part for part in (heading, customer["customer_type"], where, since) if part))
if page.user.contacts:
    if details:
        st.markdown(
            f":material/mail: {details['email'] or 'no email'} &nbsp;&nbsp; "
            f":material/call: {details['phone'] or 'no phone'}"
        )
    else:
        st.caption("No name, email or phone on file for this customer.")


def _text(value) -> str:
    return "–" if value is None or pd.isna(value) else str(value)


band = customer["churn_risk_band"]
flag = customer["tier_movement"]
labels = [
    f":{_TIER_BADGE.get(customer['loyalty_tier'], 'gray')}-badge[{customer['loyalty_tier'].capitalize()} tier]"
    if pd.notna(customer["loyalty_tier"])
    else ":gray-badge[No tier]",
    f":blue-badge[{customer['rfm_segment'].capitalize()} · RFM {customer['rfm_cell']}]"
    if pd.notna(customer["rfm_segment"])
    else ":gray-badge[Not in an RFM segment]",
    f":{_BADGE.get(band, 'gray')}-badge[{band.capitalize()} churn risk]" if pd.notna(band) else "",
    f":{_BADGE.get(flag, 'gray')}-badge[{flag.capitalize()}]" if pd.notna(flag) and flag != "stable" else "",
]
st.markdown(" ".join(label for label in labels if label))

scores = st.columns(5)
kpi(
    scores[0],
    "Lifetime value (CLV)",
    formats.money(customer["clv"]),
    help=f"Expected net revenue over the CLV horizon; scores of the {_text(customer['clv_score_source'])}.",
)
kpi(scores[1], "P(alive)", formats.share(customer["p_alive"]), help="Probability the customer still buys (BG/NBD).")
kpi(
    scores[2],
    "Churn probability",
    formats.share(customer["churn_probability"]),
    help=f"No purchase in the churn window; scores of the {_text(customer['churn_score_source'])}.",
)
kpi(scores[3], "Revenue at risk", formats.money(customer["revenue_at_risk"]), help="CLV × churn probability.")
kpi(scores[4], "Net revenue, 12 months", formats.money(customer["trailing_12m_net_revenue"]))
lifetime = st.columns(5)
kpi(lifetime[0], "Orders (lifetime)", formats.count(customer["lifetime_orders"]))
kpi(lifetime[1], "Net revenue (lifetime)", formats.money(customer["lifetime_net_revenue"]))
kpi(lifetime[2], "Average order value", formats.money(customer["average_order_value"]))
kpi(lifetime[3], "Open support cases", formats.count(customer["open_support_cases"]))
kpi(lifetime[4], "Support cases (all)", formats.count(customer["support_cases"]))

why, movement, consent = st.columns(3)
with why:
    st.markdown("**Why this churn risk**")
    # a customer the churn model did not score has no list of reasons (null, read as pandas' NA)
    listed = customer["churn_reasons"]
    reasons = list(listed) if hasattr(listed, "__iter__") and not isinstance(listed, str) else []
    if pd.isna(band):
        st.write(
            "Not scored this run: the churn model scores buyers when the data supports it (Model quality says why not)."
        )
    elif reasons:
        st.markdown("\n".join(f"- {reason}" for reason in reasons))
    else:
        st.write("No feature raises this customer's risk above the typical customer's.")
with movement:
    st.markdown("**Tier movement**")
    if pd.notna(flag):
        st.badge(flag.capitalize(), color=_BADGE.get(flag, "gray"))
        if pd.notna(customer["tier_movement_reason"]):
            st.write(customer["tier_movement_reason"])
    else:
        st.write("Not scored this run.")
    st.markdown(f"**Behaviour segment**  \n{_text(customer['behaviour_segment'])}")
with consent:
    st.markdown("**Consent**")
    for channel, column in (("Email", "has_email_consent"), ("SMS", "has_sms_consent"), ("Phone", "has_phone_consent")):
        given = bool(customer[column])
        st.badge(
            f"{channel}: {'yes' if given else 'no'}",
            icon=":material/check:" if given else ":material/block:",
            color="green" if given else "gray",
        )
    st.markdown("**Last contact** (UTC)")
    if pd.notna(customer["last_contact_at"]):
        channel = _text(customer["last_contact_channel"]).replace("_", " ")
        kind = _text(customer["last_contact_type"]).replace("_", " ")
        st.write(f"{customer['last_contact_at']:%Y-%m-%d %H:%M} · {channel} · {kind}")
    else:
        st.write("No contact recorded.")


# --- what to offer, and over which channel ----------------------------------------------------------------------
offer_column, channel_column = st.columns([3, 2])
with offer_column:
    st.markdown("**Next best offers**")
    offers = page.query(OFFERS_SQL, (customer_id, page.as_of)) if page.has("ml.next_best_offers") else None
    if offers is None:
        st.write("No next best offers in this snapshot: the offers model did not run.")
    elif offers.empty:
        st.write("No offer for this customer this run (no purchase history to start from, or nothing left to offer).")
    else:
        source = "the popularity baseline" if offers["score_source"].iloc[0] == "baseline" else "the offers model"
        st.markdown(
            "\n".join(
                f"{row.offer_rank}. **{_plain(row.item_name)}**: {_plain(row.reason)}" for row in offers.itertuples()
            )
        )
        st.caption(f"Ranked by {source} (Model quality shows its hit rate beside popularity's).")
with channel_column:
    st.markdown("**Channel preference**")
    found_channel = page.query(CHANNEL_SQL, (customer_id,)) if page.has("marts.customer_channel_preference") else None
    if found_channel is None or found_channel.empty:
        st.write("No channel preference in this snapshot.")
    else:
        preference = found_channel.iloc[0]
        if pd.notna(preference["preferred_channel"]):
            label = CHANNEL_LABELS.get(preference["preferred_channel"], preference["preferred_channel"])
            st.badge(f"Prefers {label}", icon=":material/campaign:", color="blue")
        st.write(preference["evidence_note"])


def _detail(touchpoint) -> str:
    """What says most about a touchpoint: its campaign, an order's net revenue, a call's or a visit's length."""
    if isinstance(touchpoint.campaign_name, str):
        return touchpoint.campaign_name
    if pd.notna(touchpoint.net_revenue):
        return formats.money(touchpoint.net_revenue, 2)
    if pd.notna(touchpoint.duration_minutes):
        return f"{formats.number(touchpoint.duration_minutes, 1)} minutes"
    return ""


# --- touchpoints -----------------------------------------------------------------------------------------------
st.subheader("Every touchpoint")
interactions = page.query(INTERACTIONS_SQL, (customer_id,))
if interactions.empty:
    empty(f"No touchpoint of {customer_id} is recorded: no order, campaign contact, call, case or web visit.")
else:
    interactions["detail"] = [_detail(row) for row in interactions.itertuples()]
    channels = interactions["channel"].nunique()
    timeline = (
        alt.Chart(interactions)
        .mark_tick(thickness=2, size=22)
        .encode(
            x=alt.X("occurred_at:T", title="Date"),
            y=alt.Y("channel:N", title="Channel"),
            color=alt.Color("interaction_type:N", title="Type of touchpoint"),
            tooltip=[
                alt.Tooltip("occurred:N", title="When"),
                alt.Tooltip("channel:N", title="Channel"),
                alt.Tooltip("interaction_type:N", title="Type"),
                alt.Tooltip("direction:N", title="Direction"),
                alt.Tooltip("detail:N", title="Detail"),
            ],
        )
        .properties(height=150 + 34 * channels)  # the whole chart: legend and axes included
    )
    chart(timeline)
    table(
        interactions.head(LATEST_TOUCHPOINTS),
        {
            "occurred": ("When (UTC)", "text"),
            "channel": ("Channel", "text"),
            "interaction_type": ("Type", "text"),
            "direction": ("Direction", "text"),
            "detail": ("Detail", "text"),
        },
        formats,
        f"Latest touchpoints of {customer_id}",
    )

# --- open cases ------------------------------------------------------------------------------------------------
st.subheader("Open support cases")
cases = page.query(OPEN_CASES_SQL, (page.as_of, customer_id))
if cases.empty:
    st.write(f"No open case ({formats.count(customer['support_cases'])} in all).")
else:
    table(
        cases,
        {
            "case_number": ("Case", "text"),
            "case_category": ("Category", "text"),
            "priority": ("Priority", "text"),
            "case_status": ("Status", "text"),
            "opened": ("Opened", "text"),
            "days_open": ("Days open", "count"),
            "product_name": ("Product", "text"),
        },
        formats,
        f"Open cases of {customer_id}",
    )
