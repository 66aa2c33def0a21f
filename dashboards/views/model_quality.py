"""Model quality: how far each model's scores can be trusted, for executives and analysts.

Every model is graded against a simple baseline on data it did not see (as Dynamics 365 grades a prediction model
against its baseline), and the baseline's scores are published whenever the model does not beat it. This page shows
that verdict per model, then the evidence: lifetime value predicted against actual by decile, the P(alive) matrix,
the churn model's ROC, gains, calibration and drivers, the history of runs, and what the data supports.
"""

import altair as alt
import pandas as pd
import streamlit as st

from dashboards.components import chart, empty, table
from dashboards.page import start
from dashboards.theme import MUTED, SCORER_COLOURS, colour_scale
from pipelines.readiness import CAPABILITIES

PAGE = {
    "title": "Model quality",
    "icon": ":material/verified:",
    "order": 40,
    "roles": ("executive", "analyst", "admin"),
}

MODEL_ORDER = (
    "case model when 'clv' then 1 when 'churn' then 2 when 'rfm' then 3 when 'behaviour_segments' then 4 else 5 end"
)
# Every column: a snapshot published before fitted_as_of existed has all the others.
SCORECARD_SQL = f"""select *
from marts.rpt_model_scorecard
order by {MODEL_ORDER}, model"""
CALIBRATION_SQL = """select scorer, bin, predicted, observed, customers
from marts.rpt_model_calibration
where model = ?
order by scorer desc, bin"""
CURVES_SQL = "select scorer, point, x, y from marts.rpt_churn_curves where curve = ? order by scorer desc, point"
DRIVERS_SQL = """select rank, label, auc_drop from marts.rpt_churn_drivers
where scorer = 'model'
order by rank
limit 12"""
P_ALIVE_SQL = "select frequency, recency, p_alive, expected_purchases from marts.rpt_p_alive_matrix"
HISTORY_SQL = f"""select model, model_label, as_of, strftime(finished_at, '%Y-%m-%d %H:%M') as finished,
    left(run_id, 8) as run, score_source, beats_baseline, headline_metric, headline_label, model_value,
    baseline_value, rows_used,
    duration_seconds
from marts.rpt_model_history
order by as_of desc, {MODEL_ORDER}, finished_at desc"""
READINESS_SQL = "select capability, status, reason from meta.readiness where run_id = ?"
# The readiness capability each model needs (pipelines/readiness.py CAPABILITIES).
CAPABILITY_OF_MODEL = {
    "clv": "clv",
    "churn": "churn",
    "rfm": "rfm",
    "behaviour_segments": "segments",
    "tier_movement": "tiers",
    "basket_rules": "market_basket",
    "next_best_offer": "market_basket",
}
CAPABILITY_NAMES = {capability.key: capability.name for capability in CAPABILITIES}
# Symbols every system font has (emoji are not drawn everywhere).
STATUS_ICONS = {"ready": "✓ ready", "partial": "◐ partial", "not ready": "✗ not ready"}
SOURCE_BADGES = {
    "model": ("Model's scores published", "green", ":material/check_circle:"),
    "baseline": ("Baseline's scores published", "orange", ":material/swap_horiz:"),
    "none": ("No scores this run", "gray", ":material/block:"),
}
PERCENT = alt.Axis(format="%")
OLDER_SNAPSHOT = (
    "This snapshot was published before the model-quality marts existed: the next run (`crm run`) publishes them."
)

page = start(PAGE)
formats = page.formats
as_of = page.as_of.isoformat()
st.caption(
    "Each model is graded on data it did not see against a simple baseline; when the model does not beat it, "
    "the baseline's scores are the ones published."
)

readiness = page.query(READINESS_SQL, (page.snapshot["run_id"],)) if page.has("meta.readiness") else pd.DataFrame()
readiness_reasons = dict(zip(readiness.get("capability", []), readiness.get("reason", []), strict=True))
has_scorecard = page.has("marts.rpt_model_scorecard")
scorecard = page.query(SCORECARD_SQL) if has_scorecard else pd.DataFrame(columns=["model"])
if "fitted_as_of" not in scorecard:  # published before models could score with an earlier night's fit
    scorecard["fitted_as_of"] = pd.Timestamp(page.as_of)
runs = {row.model: row for row in scorecard.itertuples()}


def why_missing(model: str, what: str) -> str:
    """In words, why ``what`` of ``model`` cannot be shown: the run's own notes, else the readiness reason."""
    if not has_scorecard:
        return OLDER_SNAPSHOT
    run = runs.get(model)
    if run is not None:
        notes = f" Its notes: {run.notes}" if isinstance(run.notes, str) and run.notes else ""
        return f"The {run.model_label.lower()} run of {as_of} recorded no {what}.{notes}"
    capability = CAPABILITY_OF_MODEL.get(model, model)
    reason = readiness_reasons.get(capability)
    name = CAPABILITY_NAMES.get(capability, model)
    if reason:
        return f"No {name.lower()} model ran for {as_of}: {reason} (see the readiness table at the bottom)."
    return f"No {name.lower()} model ran for {as_of}: the run's log (Data health) says why."


def figure(metric: str | None, value) -> str:
    """A model metric in its unit: errors of spend as money, counts (segments, candidates) whole, AUC to 3 places."""
    if pd.isna(value):
        return "–"
    if metric and "spend" in metric:
        return formats.money(value, 2)
    return formats.count(value) if float(value).is_integer() else formats.number(value, 3)


def scorer_colour() -> alt.Color:
    return alt.Color("scorer:N", title="Scores of", scale=colour_scale(SCORER_COLOURS))


def scorer_lines(
    frame: pd.DataFrame,
    x: alt.X,
    y: alt.Y,
    tooltip: list[alt.Tooltip],
    *,
    order: str | None = None,
    points: bool = True,
    reference: alt.Chart | None = None,
    height: int = 340,
) -> None:
    """Show the model's line beside its baseline's (one line per scorer of ``frame``), over ``reference`` if given;
    ``order`` is the field that joins the points (else they are joined in the order of x)."""
    lines = (
        alt.Chart(frame)
        .mark_line(point=points)
        .encode(x=x, y=y, color=scorer_colour(), order=order or alt.Undefined, tooltip=tooltip)
    )
    chart((lines if reference is None else reference + lines).properties(height=height))


def diagonal(what: str, x_title: str, y_title: str, top: float = 1.0) -> alt.Chart:
    """The dashed line y = x from 0 to ``top``: exact predictions, or what a random ordering would do (titled as
    the chart it is drawn on, so the layered axes keep their titles)."""
    line = pd.DataFrame({"x": [0.0, top], "y": [0.0, top], "what": [what, what]})
    return (
        alt.Chart(line)
        .mark_line(strokeDash=[4, 4], color=MUTED, strokeWidth=1)
        .encode(
            x=alt.X("x:Q", title=x_title),
            y=alt.Y("y:Q", title=y_title),
            tooltip=alt.Tooltip("what:N", title="Reference"),
        )
    )


# --- scorecard --------------------------------------------------------------------------------------------------
st.subheader("Scorecard")
if not has_scorecard:
    empty(OLDER_SNAPSHOT)
elif scorecard.empty:
    empty(f"No model ran for {as_of}: what the data lacks for each is at the bottom of this page.")
else:
    cards = st.columns(min(len(scorecard), 3))
    for index, run in enumerate(scorecard.itertuples()):
        with cards[index % len(cards)].container(border=True):
            words, colour, icon = SOURCE_BADGES.get(run.score_source, SOURCE_BADGES["none"])
            st.markdown(f"**{run.model_label}**")
            st.badge(words, color=colour, icon=icon)
            if isinstance(run.headline_label, str) and pd.notna(run.model_value):
                baseline = (
                    f" · baseline {figure(run.headline_metric, run.baseline_value)}"
                    if pd.notna(run.baseline_value)
                    else ""
                )
                label = run.headline_label[:1].upper() + run.headline_label[1:]
                st.markdown(f"{label}: model **{figure(run.headline_metric, run.model_value)}**" + baseline)
            st.write(run.verdict)
            fitted = pd.Timestamp(run.fitted_as_of).date() if pd.notna(run.fitted_as_of) else page.as_of
            if fitted != page.as_of:
                st.caption(
                    f"Scored with the fit or the holdout check made on the night of {fitted.isoformat()} (the notes "
                    "say which); the figures are that night's."
                )
            if isinstance(run.notes, str) and run.notes and run.notes != run.verdict:
                with st.expander("Notes of the run"):
                    st.write(run.notes)
    shown = scorecard.assign(
        model_figure=[figure(m, v) for m, v in zip(scorecard.headline_metric, scorecard.model_value, strict=True)],
        baseline_figure=[
            figure(m, v) for m, v in zip(scorecard.headline_metric, scorecard.baseline_value, strict=True)
        ],
        beats=scorecard.beats_baseline.map({True: "yes", False: "no"}).fillna("–"),
        finished=scorecard.finished_at.dt.strftime("%Y-%m-%d %H:%M"),
        fitted=pd.to_datetime(scorecard.fitted_as_of).dt.strftime("%Y-%m-%d"),
    )
    with st.expander("The scorecard as a table"):
        table(
            shown,
            {
                "model_label": ("Model", "text"),
                "headline_label": ("Judged on", "text"),
                "model_figure": ("Model's figure", "text"),
                "baseline_figure": ("Baseline's figure", "text"),
                "beats": ("Beats the baseline", "text"),
                "score_source": ("Scores published", "text"),
                "finished": ("Finished", "text"),
                "fitted": ("Fitted on the night of", "text"),
                "verdict": ("Verdict", "text"),
            },
            formats,
            "Model scorecard",
        )

# --- lifetime value ---------------------------------------------------------------------------------------------
st.subheader("Lifetime value: predicted against actual on the holdout")
deciles = page.query(CALIBRATION_SQL, ("clv",)) if page.has("marts.rpt_model_calibration") else pd.DataFrame()
if deciles.empty:
    empty(why_missing("clv", "decile figures") if page.has("marts.rpt_model_calibration") else OLDER_SNAPSHOT)
else:
    st.caption(
        "Customers in ten groups by predicted spend over the holdout months (10 = the highest); each point is a "
        "group's mean predicted spend against what it actually spent. On the dashed line the prediction is exact."
    )
    x_title = f"Predicted spend per customer ({page.settings.currency})"
    y_title = f"Actual spend per customer ({page.settings.currency})"
    top = float(max(deciles.predicted.max(), deciles.observed.max()))
    scorer_lines(
        deciles,
        alt.X("predicted:Q", title=x_title, axis=alt.Axis(tickCount=8)),
        alt.Y("observed:Q", title=y_title),
        [
            alt.Tooltip("scorer:N", title="Scores of"),
            alt.Tooltip("bin:O", title="Decile"),
            alt.Tooltip("customers:Q", title="Customers", format=","),
            alt.Tooltip("predicted:Q", title="Predicted spend", format=",.2f"),
            alt.Tooltip("observed:Q", title="Actual spend", format=",.2f"),
        ],
        order="bin:Q",
        reference=diagonal("exact prediction", x_title, y_title, top),
        height=360,
    )
    with st.expander("The deciles as a table"):
        table(
            deciles,
            {
                "scorer": ("Scores of", "text"),
                "bin": ("Decile", "count"),
                "customers": ("Customers", "count"),
                "predicted": (f"Predicted spend ({page.settings.currency})", "number"),
                "observed": (f"Actual spend ({page.settings.currency})", "number"),
            },
            formats,
            "Lifetime value by decile",
        )

st.subheader("P(alive): the chance a customer still buys, by frequency and recency")
matrix = page.query(P_ALIVE_SQL) if page.has("marts.rpt_p_alive_matrix") else pd.DataFrame()
if matrix.empty:
    empty(why_missing("clv", "P(alive) matrix") if page.has("marts.rpt_p_alive_matrix") else OLDER_SNAPSHOT)
else:
    st.caption(
        "BG/NBD: a customer who bought often and recently is very likely still a customer; one who bought often "
        "but long ago probably left. Frequency is repeat purchases; recency the age, in days, of the last one."
    )
    heat = (
        alt.Chart(matrix)
        .mark_rect()
        .encode(
            x=alt.X("recency:O", title="Days from first to last purchase (recency)", axis=alt.Axis(format=",.0f")),
            y=alt.Y("frequency:O", title="Repeat purchases (frequency)", sort="descending"),
            color=alt.Color("p_alive:Q", title="P(alive)", scale=alt.Scale(scheme="blues", domain=[0, 1])),
            tooltip=[
                alt.Tooltip("frequency:O", title="Repeat purchases"),
                alt.Tooltip("recency:Q", title="Recency (days)", format=",.0f"),
                alt.Tooltip("p_alive:Q", title="P(alive)", format=".1%"),
                alt.Tooltip("expected_purchases:Q", title="Expected purchases", format=".2f"),
            ],
        )
        .properties(height=540)
    )
    chart(heat)

# --- churn ------------------------------------------------------------------------------------------------------
st.subheader("Churn risk")
has_curves = page.has("marts.rpt_churn_curves")
roc = page.query(CURVES_SQL, ("roc",)) if has_curves else pd.DataFrame()
gains = page.query(CURVES_SQL, ("gains",)) if has_curves else pd.DataFrame()
churn_run = runs.get("churn")
if churn_run is not None and pd.notna(churn_run.model_value):
    st.caption(
        f"Out-of-time check: model AUC {figure('auc', churn_run.model_value)}, baseline "
        f"{figure('auc', churn_run.baseline_value)} (0.5 is a coin toss, 1 a perfect ranking)."
    )
left, right = st.columns(2)
with left:
    st.markdown("**ROC curve**")
    if roc.empty:
        empty(why_missing("churn", "ROC curve") if has_curves else OLDER_SNAPSHOT)
    else:
        x_title, y_title = "Stayers flagged (false positive rate)", "Churners caught (true positive rate)"
        scorer_lines(
            roc,
            alt.X("x:Q", title=x_title, axis=PERCENT),
            alt.Y("y:Q", title=y_title, axis=PERCENT),
            [
                alt.Tooltip("scorer:N", title="Scores of"),
                alt.Tooltip("x:Q", title="Stayers flagged", format=".1%"),
                alt.Tooltip("y:Q", title="Churners caught", format=".1%"),
            ],
            order="point:Q",
            points=False,
            reference=diagonal("a random ordering", x_title, y_title),
        )
with right:
    st.markdown("**Cumulative gains**")
    if gains.empty:
        empty(why_missing("churn", "gains curve") if has_curves else OLDER_SNAPSHOT)
    else:
        # Contacting nobody finds no churner: the curve starts at the origin.
        x_title, y_title = "Customers contacted, riskiest first", "Share of all churners among them"
        starts = pd.DataFrame({"scorer": gains.scorer.unique(), "point": 0, "x": 0.0, "y": 0.0})
        scorer_lines(
            pd.concat([starts, gains], ignore_index=True),
            alt.X("x:Q", title=x_title, axis=PERCENT),
            alt.Y("y:Q", title=y_title, axis=PERCENT),
            [
                alt.Tooltip("scorer:N", title="Scores of"),
                alt.Tooltip("x:Q", title="Contacted", format=".0%"),
                alt.Tooltip("y:Q", title="Churners found", format=".1%"),
            ],
            order="point:Q",
            reference=diagonal("contacting at random", x_title, y_title),
        )

left, right = st.columns(2)
with left:
    st.markdown("**Calibration: predicted against observed churn**")
    calibration = page.query(CALIBRATION_SQL, ("churn",)) if page.has("marts.rpt_model_calibration") else pd.DataFrame()
    if calibration.empty:
        has_marts = page.has("marts.rpt_model_calibration")
        empty(why_missing("churn", "calibration figures") if has_marts else OLDER_SNAPSHOT)
    else:
        x_title, y_title = "Predicted churn probability (mean of the tenth)", "Observed churn rate"
        scorer_lines(
            calibration,
            alt.X("predicted:Q", title=x_title, axis=PERCENT),
            alt.Y("observed:Q", title=y_title, axis=PERCENT),
            [
                alt.Tooltip("scorer:N", title="Scores of"),
                alt.Tooltip("bin:O", title="Tenth"),
                alt.Tooltip("customers:Q", title="Customers", format=","),
                alt.Tooltip("predicted:Q", title="Predicted", format=".1%"),
                alt.Tooltip("observed:Q", title="Observed", format=".1%"),
            ],
            reference=diagonal("perfect calibration", x_title, y_title),
        )
with right:
    st.markdown("**What drives the model's churn risk**")
    drivers = page.query(DRIVERS_SQL) if page.has("marts.rpt_churn_drivers") else pd.DataFrame()
    if drivers.empty:
        empty(why_missing("churn", "drivers") if page.has("marts.rpt_churn_drivers") else OLDER_SNAPSHOT)
    else:
        bars = (
            alt.Chart(drivers)
            .mark_bar(color=SCORER_COLOURS["model"])
            .encode(
                x=alt.X("auc_drop:Q", title="AUC lost when the feature is shuffled"),
                y=alt.Y(
                    "label:N",
                    title="Feature",
                    sort=alt.EncodingSortField("rank", order="ascending"),
                    axis=alt.Axis(labelLimit=230),
                ),
                tooltip=[
                    alt.Tooltip("label:N", title="Feature"),
                    alt.Tooltip("auc_drop:Q", title="AUC lost", format=".3f"),
                ],
            )
            .properties(height=340)
        )
        chart(bars)

# --- history ----------------------------------------------------------------------------------------------------
st.subheader("History of model runs")
history = page.query(HISTORY_SQL) if page.has("marts.rpt_model_history") else pd.DataFrame()
if history.empty:
    empty("No model run is recorded yet." if page.has("marts.rpt_model_history") else OLDER_SNAPSHOT)
else:
    # a chart for the models judged against a baseline; the others' figures (segment counts) are in the table
    graded = history[history.model.isin(history[history.baseline_value.notna()].model)]
    models = list(dict.fromkeys(graded.model))
    for column, model in zip(st.columns(max(len(models), 1)), models, strict=False):
        runs_of = graded[graded.model == model]
        label = runs_of.model_label.iloc[0]
        long = runs_of.melt(
            id_vars=["as_of", "run"],
            value_vars=["model_value", "baseline_value"],
            var_name="scorer",
            value_name="value",
        ).dropna(subset=["value"])
        long["scorer"] = long.scorer.map({"model_value": "model", "baseline_value": "baseline"})
        metric = runs_of.headline_label.iloc[0]
        with column:
            st.markdown(f"**{label}** · {metric}")
            scorer_lines(
                long,
                alt.X("as_of:T", title="As of", axis=alt.Axis(format="%Y-%m-%d")),
                alt.Y("value:Q", title="Model and baseline", scale=alt.Scale(zero=False)),
                [
                    alt.Tooltip("as_of:T", title="As of"),
                    alt.Tooltip("run:N", title="Run"),
                    alt.Tooltip("scorer:N", title="Scores of"),
                    alt.Tooltip("value:Q", title=str(metric), format=",.3f"),
                ],
                height=240,
            )
    shown = history.assign(
        as_of_day=history.as_of.dt.strftime("%Y-%m-%d"),
        model_figure=[figure(m, v) for m, v in zip(history.headline_metric, history.model_value, strict=True)],
        baseline_figure=[figure(m, v) for m, v in zip(history.headline_metric, history.baseline_value, strict=True)],
        beats=history.beats_baseline.map({True: "yes", False: "no"}).fillna("–"),
    )
    table(
        shown,
        {
            "as_of_day": ("As of", "text"),
            "model_label": ("Model", "text"),
            "run": ("Run", "text"),
            "score_source": ("Scores published", "text"),
            "beats": ("Beats the baseline", "text"),
            "model_figure": ("Model's figure", "text"),
            "baseline_figure": ("Baseline's figure", "text"),
            "rows_used": ("Customers used", "count"),
            "duration_seconds": ("Seconds", "number"),
            "finished": ("Finished", "text"),
        },
        formats,
        "Model runs",
    )

# --- readiness --------------------------------------------------------------------------------------------------
st.subheader("What the data supports")
if readiness.empty:
    empty(
        "This snapshot holds no readiness report for its run."
        if page.has("meta.readiness")
        else "This snapshot was published before readiness was recorded: run `crm doctor` to see it now."
    )
else:
    shown = readiness.assign(
        status_shown=readiness.status.map(STATUS_ICONS).fillna(readiness.status),
        name=readiness.capability.map(CAPABILITY_NAMES).fillna(readiness.capability),
        order=readiness.capability.map({key: index for index, key in enumerate(CAPABILITY_NAMES)}),
    ).sort_values("order")
    table(
        shown,
        {"name": ("Capability", "text"), "status_shown": ("Status", "text"), "reason": ("Why", "text")},
        formats,
        "Data readiness",
    )
