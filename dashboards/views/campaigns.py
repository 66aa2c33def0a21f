"""Campaigns: what each campaign did against its control group, and an audience builder for the next one.

Results come from marts.rpt_campaign_results (lift in conversion rate with its 95% interval, incremental revenue)
and marts.rpt_campaign_qini. The builder plans on the published snapshot with pipelines/campaigns (the same rules
as `crm campaign create`: consent, cool-down, a random control group stratified by segment); saving writes the
campaign and its frozen member list into the landing zone, never into the warehouse, and the next night ingests
them like any other export.
"""

import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import contacts
from dashboards.components import chart, empty, kpi, table
from dashboards.page import start
from pipelines.campaigns.audience import CHANNELS, RANK_SCORES, Audience, CampaignError
from pipelines.campaigns.export import export_targets
from pipelines.campaigns.files import is_saved, save_campaign
from pipelines.campaigns.plan import plan_campaign

PAGE = {
    "title": "Campaigns",
    "icon": ":material/campaign:",
    "order": 25,
    "roles": ("analyst", "marketing", "admin"),
}
PLANNERS = ("marketing", "admin")  # who may save a campaign into the landing zone

RESULTS_SQL = """select campaign_id, campaign_name, channel, breakdown, breakdown_value, target_members,
    control_members, target_response_rate, target_conversion_rate, control_conversion_rate,
    target_revenue_per_member, control_revenue_per_member, conversion_lift, conversion_lift_low,
    conversion_lift_high, relative_lift, incremental_revenue, incremental_revenue_low, incremental_revenue_high,
    is_window_closed, note
from marts.rpt_campaign_results
order by breakdown, campaign_id, breakdown_value"""
QINI_SQL = """select decile, share_of_members, incremental_conversions, random_incremental_conversions, ranked_by,
    qini_coefficient
from marts.rpt_campaign_qini
where campaign_id = ?
order by decile"""
OPTIONS_SQL = {
    "segments": "select distinct rfm_segment from marts.customer_360 where rfm_segment is not null order by 1",
    "behaviour_segments": "select distinct behaviour_segment from marts.customer_360 "
    "where behaviour_segment is not null order by 1",
    "churn_risk_bands": "select distinct churn_risk_band from marts.customer_360 where churn_risk_band is not null "
    "order by 1",
    "tiers": "select distinct loyalty_tier from marts.customer_360 where loyalty_tier is not null order by 1",
    "tier_movements": "select distinct tier_movement from marts.customer_360 where tier_movement is not null "
    "order by 1",
    "countries": "select distinct country_code from marts.customer_360 where country_code is not null order by 1",
}
OFFER_ITEMS_SQL = "select distinct item_name from ml.next_best_offers where as_of = ? order by 1"
CHANNEL_LABELS = {"email": "Email", "sms": "SMS", "phone": "Phone"}
RESULT_COLUMNS = {
    "campaign_name": ("Campaign", "text"),
    "channel": ("Channel", "text"),
    "target_members": ("Targets", "count"),
    "control_members": ("Control", "count"),
    "target_response_rate": ("Response rate (targets)", "share"),
    "target_conversion_rate": ("Conversion, targets", "share"),
    "control_conversion_rate": ("Conversion, control", "share"),
    "lift": ("Lift (95% interval)", "text"),
    "target_revenue_per_member": ("Revenue per target", "money"),
    "control_revenue_per_member": ("Revenue per control", "money"),
    "incremental_revenue": ("Incremental revenue", "money"),
    "note": ("Note", "text"),
}

page = start(PAGE)
formats = page.formats


def _points(value) -> str:
    return "–" if pd.isna(value) else f"{value * 100:+.1f}"


def _lift_words(row) -> str:
    """The lift in percentage points with its interval, e.g. "+2.1 pts (+0.4 to +3.8)"."""
    if pd.isna(row["conversion_lift"]):
        return "not measurable"
    interval = (
        f" ({_points(row['conversion_lift_low'])} to {_points(row['conversion_lift_high'])})"
        if pd.notna(row["conversion_lift_low"])
        else ""
    )
    return f"{_points(row['conversion_lift'])} pts{interval}"


# --- results ---------------------------------------------------------------------------------------------------
st.subheader("Results against the control group")
if not page.has("marts.rpt_campaign_results"):
    empty("This snapshot has no campaign results. Run `crm run` again to publish a snapshot that has them.")
    results = pd.DataFrame()
else:
    results = page.query(RESULTS_SQL)
if not results.empty:
    results["lift"] = [_lift_words(row) for _, row in results.iterrows()]
    by_campaign = results[results["breakdown"] == "campaign"]
    st.caption(
        "Lift: the targets' conversion rate (bought in the attribution window) minus the control group's, in "
        "percentage points, with its 95% interval (Newcombe's hybrid score interval). Incremental revenue: revenue "
        "per target minus revenue per control member, times the targets."
    )
    measured = by_campaign.dropna(subset=["conversion_lift_low"])
    if not measured.empty:
        base = alt.Chart(measured).encode(
            y=alt.Y("campaign_name:N", title=None, sort=None),
            tooltip=[
                alt.Tooltip("campaign_name:N", title="Campaign"),
                alt.Tooltip("lift:N", title="Lift, points (95% interval)"),
                alt.Tooltip("target_members:Q", title="Targets", format=",.0f"),
                alt.Tooltip("control_members:Q", title="Control", format=",.0f"),
            ],
        )
        interval = base.mark_rule(strokeWidth=2).encode(
            x=alt.X(
                "conversion_lift_low:Q", title="Lift in conversion rate (95% interval)", axis=alt.Axis(format="+%")
            ),
            x2="conversion_lift_high:Q",
        )
        point = base.mark_point(filled=True, size=60).encode(x="conversion_lift:Q")
        zero = alt.Chart(pd.DataFrame({"x": [0]})).mark_rule(strokeDash=[4, 4]).encode(x="x:Q")
        chart((interval + point + zero).properties(height=max(160, 26 * len(measured))))
    table(by_campaign, RESULT_COLUMNS, formats, "Campaign results")
    channels = results[results["breakdown"] == "channel"]
    if not channels.empty:
        table(channels, {"breakdown_value": ("Channel", "text")} | {k: v for k, v in RESULT_COLUMNS.items()
              if k not in ("campaign_name", "channel")}, formats, "Results by channel")  # fmt: skip

    names = dict(zip(by_campaign["campaign_id"], by_campaign["campaign_name"], strict=True))
    if names:
        picked = st.selectbox("One campaign, by segment", list(names), format_func=lambda key: f"{key} · {names[key]}")
        segments = results[(results["breakdown"] == "segment") & (results["campaign_id"] == picked)]
        if segments.empty:
            st.write("No breakdown by segment for this campaign.")
        else:
            columns = {"breakdown_value": ("Segment", "text")} | {
                k: v for k, v in RESULT_COLUMNS.items() if k not in ("campaign_name", "channel")
            }
            table(segments, columns, formats, f"Results of {picked} by segment")
        qini = page.query(QINI_SQL, (picked,)) if page.has("marts.rpt_campaign_qini") else pd.DataFrame()
        if qini.empty:
            st.caption("No uplift (Qini) curve: it needs a target and a control group and at least 10 members.")
        else:
            long = qini.melt(
                id_vars=["share_of_members"],
                value_vars=["incremental_conversions", "random_incremental_conversions"],
                var_name="curve",
                value_name="conversions",
            ).replace({"incremental_conversions": "Ranked by score", "random_incremental_conversions": "Random"})
            chart(
                alt.Chart(long)
                .mark_line(point=True)
                .encode(
                    x=alt.X(
                        "share_of_members:Q", title="Share of members, highest score first", axis=alt.Axis(format="%")
                    ),
                    y=alt.Y("conversions:Q", title="Cumulative incremental conversions"),
                    color=alt.Color("curve:N", title=None),
                )
                .properties(height=260)
            )
            st.caption(
                f"Qini curve (Radcliffe 2007) of members ranked by {qini['ranked_by'].iloc[0]}: at each share, the "
                "targets' conversions minus the control's scaled to the targets' number; Qini coefficient "
                f"{formats.number(qini['qini_coefficient'].iloc[0], 3)} (area between the curve and random)."
            )

# --- audience builder ------------------------------------------------------------------------------------------
st.subheader("Plan a campaign")
if not page.has("marts.customer_360"):
    empty("This snapshot has no customer view to plan on. Run `crm run` again.")
    st.stop()
options = {key: page.query(sql).iloc[:, 0].tolist() for key, sql in OPTIONS_SQL.items()}
offer_items = (
    page.query(OFFER_ITEMS_SQL, (page.as_of,))["item_name"].tolist() if page.has("ml.next_best_offers") else []
)
first, second, third = st.columns(3)
name = first.text_input("Name", value="Win back customers at risk")
channel = second.selectbox("Channel", CHANNELS, format_func=CHANNEL_LABELS.get)
offer = third.text_input("What it offers", value="")
start_date = first.date_input("Starts", value=page.as_of, min_value=page.as_of)
end_date = second.date_input("Ends", value=page.as_of + timedelta(days=27), min_value=page.as_of)
control_share = third.slider(
    "Control group", 0.0, 0.5, float(page.settings.campaign_control_share), 0.01, format="%.2f",
    help="Share of the audience held out at random within each RFM segment: they receive nothing, and the "
    "difference from them is what the campaign caused.",
)  # fmt: skip
with st.expander("Who: segments, scores and attributes", expanded=True):
    left, middle, right = st.columns(3)
    segments = left.multiselect("RFM segments", options["segments"])
    behaviour = left.multiselect("Behaviour segments", options["behaviour_segments"])
    tiers = left.multiselect("Loyalty tiers", options["tiers"])
    bands = middle.multiselect("Churn risk", options["churn_risk_bands"])
    movements = middle.multiselect("Tier movement", options["tier_movements"])
    countries = middle.multiselect("Countries", options["countries"])
    churn = right.slider("Churn probability", 0.0, 1.0, (0.0, 1.0), 0.05)
    p_alive = right.slider("P(alive)", 0.0, 1.0, (0.0, 1.0), 0.05)
    clv_min = right.number_input("Lifetime value at least", min_value=0.0, value=0.0, step=50.0)
    offer_item = left.selectbox("Next best offer includes", [None, *offer_items], format_func=lambda v: v or "any")
    rank_by = middle.selectbox("Rank by", [None, *RANK_SCORES], format_func=lambda v: RANK_SCORES.get(v, "no ranking"))
    limit = right.number_input("Keep the top (0 = all)", min_value=0, value=0, step=100, disabled=rank_by is None)


def _range(low: float, high: float, lowest: float = 0.0, highest: float = 1.0) -> tuple[float | None, float | None]:
    return (None if low <= lowest else low, None if high >= highest else high)


seed = st.session_state.setdefault("campaign_seed", secrets.randbelow(2**31))
try:
    audience = Audience(
        name=name,
        channel=channel,
        offer=offer or None,
        start_date=start_date,
        end_date=end_date,
        segments=segments,
        behaviour_segments=behaviour,
        churn_risk_bands=bands,
        churn_probability=_range(*churn),
        clv=(clv_min or None, None),
        p_alive=_range(*p_alive),
        tiers=tiers,
        tier_movements=movements,
        offer_item=offer_item,
        countries=countries,
        rank_by=rank_by,
        limit=int(limit) if rank_by and limit else None,
        control_share=control_share,
    )
    plan = plan_campaign(page.connection(), audience, page.settings, seed=seed)
except CampaignError as error:
    st.error(f"This campaign cannot be planned: {error}.")
    st.stop()

words = plan.exclusion_words()
tiles = st.columns(4)
kpi(tiles[0], "Matching the filters", formats.count(plan.matched))
kpi(
    tiles[1],
    "Excluded",
    formats.count(sum(plan.exclusions.values())),
    help="; ".join(f"{formats.count(plan.exclusions[code])} {text}" for code, text in words.items()),
)
kpi(tiles[2], "Targets + control", f"{formats.count(plan.targets)} + {formats.count(plan.controls)}")
kpi(tiles[3], "Expected value of the targets", formats.money(plan.expected_value), help="The targets' CLV summed.")
excluded = pd.DataFrame(
    {"reason": list(words.values()), "customers": [plan.exclusions[code] for code in words]}
)  # fmt: skip
table(excluded, {"reason": ("Left out because", "text"), "customers": ("Customers", "count")}, formats,
      "Excluded customers", downloads=False)  # fmt: skip
st.caption(f"Control group: {plan.control_draw}.")
for note in plan.notes:
    st.warning(note)

# Only a saved campaign's frozen list is ever downloaded: a list drawn on the page and sent without saving would
# have no control group on record and nothing for the next plan's cool-down to see.
landing_dir = page.settings.landing_dir
buttons = st.container(horizontal=True)
if page.user.role in PLANNERS:
    saved_already = is_saved(landing_dir, plan.campaign_id)
    blocked = plan.members.is_empty() or plan.id_taken or saved_already
    if buttons.button("Save campaign", icon=":material/save:", disabled=blocked):
        try:
            saved, _ = save_campaign(plan, landing_dir)
        except CampaignError as error:
            st.error(f"Not saved: {error}.")
        else:
            st.success(
                f"Saved campaign {plan.campaign_id} ({formats.count(plan.members.height)} members) as "
                f"{saved.name} in the landing zone: the next night ingests it, and its results appear here."
            )
            st.session_state["saved_campaign"] = plan.campaign_id
            del st.session_state["campaign_seed"]  # the next plan draws its own control group
    elif saved_already:
        st.caption(f"Campaign {plan.campaign_id} is saved already and its list frozen: rename to plan another.")
else:
    st.caption("Your role views audiences; marketing saves campaigns.")
saved_id = st.session_state.get("saved_campaign")
contacts_path = contacts.contacts_file(page.settings.published_dir) if page.user.contacts else None
if contacts_path is not None and saved_id:
    with tempfile.TemporaryDirectory() as folder:
        try:
            exported = export_targets(page.connection(), saved_id, contacts_path, Path(folder) / "t.csv", landing_dir)
            content = exported.path.read_bytes()
        except CampaignError as error:
            st.caption(f"No target list: {error}.")
            content = None
    if content is not None:
        buttons.download_button(
            f"Target list of {saved_id} ({formats.count(exported.rows)} consented targets, CSV)",
            content,
            f"{saved_id}_targets.csv",
            "text/csv",
            icon=":material/download:",
            on_click="ignore",
        )
