"""Resources shared by every domain: the working warehouse and the run's as-of date."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb

from pipelines import sql
from pipelines.publish.snapshot import MARTS_CATALOG, POINTER_FILE
from pipelines.settings import engine_config

AS_OF_TAG = "crm/as_of"

# Dagster captures this logger into the run's log (and `crm run` prints its warnings); outside a run it is
# the Python logger "dagster.builtin.warehouse".
log = dg.get_dagster_logger("warehouse")

# DuckDB's words when another process holds the file: 'Could not set lock on file "...": Conflicting lock is held
# in /usr/bin/python3 (PID 1234) ...'.
_LOCKED = re.compile(r"could not set lock on file", re.IGNORECASE)
_HOLDER_PID = re.compile(r"\(PID (\d+)\)")
FIRST_WAIT_SECONDS = 0.5
LONGEST_WAIT_SECONDS = 15.0

# The marts live in a DuckDB file of their own beside the warehouse (crm.duckdb -> crm_marts.duckdb), attached
# as MARTS_CATALOG by every connection to the warehouse (and by dbt, dbt_project/profiles.yml): the publish then
# copies that file whole instead of copying the marts table by table. ``marts.<table>`` still names them: the
# attached file is on the connection's search path.


def marts_path_of(warehouse_path: str | Path) -> Path:
    """The file of the marts beside the warehouse file ``warehouse_path``: crm.duckdb -> crm_marts.duckdb, any
    other name gets ``_marts.duckdb`` added (the same rule as dbt_project/profiles.yml)."""
    path = Path(warehouse_path)
    return path.with_name(path.name.removesuffix(".duckdb") + "_marts.duckdb")


def attach_marts(connection: duckdb.DuckDBPyConnection, warehouse_path: str | Path, read_only: bool = False) -> bool:
    """Attach the marts file of the warehouse ``warehouse_path`` to ``connection`` and put it on the search path,
    so that ``marts.<table>`` reads it. Read-only, a marts file that does not exist yet (no dbt run) is left out:
    False."""
    marts = marts_path_of(warehouse_path)
    if read_only and not marts.exists():
        return False
    mode = " (read_only)" if read_only else ""
    connection.execute(f"attach if not exists {sql.string(str(marts))} as {sql.identifier(MARTS_CATALOG)}{mode}")
    if not read_only:
        connection.execute(f"create schema if not exists {sql.qualified(MARTS_CATALOG, 'marts')}")
    elif not connection.execute(
        "select count(*) from duckdb_schemas() where database_name = ? and schema_name = 'marts'", [MARTS_CATALOG]
    ).fetchone()[0]:
        return True  # a marts file that dbt has not built into yet: nothing to put on the search path
    # each entry catalog.schema in full: a bare "main" would be read as the marts file's main schema
    warehouse = connection.execute("select current_database()").fetchone()[0]
    entries = f"{sql.qualified(warehouse, 'main')},{sql.qualified(MARTS_CATALOG, 'marts')}"
    connection.execute(f"set search_path = {sql.string(entries)}")
    return True


def drop_marts_left_in_warehouse(connection: duckdb.DuckDBPyConnection) -> bool:
    """Drop the ``marts`` schema of the warehouse file itself, where a version before the marts file built them:
    left there, it would show stale tables to whoever opens the warehouse file alone, and hold the disk of a
    second copy. True when there was one."""
    found = connection.execute(
        "select database_name from duckdb_schemas() where database_name = current_database() and schema_name = 'marts'"
    ).fetchone()
    if found:
        connection.execute(f"drop schema {sql.qualified(found[0], 'marts')} cascade")
    return found is not None


class WarehouseLockedError(RuntimeError):
    """The working warehouse stayed locked by another process for longer than ``lock_wait_seconds``."""

    def __init__(self, message: str, holder_pid: int | None) -> None:
        super().__init__(message)
        self.holder_pid = holder_pid


def lock_holder(error: Exception) -> int | None:
    """The PID DuckDB names in a lock error, or None when the error is not about a lock (or names no process)."""
    text = str(error)
    if not _LOCKED.search(text):
        return None
    found = _HOLDER_PID.search(text)
    return int(found.group(1)) if found else 0


def describe_process(pid: int | None) -> str:
    """'PID 1234 (python3 -m some.module ...)', read from /proc where there is one."""
    if not pid:
        return "another process"
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        command = " ".join(" ".join(word.decode(errors="replace").split()) for word in words if word)
    except OSError:
        command = ""
    if len(command) > 200:
        command = command[:199] + "…"
    return f"PID {pid} ({command})" if command else f"PID {pid}"


def backoff_delays(limit_seconds: float) -> Iterator[float]:
    """Sleeps of 0.5 s doubling up to 15 s each, adding up to exactly ``limit_seconds``."""
    waited, delay = 0.0, FIRST_WAIT_SECONDS
    while waited < limit_seconds:
        step = min(delay, limit_seconds - waited)
        yield step
        waited += step
        delay = min(delay * 2, LONGEST_WAIT_SECONDS)


class Warehouse(dg.ConfigurableResource):
    """The working DuckDB warehouse and the landing zone it is loaded from. One writer at a time."""

    path: str
    landing_dir: str
    published_dir: str
    keep_snapshots: int = 7
    timezone: str = "UTC"
    # How long to wait for another process (a reader that opened the working file, a run still finishing)
    # to let go of the warehouse before the step fails.
    lock_wait_seconds: int = 300
    # The engine's memory_limit and threads (settings engine_memory_limit and engine_threads, resolved by
    # pipelines.settings.engine_config); empty and 0 leave DuckDB's own defaults (80% of memory, every core).
    memory_limit: str = ""
    threads: int = 0

    @classmethod
    def from_settings(cls, settings) -> Warehouse:
        """The warehouse as the settings place it (pipelines.settings.Settings)."""
        return cls(
            path=str(settings.warehouse_path),
            landing_dir=str(settings.landing_dir),
            published_dir=str(settings.published_dir),
            keep_snapshots=settings.keep_snapshots,
            timezone=settings.timezone,
            lock_wait_seconds=settings.warehouse_lock_wait_seconds,
            **engine_config(settings),
        )

    def open(self, read_only: bool = False, on_wait: Callable[[str], None] | None = None) -> duckdb.DuckDBPyConnection:
        """A connection to the warehouse, waiting (with backoff) while another process holds its lock."""
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        delays = backoff_delays(self.lock_wait_seconds)
        while True:
            connection = None
            try:
                connection = duckdb.connect(self.path, read_only=read_only)
                attach_marts(connection, self.path, read_only=read_only)
                return connection
            except duckdb.Error as error:
                if connection is not None:
                    connection.close()
                holder = lock_holder(error)
                if holder is None:
                    raise
                delay = next(delays, None)
                if delay is None:
                    raise WarehouseLockedError(self._locked_message(holder), holder) from error
                message = (
                    f"the warehouse {self.path} is held by {describe_process(holder)}; waiting {delay:g} s "
                    f"(at most {self.lock_wait_seconds} s in all, the warehouse_lock_wait_seconds setting)"
                )
                log.warning(message)
                if on_wait is not None:
                    on_wait(message)
                time.sleep(delay)

    def _locked_message(self, holder: int | None) -> str:
        pointer = Path(self.published_dir) / POINTER_FILE
        return (
            f"The warehouse {self.path} is held by {describe_process(holder)} and stayed locked for "
            f"{self.lock_wait_seconds} s (the warehouse_lock_wait_seconds setting). Only the pipeline opens the "
            f"working warehouse: readers (dashboards, notebooks, the duckdb command line) must open the published "
            f"snapshot that {pointer} names, never the working warehouse. Close that program"
            + (f" (or `kill {holder}`)" if holder else "")
            + ", then run again."
        )

    @contextmanager
    def connect(
        self, read_only: bool = False, on_wait: Callable[[str], None] | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        connection = self.open(read_only=read_only, on_wait=on_wait)
        try:
            # Timestamps are stored as UTC wall time; no conversion by the session's zone.
            connection.execute("set TimeZone = 'UTC'")
            if self.memory_limit:
                connection.execute(f"set memory_limit = {sql.string(self.memory_limit)}")
            if self.threads:
                connection.execute(f"set threads = {int(self.threads)}")
            yield connection
        finally:
            connection.close()

    @property
    def marts_path(self) -> Path:
        return marts_path_of(self.path)

    def wait_until_free(self, on_wait: Callable[[str], None] | None = None) -> None:
        """Wait until no other process holds the warehouse or its marts file (for a step whose subprocess, dbt,
        opens them itself), and drop the marts a version before the marts file left in the warehouse file."""
        connection = self.open(on_wait=on_wait)
        try:
            if drop_marts_left_in_warehouse(connection):
                log.info(f"dropped the marts schema of {self.path}: the marts are built in {self.marts_path} now")
        finally:
            connection.close()


def as_of_date(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext, default: date) -> date:
    """The run's cutoff: the ``crm/as_of`` tag the schedule or ``crm run`` sets, else ``default`` (today)."""
    tag = context.run.tags.get(AS_OF_TAG)
    return date.fromisoformat(tag) if tag else default
