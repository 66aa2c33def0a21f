"""The in-memory DuckDB that model steps count with (basket rules, offers), under the run's memory and threads.

The pipeline calls :func:`configure` once with the ``engine_memory_limit`` and ``engine_threads`` settings
(pipelines.settings.engine_config); without it a connection has DuckDB's own defaults, as in a notebook.
"""

from __future__ import annotations

import duckdb
import polars as pl
import pyarrow as pa

_CONFIG: dict[str, object] = {}


def configure(memory_limit: str | None = None, threads: int | None = None, temp_directory: str | None = None) -> None:
    """Every later :func:`connect` gets this memory limit (a DuckDB size such as "4GiB"), thread count and folder
    to spill to beyond the limit (DuckDB's default is ".tmp" in the current folder, wherever that is)."""
    settings = {"memory_limit": memory_limit, "threads": threads, "temp_directory": temp_directory}
    _CONFIG.clear()
    _CONFIG.update({name: value for name, value in settings.items() if value})


def connect() -> duckdb.DuckDBPyConnection:
    """A fresh in-memory database with the configured limits."""
    return duckdb.connect(config=dict(_CONFIG))


def arrow(frame: pl.DataFrame) -> pa.Table:
    """``frame`` as an Arrow table for :func:`connect`'s ``register``, in polars' own string layout (Arrow string
    views, which DuckDB reads): the default export copies every string into the older layout, 0.65 GB for the 10M
    purchase lines of a million customers, each time a model hands them over."""
    return frame.to_arrow(compat_level=pl.CompatLevel.newest())
