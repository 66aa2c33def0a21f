"""SQL that reads the marts as of a cutoff: purchase summaries for the lifetime-value models, behaviour features
for churn and segmentation, and what happened in a window after the cutoff (labels and holdout actuals); and the
loaders that gather what each model's run function (models_ml) reads, so that an asset loads, calls and writes.

Every query takes the cutoff as a bound parameter and reads only what happened before it, so the same SQL
builds training data at an earlier cutoff and scoring data at the run's own. Returns come from the facts as
the run sees them (net of returns recorded before the run's as-of date), a small look-ahead on a past cutoff.
"""

import json
from dataclasses import replace
from datetime import date

import duckdb
import polars as pl

from models_ml import ChurnInputs, ClvFit, ClvInputs, CutoffHistory, calibration_cutoff, churn_cutoffs

# Purchase occasions: days with a positive net value. A day whose orders were all returned (or worth nothing)
# is not a purchase for the lifetime-value models; Gamma-Gamma needs a positive spend.
# Spend is net of returns (what a customer is worth); "gross" reads the amounts before returns, as a generator
# without a return process would see them.
SPEND_COLUMNS = {"net": "net_revenue", "gross": "gross_revenue"}

# The {placeholders} of these templates are filled only with this module's constants (a SPEND_COLUMNS value,
# BEFORE_CUTOFF or IN_WINDOW, and one template inside another), never with a name or value from outside: the cutoff
# and the window are bound parameters ($cutoff, $days).

OCCASIONS_SQL = """
select customer_id, order_date, sum({spend})::double as value
from marts.fct_orders
where {period}
group by customer_id, order_date
having sum({spend}) > 0
"""
BEFORE_CUTOFF = "order_date < $cutoff"
IN_WINDOW = "order_date >= $cutoff and order_date < $cutoff::date + to_days($days::integer)"

CLV_SUMMARY_SQL = """
with occasions as ({occasions})
select
    customer_id,
    count(*) - 1 as frequency,
    date_diff('day', min(order_date), max(order_date))::double as recency,
    date_diff('day', min(order_date), $cutoff::date)::double as "T",
    (sum(value) - arg_min(value, order_date)) / nullif(count(*) - 1, 0) as monetary_value,
    avg(value) as average_order_value
from occasions
group by customer_id
order by customer_id
"""

WINDOW_ACTUALS_SQL = """
with occasions as ({occasions})
select customer_id, count(*) as purchases, sum(value) as spend
from occasions
group by customer_id
"""

BEHAVIOUR_SQL = """
with orders as (
    select * from marts.fct_orders where order_date < $cutoff
),
buyers as (
    select
        customer_id,
        date_diff('day', max(order_date), $cutoff::date) as recency_days,
        date_diff('day', min(order_date), $cutoff::date) as tenure_days,
        count(*) as lifetime_orders,
        count(*) filter (where order_date >= $cutoff::date - 90) as orders_90d,
        count(*) filter (where order_date >= $cutoff::date - 365) as orders_365d,
        coalesce(sum(net_revenue) filter (where order_date >= $cutoff::date - 365), 0)::double as net_revenue_365d,
        (sum(net_revenue) / count(*))::double as average_order_value,
        (sum(refund_amount) / nullif(sum(gross_amount), 0))::double as return_rate,
        (count(*) filter (where sales_channel = 'web'))::double / count(*) as channel_share__web,
        (count(*) filter (where sales_channel = 'store'))::double / count(*) as channel_share__store,
        (count(*) filter (where sales_channel = 'phone'))::double / count(*) as channel_share__phone
    from orders
    group by customer_id
),
touches as (
    select
        customer_id,
        count(*) filter (where interaction_type = 'support_case' and occurred_date >= $cutoff::date - 365)
            as support_cases_365d,
        count(*) filter (where interaction_type = 'call' and occurred_date >= $cutoff::date - 365) as calls_365d,
        count(*) filter (where interaction_type = 'send' and occurred_date >= $cutoff::date - 365) as sends_365d,
        count(*) filter (
            where interaction_type in ('open', 'click', 'conversion') and occurred_date >= $cutoff::date - 365
        ) as responses_365d,
        count(*) filter (where interaction_type = 'web_session' and occurred_date >= $cutoff::date - 30)
            as web_sessions_30d,
        count(*) filter (where interaction_type = 'web_session' and occurred_date >= $cutoff::date - 90)
            as web_sessions_90d,
        date_diff('day', max(occurred_date) filter (where interaction_type = 'web_session'), $cutoff::date)
            as days_since_web_session,
        count(*) filter (
            where interaction_type = 'open' and channel_id = 'email' and occurred_date >= $cutoff::date - 90
        ) as email_opens_90d,
        count(*) filter (
            where interaction_type = 'click' and channel_id = 'email' and occurred_date >= $cutoff::date - 90
        ) as email_clicks_90d,
        date_diff(
            'day', max(occurred_date) filter (where interaction_type = 'open' and channel_id = 'email'), $cutoff::date
        ) as days_since_email_open
    from marts.fct_interactions
    where occurred_date < $cutoff and customer_id is not null
    group by customer_id
),
cases as (
    select
        customer_id,
        count(*) filter (where satisfaction_score <= 2) as bad_experiences_365d,
        avg(satisfaction_score)::double as average_satisfaction
    from marts.fct_support_cases
    where closed_at < $cutoff and opened_date >= $cutoff::date - 365 and customer_id is not null
    group by customer_id
)
select
    buyers.*,
    coalesce(touches.support_cases_365d, 0) as support_cases_365d,
    coalesce(cases.bad_experiences_365d, 0) as bad_experiences_365d,
    cases.average_satisfaction,
    coalesce(touches.calls_365d, 0) as calls_365d,
    coalesce(touches.sends_365d, 0) as sends_365d,
    coalesce(touches.responses_365d, 0) as responses_365d,
    coalesce(touches.responses_365d, 0)::double / nullif(touches.sends_365d, 0) as campaign_response_rate,
    coalesce(touches.web_sessions_30d, 0) as web_sessions_30d,
    coalesce(touches.web_sessions_90d, 0) as web_sessions_90d,
    touches.days_since_web_session,
    coalesce(touches.email_opens_90d, 0) as email_opens_90d,
    coalesce(touches.email_clicks_90d, 0) as email_clicks_90d,
    touches.days_since_email_open
from buyers
left join touches using (customer_id)
left join cases using (customer_id)
order by customer_id
"""

RFM_INPUTS_SQL = """
select
    customer_id,
    days_since_last_order,
    rfm_window_orders as frequency,
    rfm_window_net_revenue as monetary
from marts.dim_customers
where has_purchased
"""

# A customer without a lifetime-value score has no purchase occasion: a predicted spend of 0. When the run has no
# lifetime-value scores at all, nobody's spend is predicted (null), and tier movement says so instead of calling
# every customer a downgrade risk.
TIER_INPUTS_SQL = """
with clv as (select * from ml.clv_scores where as_of = $as_of),
scored as (select count(*) > 0 as has_scores from clv)
select
    customers.customer_id,
    customers.loyalty_tier,
    customers.trailing_12m_net_revenue::double as trailing_12m_net_revenue,
    case when clv.customer_id is not null then clv.expected_spend_12m when scored.has_scores then 0 end
        as expected_spend_12m,
    coalesce(clv.score_source, 'none') as clv_score_source
from marts.dim_customers as customers
cross join scored
left join clv on customers.customer_id = clv.customer_id
where customers.customer_type = 'customer'
"""

# The fit the lifetime-value run made at an as-of date, from its model run's parameters.
PUBLISHED_CLV_FIT_SQL = """
select parameters from ml.model_runs
where model_run_id = (select any_value(model_run_id) from ml.clv_scores where as_of = $as_of)
"""

CATEGORY_SHARES_SQL = """
with categories as (
    -- decimal sums: exact, so the shares do not depend on the order parallel threads add them in
    select lines.customer_id, products.department_name, sum(lines.net_revenue) as net_revenue
    from marts.fct_order_lines as lines
    join marts.dim_products as products using (product_id)
    where lines.order_date < $cutoff
    group by all
)
select
    customer_id,
    department_name,
    coalesce((net_revenue / nullif(sum(net_revenue) over (partition by customer_id), 0))::double, 0) as share
from categories
"""

# The canonical inputs a model can be fed from, as feature groups: sales (orders), returns (refunds on them), crm
# (support cases), marketing (campaign sends and responses), web (sessions), callcenter (calls). Only sales is
# required; any other source may be absent, and a model run records which of its groups had data.
INPUT_GROUPS = ("sales", "returns", "crm", "marketing", "web", "callcenter")
MODEL_INPUTS = {
    "rfm": ("sales", "returns"),
    "clv": ("sales", "returns"),
    "churn": INPUT_GROUPS,
    "tier_movement": ("sales", "returns"),
    "behaviour_segments": INPUT_GROUPS,
    "basket_rules": ("sales",),
    "next_best_offer": ("sales", "returns"),
}

INPUTS_SQL = """
select 'sales' as input_group, count(*) as rows from marts.fct_orders where order_date < $cutoff
union all
select 'returns', count(*) from marts.fct_orders where order_date < $cutoff and refund_amount > 0
union all
select
    case interaction_type
        when 'support_case' then 'crm' when 'web_session' then 'web' when 'call' then 'callcenter' else 'marketing'
    end,
    count(*)
from marts.fct_interactions
where occurred_date < $cutoff and customer_id is not null and interaction_type != 'order'
group by all
"""

# Engagement: what a customer does between purchases, on the web shop and with the company's messages (the
# features of the web and marketing input groups). Churn can be run without them (``run_churn(exclude=...)``) to
# measure what they add to the purchase history (`crm evaluate`).
ENGAGEMENT_FEATURES = (
    "web_sessions_30d", "web_sessions_90d", "days_since_web_session", "sends_365d", "responses_365d",
    "campaign_response_rate", "email_opens_90d", "email_clicks_90d", "days_since_email_open",
)  # fmt: skip

FEATURE_LABELS = {
    "recency_days": "days since the last order",
    "tenure_days": "days since the first order",
    "lifetime_orders": "orders so far",
    "orders_90d": "orders in the last 90 days",
    "orders_365d": "orders in the last 12 months",
    "net_revenue_365d": "net revenue in the last 12 months",
    "average_order_value": "average order value",
    "return_rate": "share of the amount ordered that was refunded",
    "channel_share__web": "share of orders on the web",
    "channel_share__store": "share of orders in store",
    "channel_share__phone": "share of orders by phone",
    "support_cases_365d": "support cases in the last 12 months",
    "bad_experiences_365d": "cases rated 1 or 2 in the last 12 months",
    "average_satisfaction": "average case satisfaction (1-5)",
    "calls_365d": "calls to the call center in the last 12 months",
    "sends_365d": "campaign messages received in the last 12 months",
    "responses_365d": "responses to campaigns in the last 12 months",
    "campaign_response_rate": "responses per campaign message",
    "web_sessions_30d": "web sessions in the last 30 days",
    "web_sessions_90d": "web sessions in the last 90 days",
    "days_since_web_session": "days since the last web session",
    "email_opens_90d": "emails opened in the last 90 days",
    "email_clicks_90d": "email links clicked in the last 90 days",
    "days_since_email_open": "days since the last email opened",
    "p_alive": "probability of still being a customer (BG/NBD)",
    "expected_purchases_in_window": "purchases expected in the churn window (BG/NBD)",
}


def clv_summary(connection: duckdb.DuckDBPyConnection, cutoff: date, spend: str = "net") -> pl.DataFrame:
    """Frequency, recency, T, monetary value and average order value in days, as of ``cutoff``; ``spend`` is
    ``net`` (of returns, the default) or ``gross``."""
    if spend not in SPEND_COLUMNS:
        raise ValueError(f"clv_summary: spend must be one of {sorted(SPEND_COLUMNS)}, got {spend!r}")
    occasions = OCCASIONS_SQL.format(spend=SPEND_COLUMNS[spend], period=BEFORE_CUTOFF)
    return connection.sql(CLV_SUMMARY_SQL.format(occasions=occasions), params={"cutoff": cutoff}).pl()


def window_actuals(connection: duckdb.DuckDBPyConnection, cutoff: date, days: int) -> pl.DataFrame:
    """Purchase occasions and spend of each customer in the ``days`` from ``cutoff``."""
    occasions = OCCASIONS_SQL.format(spend=SPEND_COLUMNS["net"], period=IN_WINDOW)
    return connection.sql(WINDOW_ACTUALS_SQL.format(occasions=occasions), params={"cutoff": cutoff, "days": days}).pl()


def behaviour(connection: duckdb.DuckDBPyConnection, cutoff: date) -> pl.DataFrame:
    """One row per customer who ordered before ``cutoff`` with their behaviour from every touchpoint; the category
    mix is the share of net spend per product department (the top of the hierarchy), ``category_share__<name>``."""
    frame = connection.sql(BEHAVIOUR_SQL, params={"cutoff": cutoff}).pl()
    shares = connection.sql(CATEGORY_SHARES_SQL, params={"cutoff": cutoff}).pl()
    if shares.height == 0:
        return frame
    shares = shares.with_columns(
        category=pl.lit("category_share__")
        + pl.col("department_name").str.to_lowercase().str.replace_all(r"[^a-z0-9]+", "_")
    ).pivot(on="category", index="customer_id", values="share", aggregate_function="sum")
    categories = sorted(column for column in shares.columns if column != "customer_id")
    return frame.join(shares.select("customer_id", *categories), on="customer_id", how="left").with_columns(
        pl.col(categories).fill_null(0.0)
    )


def rfm_inputs(connection: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every customer who has ordered: days since the last order, orders and net revenue in the RFM window (the
    marts compute them as of the run's cutoff)."""
    return connection.sql(RFM_INPUTS_SQL).pl()


def tier_inputs(connection: duckdb.DuckDBPyConnection, as_of: date) -> pl.DataFrame:
    """Every customer's tier, trailing 12-month spend and the spend the lifetime-value run predicts for the next 12
    months (0 for a customer it did not score, null for everyone when it scored nobody)."""
    return connection.sql(TIER_INPUTS_SQL, params={"as_of": as_of}).pl()


def last_order_date(connection: duckdb.DuckDBPyConnection, before: date) -> date | None:
    """The latest order date before ``before`` (None without orders)."""
    return connection.sql(
        "select max(order_date) from marts.fct_orders where order_date < $before", params={"before": before}
    ).fetchall()[0][0]


def clv_inputs(
    connection: duckdb.DuckDBPyConnection, as_of: date, holdout_months: int, *, checked: bool = True
) -> ClvInputs:
    """The lifetime-value run's inputs: the summaries at the calibration cutoff and at ``as_of``, and what each
    customer did in the holdout between them. ``checked=False`` loads only the summary at ``as_of`` (a night that
    publishes with a stored check)."""
    cutoff, holdout_days = calibration_cutoff(as_of, holdout_months)
    first_order = connection.sql("select min(order_date) from marts.fct_orders").fetchall()[0][0]
    return ClvInputs(
        as_of=as_of,
        calibration=clv_summary(connection, cutoff) if checked else None,
        holdout=window_actuals(connection, cutoff, holdout_days) if checked else None,
        current=clv_summary(connection, as_of),
        first_order_date=first_order,
    )


def published_clv_fit(connection: duckdb.DuckDBPyConnection, as_of: date) -> ClvFit | None:
    """The purchase and spend models the lifetime-value run published at ``as_of`` (read back from its model
    run), or None when it published the baseline's scores or none."""
    rows = connection.sql(PUBLISHED_CLV_FIT_SQL, params={"as_of": as_of}).fetchall()
    parameters = json.loads(rows[0][0]) if rows and rows[0][0] else {}
    return ClvFit.from_dict(parameters) if "bgnbd" in parameters else None


def churn_inputs(
    connection: duckdb.DuckDBPyConnection, as_of: date, window_days: int, *, labelled: bool = True
) -> ChurnInputs:
    """The churn run's inputs: its cutoffs (``churn_cutoffs`` from the last order before ``as_of``), each cutoff's
    behaviour and purchase summary, who bought in the window after the training and test cutoffs, and the
    lifetime-value run's published fit. ``labelled=False`` loads only the customers to score (a night that scores
    with a stored fit); :func:`with_labelled_cutoffs` adds the rest."""
    inputs = ChurnInputs(
        cutoffs=churn_cutoffs(as_of, last_order_date(connection, as_of), window_days),
        train=None,
        test=None,
        current=_cutoff_history(connection, as_of, None),
        published_fit=published_clv_fit(connection, as_of),
    )
    return with_labelled_cutoffs(connection, inputs, window_days) if labelled else inputs


def with_labelled_cutoffs(connection: duckdb.DuckDBPyConnection, inputs: ChurnInputs, window_days: int) -> ChurnInputs:
    """``inputs`` with the training and test cutoffs' histories, labelled with who bought in the window after."""
    cutoffs = inputs.cutoffs
    train, test = (_cutoff_history(connection, cutoff, window_days) for cutoff in (cutoffs.train, cutoffs.test))
    return replace(inputs, train=train, test=test)


def _cutoff_history(connection: duckdb.DuckDBPyConnection, cutoff: date, window_days: int | None) -> CutoffHistory:
    """One cutoff's behaviour and purchase summary; with ``window_days``, who bought in that window after it."""
    bought = None
    if window_days is not None:
        bought = window_actuals(connection, cutoff, window_days).filter(pl.col("purchases") > 0)["customer_id"]
    return CutoffHistory(cutoff, behaviour(connection, cutoff), clv_summary(connection, cutoff), bought)


def available_inputs(connection: duckdb.DuckDBPyConnection, cutoff: date) -> dict[str, int]:
    """Rows before ``cutoff`` in each input group of ``INPUT_GROUPS`` (0 for a source that sent nothing); only
    touchpoints resolved to a customer count, as only those reach the features."""
    rows = dict(connection.sql(INPUTS_SQL, params={"cutoff": cutoff}).fetchall())
    return {group: int(rows.get(group, 0)) for group in INPUT_GROUPS}


def describe_inputs(model: str, available: dict[str, int]) -> tuple[list[str], str | None]:
    """The input groups ``model`` reads that had data, and a plain sentence when some it reads had none (e.g.
    "churn ran on sales only: no returns, crm, marketing, web or callcenter data before the cutoff.")."""
    wanted = MODEL_INPUTS[model]
    used = [group for group in wanted if available.get(group, 0) > 0]
    empty = [group for group in wanted if group not in used]
    if not empty:
        return used, None
    ran_on = f"{used[0]} only" if len(used) == 1 else _listed(used, "and") if used else "no data"
    return used, f"{model} ran on {ran_on}: no {_listed(empty, 'or')} data before the cutoff."


def _listed(words: list[str], conjunction: str) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


def feature_label(feature: str) -> str:
    """Plain words for a feature (category shares read 'share of spend on <category>')."""
    if feature.startswith("category_share__"):
        return "share of spend on " + feature.removeprefix("category_share__").replace("_", " ").title()
    return FEATURE_LABELS.get(feature, feature.replace("_", " "))
