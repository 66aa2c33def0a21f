"""Data health: whether last night's data can be trusted, for analysts and admins.

The runs and their outcome, how fresh each source is, what became of every file's rows (loaded, quarantined at
the door, excluded in the warehouse, and why), the expectations and dbt tests, and what changed since the run
before. All of it is what the run recorded and published; only the Dagster run history is read live, read-only.
"""

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from dashboards.components import chart, empty, table
from dashboards.page import start
from pipelines.publish.changes import change_sentences
from pipelines.publish.guard import read_held

PAGE = {"title": "Data health", "icon": ":material/monitor_heart:", "order": 50, "roles": ("analyst", "admin")}

PUBLISHED_RUNS_SQL = """select
    run_id,
    left(run_id, 8) as run,
    strftime(as_of, '%Y-%m-%d') as as_of,
    strftime(published_at, '%Y-%m-%d %H:%M') as published,
    (figures ->> 'customers')::double as customers,
    (figures ->> 'orders')::double as orders,
    (figures ->> 'net_revenue_12m')::double as net_revenue_12m
from meta.published_runs
order by published_at desc
limit 20"""
FRESHNESS_SQL = """select
    case when late then '⚠ late' when last_file is null then '– no file yet' else '✓ on time' end as state,
    replace(source_table, '__', '/') as source_table,
    coalesce(cadence, '') as cadence,
    coalesce(last_file, '') as last_file,
    coalesce(strftime(last_file_at, '%Y-%m-%d %H:%M'), '') as last_file_at,
    message
from meta.source_freshness
where run_id = ?
order by late desc, last_file is null, source_table"""
FILES_SQL = """select replace(source_table, '__', '/') as source_table, file, status,
    strftime(loaded_at, '%Y-%m-%d %H:%M') as loaded, rows_read, rows_loaded, rows_quarantined, rows_excluded,
    left(run_id, 8) as run
from marts.rpt_file_health
order by coalesce(rows_quarantined, 0) + coalesce(rows_excluded, 0) > 0 desc, loaded_at desc, source_table, file"""
EXCLUSIONS_SQL = """select replace(source_table, '__', '/') as source_table, stage, reason, rows
from marts.rpt_exclusion_reasons
order by rows desc, source_table, reason"""
# Each source's latest validation: a night without a new file of a source validates nothing of it.
EXPECTATIONS_SQL = """select replace(source_table, '__', '/') as source_table,
    replace(expectation, '_', ' ') as expectation, coalesce(column_name, '') as column_name, severity, success,
    unexpected_count, array_to_string(files, ', ') as files, strftime(validated_at, '%Y-%m-%d %H:%M') as validated
from meta.validation_results
qualify run_id = first_value(run_id) over (partition by source_table order by validated_at desc)
order by success, severity = 'error' desc, source_table, expectation, column_name"""
DBT_TESTS_SQL = """select step, status, test_name, model, coalesce(column_name, '') as column_name, failures,
    coalesce(message_short, '') as message_short
from meta.dbt_test_results
where run_id = ?
order by case status when 'fail' then 1 when 'error' then 2 when 'warn' then 3 when 'skipped' then 4 else 5 end,
    step, model, test_name"""
RUN_CHANGES_SQL = """select kind, name, previous_value, current_value
from meta.run_changes
where run_id = ?
order by kind, name"""
# Symbols every system font has (emoji are not drawn everywhere). A run left "started" by a killed process reads
# so here until `crm run` or `crm status` marks it failed.
OUTCOME_ICONS = {"success": "✓ success", "failure": "✗ failure", "canceled": "– canceled", "started": "… started"}
TEST_ICONS = {"pass": "✓ pass", "warn": "⚠ warn", "fail": "✗ fail", "error": "✗ error", "skipped": "– skipped"}
OLDER_SNAPSHOT = "This snapshot was published before {what} was recorded: the next run (`crm run`) publishes it."


@st.cache_data(ttl=30, show_spinner=False)
def dagster_runs(home: str) -> tuple[list[dict], str | None]:
    """The nightly job's latest runs from the Dagster instance at ``home``, read-only (no dead-run clean-up, which
    `crm status` does), and None; or no runs and why they cannot be read."""
    if not (Path(home) / "dagster.yaml").exists():
        return [], f"No run history in the Dagster folder ({home}): no `crm run` has used it yet."
    try:
        from dagster import DagsterInstance

        from pipelines.runs import NIGHTLY_JOB, recent_runs

        with DagsterInstance.from_config(home) as instance:
            return recent_runs(instance, NIGHTLY_JOB), None
    except Exception as error:
        return [], f"The Dagster run history in {home} could not be read ({type(error).__name__}: {error})."


page = start(PAGE)
formats = page.formats
run_id = page.snapshot["run_id"]

# --- runs -------------------------------------------------------------------------------------------------------
st.subheader("Runs")
with st.container():
    st.markdown("**Published runs** (what the dashboards showed, newest first)")
    if not page.has("meta.published_runs"):
        empty(OLDER_SNAPSHOT.format(what="the list of published runs"))
    else:
        published = page.query(PUBLISHED_RUNS_SQL)
        published["shown"] = published.run_id.eq(run_id).map({True: "● now", False: ""})
        table(
            published,
            {
                "shown": ("", "text"),
                "published": ("Published", "text"),
                "as_of": ("As of", "text"),
                "run": ("Run", "text"),
                "customers": ("Customers", "count"),
                "orders": ("Orders", "count"),
                "net_revenue_12m": ("Net revenue, 12 months", "money"),
            },
            formats,
            "Published runs",
        )
with st.container():
    st.markdown("**Nightly job runs** (Dagster, newest first)")
    runs, problem = dagster_runs(str(page.settings.dagster_home))
    if problem:
        empty(problem)
    elif not runs:
        empty("The Dagster instance holds no run of the nightly job.")
    else:
        frame = pd.DataFrame(runs)
        frame["outcome_shown"] = frame["outcome"].map(OUTCOME_ICONS).fillna(frame["outcome"])
        frame["run"] = frame["run_id"].str[:8]
        for moment in ("started", "finished"):  # ISO in UTC: 2026-06-30T02:00:04+00:00
            frame[moment] = frame[moment].str[:16].str.replace("T", " ") + " UTC"
        columns = {
            "outcome_shown": ("Outcome", "text"),
            "as_of": ("As of", "text"),
            "run": ("Run", "text"),
            "started": ("Started", "text"),
            "finished": ("Finished", "text"),
        }
        if frame["failed_step"].notna().any():
            frame["failed_step"] = frame["failed_step"].fillna("")
            columns["failed_step"] = ("Failed step", "text")
        table(frame, columns, formats, "Nightly job runs")

held = read_held(page.settings.published_dir)
if held is not None:
    st.warning(
        f"Run {held['run_id'][:8]} as of {held['as_of']} is held back, not published: its figures moved more than "
        f"the publish guard allows. Check them, then publish it with `crm publish --accept {held['run_id']}`.",
        icon=":material/pan_tool:",
    )

# --- what changed -----------------------------------------------------------------------------------------------
st.subheader("What changed since the run before")
changes = page.snapshot.get("changes")
if changes:
    since, *sentences = change_sentences(changes)  # "Since the run published as of ...:", then one per figure
    st.markdown(since + "".join(f"\n- {sentence}" for sentence in sentences))
else:
    empty("This run's publication recorded no comparison with the run before it.")
if page.snapshot.get("rolled_back_from"):
    st.info(f"Rolled back from run {page.snapshot['rolled_back_from']} to this run.")
if page.has("meta.run_changes"):
    figures = page.query(RUN_CHANGES_SQL, (run_id,))
    if not figures.empty:
        with st.expander("The figures compared"):
            table(
                figures,
                {
                    "kind": ("Kind", "text"),
                    "name": ("Figure", "text"),
                    "previous_value": ("Before", "number"),
                    "current_value": ("Now", "number"),
                },
                formats,
                "Run changes",
            )

# --- sources ----------------------------------------------------------------------------------------------------
st.subheader("Freshness per source")
if not page.has("meta.source_freshness"):
    empty(OLDER_SNAPSHOT.format(what="source freshness"))
else:
    freshness = page.query(FRESHNESS_SQL, (run_id,))
    if freshness.empty:
        empty("This run recorded no source freshness: no contract was loaded (see `crm doctor`).")
    else:
        table(
            freshness,
            {
                "state": ("State", "text"),
                "source_table": ("Source", "text"),
                "cadence": ("Expected", "text"),
                "last_file": ("Latest file", "text"),
                "last_file_at": ("Arrived", "text"),
                "message": ("What it means", "text"),
            },
            formats,
            "Source freshness",
        )

st.subheader("Files and their rows")
if not page.has("marts.rpt_file_health", "marts.rpt_exclusion_reasons"):
    empty(OLDER_SNAPSHOT.format(what="per-file health"))
else:
    files = page.query(FILES_SQL)
    if files.empty:
        empty("No file is in the load ledger: nothing has been loaded from the landing zone yet.")
    else:
        st.caption(
            "Rows read from each file, loaded, quarantined at the door (they broke the contract) and excluded "
            "inside the warehouse (they broke a rule of the models); files with set-aside rows first."
        )
        table(
            files,
            {
                "source_table": ("Source", "text"),
                "file": ("File", "text"),
                "status": ("Status", "text"),
                "loaded": ("Loaded at", "text"),
                "rows_read": ("Rows read", "count"),
                "rows_loaded": ("Rows loaded", "count"),
                "rows_quarantined": ("Quarantined", "count"),
                "rows_excluded": ("Excluded", "count"),
                "run": ("Run", "text"),
            },
            formats,
            "File health",
            height=min(38 + 35 * len(files), 420),
        )
    reasons = page.query(EXCLUSIONS_SQL)
    if reasons.empty:
        st.success("No row was quarantined at the door or excluded in the warehouse.", icon=":material/check:")
    else:
        st.markdown("**Why rows were set aside**")
        bars = (
            alt.Chart(reasons)
            .mark_bar()
            .encode(
                x=alt.X("rows:Q", title="Rows set aside"),
                y=alt.Y("reason:N", title="Reason", sort="-x"),
                color=alt.Color("stage:N", title="Where"),
                tooltip=[
                    alt.Tooltip("source_table:N", title="Source"),
                    alt.Tooltip("stage:N", title="Where"),
                    alt.Tooltip("reason:N", title="Reason"),
                    alt.Tooltip("rows:Q", title="Rows", format=","),
                ],
            )
            .properties(height=40 + 26 * reasons.reason.nunique())
        )
        chart(bars)
        table(
            reasons,
            {
                "source_table": ("Source", "text"),
                "stage": ("Where", "text"),
                "reason": ("Reason", "text"),
                "rows": ("Rows", "count"),
            },
            formats,
            "Rows set aside",
        )

# --- checks -----------------------------------------------------------------------------------------------------
st.subheader("Expectations on the files")
if not page.has("meta.validation_results"):
    empty(OLDER_SNAPSHOT.format(what="expectation results"))
else:
    expectations = page.query(EXPECTATIONS_SQL)
    failed = expectations[~expectations.success.astype(bool)]
    if expectations.empty:
        empty("No expectation was checked: no file has been validated yet.")
    else:
        if failed.empty:
            st.success(f"All {len(expectations)} expectations of the latest files hold.", icon=":material/check:")
        else:
            st.warning(f"{len(failed)} of {len(expectations)} expectations do not hold: listed first.")
        expectations["result"] = expectations.success.map({True: "✓ holds", False: "✗ fails"})
        table(
            expectations,
            {
                "result": ("Result", "text"),
                "source_table": ("Source", "text"),
                "expectation": ("Expectation", "text"),
                "column_name": ("Column", "text"),
                "severity": ("Severity", "text"),
                "unexpected_count": ("Rows against it", "count"),
                "files": ("Files", "text"),
                "validated": ("Checked", "text"),
            },
            formats,
            "Expectation results",
            height=320,
        )

st.subheader("dbt tests")
if not page.has("meta.dbt_test_results"):
    empty(OLDER_SNAPSHOT.format(what="the dbt test results"))
else:
    tests = page.query(DBT_TESTS_SQL, (run_id,))
    if tests.empty:
        empty("This run recorded no dbt test result.")
    else:
        attention = tests[tests.status != "pass"]
        if attention.empty:
            st.success(f"All {len(tests)} dbt tests of this run pass.", icon=":material/check:")
        else:
            st.warning(f"{len(attention)} of {len(tests)} dbt tests did not pass: listed first.")
        tests["result"] = tests.status.map(TEST_ICONS).fillna(tests.status)
        table(
            tests,
            {
                "result": ("Result", "text"),
                "step": ("Step", "text"),
                "model": ("Model", "text"),
                "column_name": ("Column", "text"),
                "test_name": ("Test", "text"),
                "failures": ("Failing rows", "count"),
                "message_short": ("Message", "text"),
            },
            formats,
            "dbt test results",
            height=320,
        )
