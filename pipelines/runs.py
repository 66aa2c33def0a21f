"""Runs whose process died (killed, machine lost power) are marked failed, so the queue and `crm status` move on.

Dagster records a run as STARTED when its process begins and as finished when that process says so: a process
killed with SIGKILL never says so, and the run stays STARTED forever (the queue then refuses new runs). Each run
records which process runs it: `crm run` tags its runs with :func:`process_tags` (host, PID, start time); any
other run (launched by the daemon or the UI) has its worker's PID in an engine event ("Started process for run
(pid: N)"), trusted only where the run storage is this machine's own. A run whose process is gone is reported
failed by :func:`fail_dead_runs`, which `crm run`, `crm status`, the schedule and the sensor call first.
:func:`recent_runs` then says how a job's latest runs ended, and which step failed a failed one.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from pipelines.resources import AS_OF_TAG

# The job that runs the whole night (pipelines/definitions.py defines it).
NIGHTLY_JOB = "nightly"
HOST_TAG = "crm/host"
PID_TAG = "crm/pid"
# The process's start time in clock ticks after boot (field 22 of /proc/PID/stat) and the boot it belongs to:
# a PID reused by another process, or a PID from before a reboot, is then not taken for the run's process.
PROCESS_START_TAG = "crm/process_start"
BOOT_TAG = "crm/boot_id"

UNFINISHED = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
# What Dagster's run worker and executors say in the run's engine events: the PID of the process running it.
_RUN_PID = re.compile(
    r"^(?:Started process for run|Executing steps in process"
    r"|Executing steps using multiprocess executor: parent process) \(pid: (\d+)\)"
)


@dataclass(frozen=True)
class ProcessIdentity:
    """What tells one process apart from any other on this machine, now or later."""

    pid: int
    start_ticks: int | None
    boot_id: str | None


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (which may hold spaces): state is [0], start time is [19]."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def identify(pid: int) -> ProcessIdentity:
    fields = _stat_fields(pid)
    return ProcessIdentity(pid, int(fields[19]) if fields else None, _boot_id())


def process_tags() -> dict[str, str]:
    """Tags for a run executed in this process (``crm run``): host, PID and the process's start time."""
    me = identify(os.getpid())
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(me.pid)}
    if me.start_ticks is not None:
        tags[PROCESS_START_TAG] = str(me.start_ticks)
    if me.boot_id:
        tags[BOOT_TAG] = me.boot_id
    return tags


def process_alive(identity: ProcessIdentity) -> bool:
    """Whether that very process still runs (a zombie, killed but not yet reaped, counts as gone)."""
    if Path("/proc/self/stat").exists():
        if identity.boot_id and identity.boot_id != _boot_id():
            return False
        fields = _stat_fields(identity.pid)
        if fields is None or fields[0] in ("Z", "X"):
            return False
        return identity.start_ticks is None or int(fields[19]) == identity.start_ticks
    try:  # no /proc (macOS): the PID alone
        os.kill(identity.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _started_after(pid: int, timestamp: float) -> bool:
    """Whether the process now holding ``pid`` started after ``timestamp`` (so it cannot be the one of then)."""
    fields = _stat_fields(pid)
    try:
        boot = next(
            float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime")
        )
    except (OSError, StopIteration):
        return False
    if fields is None:
        return False
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return started > timestamp + 1  # btime is whole seconds


def _storage_is_local(instance: DagsterInstance) -> bool:
    """Whether every run in this instance ran on this machine: SQLite files or memory, not a shared database."""
    from dagster._core.storage.runs import InMemoryRunStorage, SqliteRunStorage

    return isinstance(instance.run_storage, SqliteRunStorage | InMemoryRunStorage)


def run_process(instance: DagsterInstance, run: dg.DagsterRun) -> ProcessIdentity | None:
    """The process that runs ``run`` on this machine, or None when unknown (another host, not started yet)."""
    tags = run.tags
    if PID_TAG in tags:
        if tags.get(HOST_TAG) != socket.gethostname():
            return None
        start = tags.get(PROCESS_START_TAG)
        return ProcessIdentity(int(tags[PID_TAG]), int(start) if start else None, tags.get(BOOT_TAG))
    # A run not tagged by `crm run` (launched by the daemon or the UI, or from before the tags): its worker says
    # its PID in an engine event, without the host, so only where the storage is this machine's own. Without a
    # start time in the event, a PID taken by a process younger than the event is someone else's.
    if not _storage_is_local(instance):
        return None
    records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=50).records
    for record in records:
        found = _RUN_PID.search(record.event_log_entry.message or "")
        if found:
            pid = int(found.group(1))
            if _started_after(pid, record.event_log_entry.timestamp):
                return ProcessIdentity(pid, -1, None)  # a start no process has: reported gone
            return ProcessIdentity(pid, None, None)
    return None


def dead_run_message(run: dg.DagsterRun, identity: ProcessIdentity) -> str:
    return (
        f"The process that ran this run (PID {identity.pid}) is gone: it was killed or its machine stopped "
        f"while the run was {run.status.value}. Nothing it left half-done was published; the next run starts "
        "from the last published state."
    )


def fail_dead_runs(instance: DagsterInstance, job_name: str | None = None) -> list[str]:
    """Report failed every unfinished run (of ``job_name``, or of any job) whose process is gone; return their ids.

    Runs on other machines and runs whose process is not known yet are left alone: Dagster's run monitoring
    (dagster.yaml) times out those that never start.
    """
    failed = []
    for record in instance.get_run_records(filters=RunsFilter(job_name=job_name, statuses=UNFINISHED)):
        run = record.dagster_run
        identity = run_process(instance, run)
        if identity is None or process_alive(identity):
            continue
        # Read again: the run may have finished between the query and now.
        latest = instance.get_run_by_id(run.run_id)
        if latest is None or latest.status not in UNFINISHED:
            continue
        instance.report_run_failed(latest, dead_run_message(latest, identity))
        failed.append(run.run_id)
    return failed


def free_queue(context: dg.SensorEvaluationContext | dg.ScheduleEvaluationContext, job_name: str) -> list[str]:
    """In a sensor or schedule tick: fail the job's dead runs (a killed run left STARTED would hold the queue,
    one run at a time, forever) and log each. A context built without an instance (a unit test) has no runs."""
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:
        return []
    failed = fail_dead_runs(instance, job_name)
    for run_id in failed:
        context.log.warning(f"run {run_id} was marked failed: its process is gone")
    return failed


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds") if timestamp else None


def _failed_step(instance: DagsterInstance, run_id: str) -> str | None:
    """The key of the first step that failed in the run (None when none did: a run whose process died)."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_FAILURE, limit=1).records
    return records[0].event_log_entry.step_key if records else None


def recent_runs(instance: DagsterInstance, job_name: str, limit: int = 10) -> list[dict]:
    """The job's latest runs, newest first: ``run_id``, ``as_of`` (its tag), ``started`` and ``finished`` (ISO, UTC),
    ``outcome`` (Dagster's status in lower case: success, failure, started, ...) and ``failed_step``, the key of
    the step that failed a failed run. Call :func:`fail_dead_runs` first so that a killed run reads failed."""
    runs = []
    for record in instance.get_run_records(filters=RunsFilter(job_name=job_name), limit=limit):
        run = record.dagster_run
        failed = run.status == DagsterRunStatus.FAILURE
        runs.append(
            {
                "run_id": run.run_id,
                "as_of": run.tags.get(AS_OF_TAG),
                "started": _iso(record.start_time),
                "finished": _iso(record.end_time),
                "outcome": run.status.value.lower(),
                "failed_step": _failed_step(instance, run.run_id) if failed else None,
            }
        )
    return runs
