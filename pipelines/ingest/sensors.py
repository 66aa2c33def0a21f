"""The landing-zone sensor: a run when new or changed files have landed and stopped growing.

It looks only at the file system (names, sizes, modification times), never at the warehouse, which a running
job may hold open. A file is ready when it looks the same on two ticks in a row, so a file still being copied
is not picked up half-written; names of copies in progress (``.partial``, ``.tmp``...) are not even listed
(pipelines/ingest/landing.py). Loading is idempotent, so a run that finds nothing new changes nothing.
"""

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from pipelines.ingest.contracts import Contract
from pipelines.resources import AS_OF_TAG
from pipelines.runs import free_queue


def landing_state(contracts: Sequence[Contract], landing_dir: Path) -> dict[str, list[int]]:
    """Every contract file in the landing zone with its size and modification time, as the entry itself says:
    a link is not followed (its load is refused) and a file gone since the listing is left out."""
    state: dict[str, list[int]] = {}
    for contract in contracts:
        for file in contract.matching_files(landing_dir):
            try:
                seen = os.lstat(file)
            except FileNotFoundError:
                continue
            state[file.relative_to(landing_dir).as_posix()] = [seen.st_size, seen.st_mtime_ns]
    return state


def ready_changes(previous: dict, current: dict[str, list[int]]) -> tuple[dict[str, list[int]], str | None]:
    """Given the cursor of the last tick and what is there now: the new cursor and, when files are ready and
    differ from what was last requested, a signature for the run request (its run key)."""
    seen, requested = previous.get("seen", {}), previous.get("requested")
    stable = {name: value for name, value in current.items() if seen.get(name) == value}
    signature = hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:16] if stable else None
    unsettled = len(stable) != len(current)
    if signature is None or signature == requested or unsettled:
        return {"seen": current, "requested": requested}, None
    return {"seen": current, "requested": signature}, signature


def build_landing_sensor(
    job, contracts: Sequence[Contract], landing_dir: Path, interval_seconds: int, today
) -> dg.SensorDefinition:
    @dg.sensor(
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Runs the nightly job when new or changed export files have landed (and finished copying).",
    )
    def landing_zone_sensor(context: dg.SensorEvaluationContext):
        free_queue(context, job.name)
        previous = json.loads(context.cursor) if context.cursor else {}
        cursor, signature = ready_changes(previous, landing_state(contracts, landing_dir))
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        if signature is None:
            return dg.SkipReason("no new or changed files ready in the landing zone")
        return dg.RunRequest(run_key=f"landing-{signature}", tags={AS_OF_TAG: today().isoformat()})

    return landing_zone_sensor
