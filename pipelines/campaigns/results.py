"""Campaign results as the measurement mart states them (marts.rpt_campaign_results), for the command line and
the campaigns page: one row per campaign, its conversion lift against the control group and the lift's 95%
interval."""

from __future__ import annotations

import duckdb
import polars as pl

from pipelines.publish.snapshot import snapshot_tables

RESULTS_TABLE = "marts.rpt_campaign_results"
RESULTS_SQL = """
select
    campaign_id,
    campaign_name,
    channel,
    target_members,
    control_members,
    target_conversion_rate,
    control_conversion_rate,
    conversion_lift,
    conversion_lift_low,
    conversion_lift_high,
    incremental_revenue,
    is_window_closed,
    note
from marts.rpt_campaign_results
where breakdown = 'campaign' and (cast(? as varchar) is null or campaign_id = ?)
order by campaign_id
"""


def campaign_results(connection: duckdb.DuckDBPyConnection, campaign_id: str | None = None) -> pl.DataFrame | None:
    """Each campaign's (or only ``campaign_id``'s) results, or None when the snapshot holds no results table."""
    if RESULTS_TABLE not in snapshot_tables(connection):
        return None
    return connection.sql(RESULTS_SQL, params=[campaign_id, campaign_id]).pl()


def result_lines(results: pl.DataFrame) -> list[str]:
    """The results in lines of words: lift in percentage points with its 95% interval, or the mart's note."""
    lines = []
    for row in results.iter_rows(named=True):
        head = (
            f"{row['campaign_id']} {row['campaign_name'] or ''} ({row['channel']}): "
            f"{row['target_members'] or 0:,} targets, {row['control_members'] or 0:,} control"
        )
        if row["conversion_lift"] is None:
            lines.append(f"{head}; lift not measured")
        else:
            lines.append(
                f"{head}; conversion {_percent(row['target_conversion_rate'])} against "
                f"{_percent(row['control_conversion_rate'])}: lift {_points(row['conversion_lift'])} "
                f"(95% interval {_points(row['conversion_lift_low'])} to {_points(row['conversion_lift_high'])})"
                + ("" if row["is_window_closed"] else ", window still open")
            )
        if row["note"]:
            lines.append(f"    {row['note']}")
    return lines


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _points(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.1f} points"
