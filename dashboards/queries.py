"""Read-only access to the published snapshot: one cached connection per snapshot, cached parameterised queries.

Pages never open the working warehouse: they read the snapshot that published/current.json names, so a run in
progress or a failed run never changes what they show.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import streamlit as st

from pipelines.publish.snapshot import current_snapshot
from pipelines.settings import load_settings


def published() -> dict | None:
    """The current snapshot's pointer (path, as_of, run_id, published_at), or None before the first publish."""
    return current_snapshot(load_settings().published_dir)


@st.cache_resource
def _connection(path: str) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(path, read_only=True)


@st.cache_data(show_spinner=False)
def query(path: str, sql: str, parameters: tuple = ()) -> pd.DataFrame:
    """Run a read-only query on the snapshot at ``path``; cached per snapshot, SQL and parameters."""
    return _connection(path).cursor().execute(sql, list(parameters)).df()


HEADLINE_SQL = """
select
    count(*) filter (where has_purchased) as customers,
    count(*) filter (where trailing_12m_net_revenue > 0) as active_customers_12m,
    sum(trailing_12m_net_revenue) as net_revenue_12m,
    sum(lifetime_net_revenue) as lifetime_net_revenue,
    sum(lifetime_orders) as lifetime_orders,
    sum(lifetime_net_revenue) / nullif(sum(lifetime_orders), 0) as average_order_value,
    any_value(reporting_currency_code) as currency
from marts.dim_customers
"""

# Scores are read at the snapshot's own as-of date (bound from its pointer), never at the latest date a table holds:
# a snapshot may keep earlier runs' rows.
SEGMENTS_SQL = """
select segment, customers, customer_share, monetary, monetary_share, average_recency_days, average_frequency
from ml.rfm_segments
where as_of = cast(? as date)
order by monetary desc
"""

TIERS_SQL = """
select loyalty_tier, count(*) as customers, sum(trailing_12m_net_revenue) as net_revenue_12m
from marts.dim_customers
where has_purchased
group by loyalty_tier
order by case loyalty_tier when 'platinum' then 1 when 'gold' then 2 when 'silver' then 3 else 4 end
"""

MODEL_RUNS_SQL = """
select
    model,
    score_source,
    beats_baseline,
    json_extract(metrics, '$.mae_spend')::double as model_mae_spend,
    json_extract(baseline_metrics, '$.mae_spend')::double as baseline_mae_spend,
    json_extract(metrics, '$.auc')::double as model_auc,
    json_extract(baseline_metrics, '$.auc')::double as baseline_auc,
    notes
from ml.model_runs
where as_of = cast(? as date) and model in ('clv', 'churn')
-- the published snapshot holds one run per model and as-of date; should an older one hold more, the latest speaks
qualify row_number() over (partition by model order by finished_at desc nulls last, model_run_id desc) = 1
order by model
"""
