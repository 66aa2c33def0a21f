"""The night split into stages by time: each Dagster step, each dbt model, and what comes before and after them.

A stage is a time window; its figures come from the samples of the night's process tree (pipelines.bench.sampler)
inside it: wall seconds, CPU seconds (the CPU at its end less the CPU at its start, read off the samples by linear
interpolation) and peak resident memory (the largest sample inside it; a window shorter than the sampling interval
takes the samples on either side). The windows come from the run's Dagster events (STEP_START, then STEP_SUCCESS or
STEP_FAILURE, per step key) and from the ``run_results.json`` dagster-dbt leaves for each dbt invocation of the run
(each model's compile and execute timings). dbt builds two models at a time (dbt threads), so the windows of
models overlap, and each one's CPU and peak include what the other thread did meanwhile.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipelines.bench.sampler import Sample

STEP = "step"
DBT_MODEL = "dbt model"
PHASE = "phase"
START_UP = "start-up (before the first step)"
WRAP_UP = "wrap-up (after the last step)"
INGEST = "ingest (every raw__ step)"
INGEST_STEP_PREFIX = "raw__"


@dataclass(frozen=True)
class Window:
    """A stage of the night: its name, kind (step, dbt model, phase), start and end (seconds since the epoch).

    ``reported_seconds`` is the duration the stage's own tool reported (dbt's ``execution_time``), if any;
    ``failed`` marks a step that ended in STEP_FAILURE.
    """

    name: str
    kind: str
    start: float
    end: float
    reported_seconds: float | None = None
    failed: bool = False


@dataclass(frozen=True)
class StageFigures:
    wall_seconds: float
    cpu_seconds: float
    peak_rss_bytes: int


def step_windows(events: Iterable[tuple[str, str, float]]) -> list[Window]:
    """One window per step from its events, ``(event type, step key, timestamp)``, in order of start.

    A step is open from STEP_START until STEP_SUCCESS or STEP_FAILURE; a step never closed (its process died) has
    no window.
    """
    started: dict[str, float] = {}
    windows = []
    for event_type, step_key, timestamp in sorted(events, key=lambda event: event[2]):
        if event_type == "STEP_START":
            started[step_key] = timestamp
        elif event_type in ("STEP_SUCCESS", "STEP_FAILURE") and step_key in started:
            failed = event_type == "STEP_FAILURE"
            windows.append(Window(step_key, STEP, started.pop(step_key), timestamp, failed=failed))
    return sorted(windows, key=lambda window: window.start)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def dbt_model_stage(step: str, unique_id: str) -> str:
    """The stage name of a dbt model in a step: ``<step>: <model>``."""
    return f"{step}: {unique_id.rsplit('.', 1)[-1]}"


def dbt_model_windows(run_results: dict, step: str) -> list[Window]:
    """One window per model of a dbt invocation's ``run_results.json`` (tests and seeds left out): from the start
    of its first timing (compile) to the end of its last (execute), named ``<step>: <model>``."""
    windows = []
    for result in run_results.get("results", []):
        unique_id = result.get("unique_id", "")
        timings = [timing for timing in result.get("timing") or [] if timing.get("started_at")]
        if not unique_id.startswith("model.") or not timings:
            continue
        start = min(_epoch(timing["started_at"]) for timing in timings)
        end = max(_epoch(timing["completed_at"]) for timing in timings)
        windows.append(
            Window(dbt_model_stage(step, unique_id), DBT_MODEL, start, end, reported_seconds=result["execution_time"])
        )
    return sorted(windows, key=lambda window: window.start)


def phase_windows(started: float, ended: float, steps: Sequence[Window]) -> list[Window]:
    """What the step windows leave out of the night (start-up: imports, the dbt manifest, the definitions;
    wrap-up: the summary), and the ingest as one stage (its steps run one after another)."""
    if not steps:
        return []
    phases = [
        Window(START_UP, PHASE, started, min(step.start for step in steps)),
        Window(WRAP_UP, PHASE, max(step.end for step in steps), ended),
    ]
    ingest = [step for step in steps if step.name.startswith(INGEST_STEP_PREFIX)]
    if ingest:
        phases.insert(1, Window(INGEST, PHASE, min(step.start for step in ingest), max(step.end for step in ingest)))
    return phases


def monotone_cpu(samples: Sequence[Sample]) -> list[float]:
    """The samples' CPU seconds made non-decreasing: a child reaped between reading its parent and reading it is
    missed by one sample, which would otherwise read as CPU time running backwards."""
    cpu, highest = [], 0.0
    for sample in samples:
        highest = max(highest, sample.cpu_seconds)
        cpu.append(highest)
    return cpu


def cpu_at(samples: Sequence[Sample], at: float) -> float:
    """CPU seconds of the tree at ``at``, interpolated linearly between the samples on either side (the first or
    last sample's figure outside them)."""
    if not samples:
        return 0.0
    times = [sample.at for sample in samples]
    cpu = monotone_cpu(samples)
    after = bisect.bisect_left(times, at)
    if after == 0:
        return cpu[0]
    if after == len(samples):
        return cpu[-1]
    before = after - 1
    span = times[after] - times[before]
    share = (at - times[before]) / span if span > 0 else 1.0
    return cpu[before] + share * (cpu[after] - cpu[before])


def peak_rss(samples: Sequence[Sample], start: float, end: float) -> int:
    """The largest resident memory sampled in [start, end]; with no sample inside, the samples on either side."""
    inside = [sample.rss_bytes for sample in samples if start <= sample.at <= end]
    if inside:
        return max(inside)
    times = [sample.at for sample in samples]
    around = samples[max(bisect.bisect_left(times, start) - 1, 0) : bisect.bisect_right(times, end) + 1]
    return max((sample.rss_bytes for sample in around), default=0)


def figures(samples: Sequence[Sample], window: Window) -> StageFigures:
    return StageFigures(
        wall_seconds=window.end - window.start,
        cpu_seconds=max(cpu_at(samples, window.end) - cpu_at(samples, window.start), 0.0),
        peak_rss_bytes=peak_rss(samples, window.start, window.end),
    )


def read_step_events(dagster_home: Path, job_name: str) -> tuple[str | None, list[tuple[str, str, float]]]:
    """The newest run of ``job_name`` in the Dagster instance at ``dagster_home``: its id and its step events."""
    from dagster import DagsterEventType, DagsterInstance, RunsFilter

    kinds = {DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        records = instance.get_run_records(filters=RunsFilter(job_name=job_name), limit=1)
        if not records:
            return None, []
        run_id = records[0].dagster_run.run_id
        events = instance.get_records_for_run(run_id, of_type=kinds).records
        return run_id, [
            (record.event_log_entry.dagster_event.event_type_value, record.event_log_entry.step_key,
             record.event_log_entry.timestamp)
            for record in events
        ]  # fmt: skip


def read_dbt_windows(target_dir: Path, run_id: str) -> list[Window]:
    """The model windows of every dbt invocation of the run: dagster-dbt names each invocation's target folder
    ``<step>-<first 7 characters of the run id>-<random>``."""
    windows = []
    for folder in sorted(target_dir.glob(f"*-{run_id[:7]}-*")):
        results = folder / "run_results.json"
        if results.is_file():
            step = folder.name.rsplit("-", 2)[0]
            windows += dbt_model_windows(json.loads(results.read_text(encoding="utf-8")), step)
    return windows
