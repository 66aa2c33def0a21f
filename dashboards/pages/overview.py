"""Overview: headline figures and RFM segments, for everyone who opens the dashboards first."""

import pandas as pd
import streamlit as st

from dashboards.queries import HEADLINE_SQL, MODEL_RUNS_SQL, SEGMENTS_SQL, TIERS_SQL, published, query

st.title("Customer overview")
snapshot = published()
if snapshot is None:
    st.info("Nothing is published yet. Run `make run` (demo data) or `crm run` (your exports), then reload.")
    st.stop()

st.caption(f"As of {snapshot['as_of']} · published {snapshot['published_at']} · run {snapshot['run_id'][:8]}")
path = snapshot["path"]
headline = query(path, HEADLINE_SQL).iloc[0]
currency = headline["currency"]

columns = st.columns(4)
columns[0].metric("Customers (ever bought)", f"{int(headline['customers']):,}")
columns[1].metric("Active in the last 12 months", f"{int(headline['active_customers_12m']):,}")
columns[2].metric(f"Net revenue, last 12 months ({currency})", f"{headline['net_revenue_12m']:,.0f}")
columns[3].metric(f"Average order value ({currency})", f"{headline['average_order_value']:,.2f}")

st.subheader("RFM segments")
segments = query(path, SEGMENTS_SQL, (snapshot["as_of"],))
left, right = st.columns(2)
left.bar_chart(segments, x="segment", y="customers", horizontal=True)
right.bar_chart(segments, x="segment", y="monetary", horizontal=True)
st.dataframe(
    segments,
    hide_index=True,
    column_config={
        "customer_share": st.column_config.NumberColumn("share of customers", format="percent"),
        "monetary_share": st.column_config.NumberColumn("share of revenue", format="percent"),
        "monetary": st.column_config.NumberColumn(f"revenue in RFM window ({currency})", format="%.0f"),
        "average_recency_days": st.column_config.NumberColumn("avg days since last order", format="%.0f"),
        "average_frequency": st.column_config.NumberColumn("avg orders in window", format="%.2f"),
    },
)

st.subheader("Loyalty tiers")
st.dataframe(query(path, TIERS_SQL), hide_index=True)

st.subheader("Scores this run")
MODEL_NAMES = {"clv": "Lifetime value", "churn": "Churn risk"}
FIGURES = {"clv": ("holdout error of spend", "model_mae_spend", "baseline_mae_spend", ",.2f"),
           "churn": ("out-of-time AUC", "model_auc", "baseline_auc", ".3f")}  # fmt: skip
runs = query(path, MODEL_RUNS_SQL, (snapshot["as_of"],))
if runs.empty:
    st.info(f"No lifetime-value or churn model ran for {snapshot['as_of']}: see the Dagster run log of this run.")
for run in runs.itertuples():
    name = MODEL_NAMES.get(run.model, run.model)
    label, model_figure, baseline_figure, style = FIGURES[run.model]
    model, baseline = getattr(run, model_figure), getattr(run, baseline_figure)
    figures = (
        f"{label} {model:{style}} against the baseline's {baseline:{style}}"
        if pd.notna(model) and pd.notna(baseline)
        else f"no {label} for the model this run"
    )
    if run.score_source == "none":
        st.warning(f"{name}: no scores this run. {run.notes or ''}")
    elif run.score_source == "model":
        st.success(f"{name}: the model's scores ({figures}).")
    else:
        st.warning(f"{name}: the baseline's scores are shown this run, not the model's ({figures}). {run.notes or ''}")
