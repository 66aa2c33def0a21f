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
from pipelines.publish.snapshot import POINTER_FILE
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
            try:
                return duckdb.connect(self.path, read_only=read_only)
            except duckdb.Error as error:
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

    def wait_until_free(self, on_wait: Callable[[str], None] | None = None) -> None:
        """Wait until no other process holds the warehouse (for a step whose subprocess, dbt, opens it itself)."""
        self.open(on_wait=on_wait).close()


def as_of_date(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext, default: date) -> date:
    """The run's cutoff: the ``crm/as_of`` tag the schedule or ``crm run`` sets, else ``default`` (today)."""
    tag = context.run.tags.get(AS_OF_TAG)
    return date.fromisoformat(tag) if tag else default
