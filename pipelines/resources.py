"""Resources shared by every domain: the working warehouse and the run's as-of date."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb

AS_OF_TAG = "crm/as_of"


class Warehouse(dg.ConfigurableResource):
    """The working DuckDB warehouse and the landing zone it is loaded from. One writer at a time."""

    path: str
    landing_dir: str
    published_dir: str
    keep_snapshots: int = 7
    timezone: str = "UTC"

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        connection = duckdb.connect(self.path, read_only=read_only)
        try:
            # Timestamps are stored as UTC wall time; no conversion by the session's zone.
            connection.execute("set TimeZone = 'UTC'")
            yield connection
        finally:
            connection.close()


def as_of_date(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext, default: date) -> date:
    """The run's cutoff: the ``crm/as_of`` tag the schedule or ``crm run`` sets, else ``default`` (today)."""
    tag = context.run.tags.get(AS_OF_TAG)
    return date.fromisoformat(tag) if tag else default
