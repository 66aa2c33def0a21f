"""Read-only access to the published snapshot: one cached connection per snapshot, cached parameterised queries.

Pages never open the working warehouse: they read the snapshot that published/current.json names, so a run in
progress or a failed run never changes what they show. Every query is cached per snapshot path, SQL text and
bound parameters: a new snapshot is a new path, so nothing stale is ever served. Pages pass only SQL they hold as
constants, or build from whitelists (dashboards/pivot.py); values from the page are bound parameters.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import streamlit as st

from pipelines.publish.snapshot import current_snapshot, snapshot_tables
from pipelines.settings import load_settings


def published() -> dict | None:
    """The current snapshot's pointer (path, as_of, run_id, published_at), or None before the first publish."""
    return current_snapshot(load_settings().published_dir)


@st.cache_resource(show_spinner=False)
def connection(path: str) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(path, read_only=True)


@st.cache_data(show_spinner=False, max_entries=512)
def query(path: str, sql: str, parameters: tuple = ()) -> pd.DataFrame:
    """Run a read-only query on the snapshot at ``path``; cached per snapshot, SQL and parameters."""
    return connection(path).cursor().execute(sql, list(parameters)).df()


@st.cache_data(show_spinner=False)
def tables(path: str) -> frozenset[str]:
    """``schema.table`` of every table the snapshot at ``path`` holds (cached per snapshot)."""
    return snapshot_tables(connection(path).cursor())
