"""What `crm run` prints while the job runs, and the summary it ends with, read from Dagster's own events."""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
import time
from typing import TextIO

import dagster as dg

from pipelines.diagnosis import headline

_SKIPPED = re.compile(r"^Dependencies for step (\S+) failed")


@dataclasses.dataclass
class RunTally:
    """Counts gathered from the run's events for the closing summary."""

    ingest: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    materialized: list[str] = dataclasses.field(default_factory=list)
    checks_passed: int = 0
    checks_failed: list[str] = dataclasses.field(default_factory=list)
    failed_steps: list[str] = dataclasses.field(default_factory=list)


class ProgressHandler(logging.Handler):
    """Prints one line per step start, materialisation, failed check and failure; keeps a tally."""

    def __init__(self, tally: RunTally, stream: TextIO = sys.stdout) -> None:
        super().__init__(level=logging.DEBUG)
        self.tally, self.stream, self.started = tally, stream, time.monotonic()

    def _say(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        tenths = round(elapsed * 10)  # rounded once, so 59.96 s reads 01:00.0, not 00:60.0
        print(f"[{tenths // 600:02d}:{tenths % 600 / 10:04.1f}] {text}", file=self.stream, flush=True)

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dagster_event", None)
        if event is None:
            if record.levelno >= logging.WARNING:
                meta = getattr(record, "dagster_meta", {}) or {}
                message = meta.get("orig_message", record.getMessage())
                skipped = _SKIPPED.match(message)
                # Dagster lists every failed upstream output: the step's name is what the reader needs.
                self._say(
                    f"  skipped {skipped.group(1)}: a step it needs failed" if skipped else f"  warning: {message}"
                )
            return
        kind = event.event_type_value
        if kind == "STEP_START":
            self._say(f"{event.step_key} ...")
        elif kind == "ASSET_MATERIALIZATION":
            self._materialized(event.event_specific_data.materialization)
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            if evaluation.passed:
                self.tally.checks_passed += 1
            else:
                self.tally.checks_failed.append(name)
                self._say(f"  check failed: {name}")
        elif kind == "STEP_FAILURE":
            self.tally.failed_steps.append(event.step_key)
            self._say(f"  FAILED {event.step_key}: {headline(event.event_specific_data.error)}")

    def _materialized(self, materialization: dg.AssetMaterialization) -> None:
        key = materialization.asset_key.to_user_string()
        self.tally.materialized.append(key)
        metadata = materialization.metadata
        rows = metadata.get("dagster/row_count") or metadata.get("rows_loaded")
        if key.startswith("raw/") and "rows_loaded" in metadata:
            self.tally.ingest[key] = {
                name: metadata[name].value
                for name in (
                    "rows_loaded", "rows_quarantined", "rows_filtered", "files_loaded", "files_unchanged",
                    "files_refused", "rows_written_by_table",
                )
                if name in metadata
            }  # fmt: skip
        detail = f" ({rows.value:,} rows)" if rows is not None else ""
        self._say(f"  done {key}{detail}")


def progress_logger(tally: RunTally, stream: TextIO = sys.stdout) -> dg.LoggerDefinition:
    """A Dagster logger that reports progress to ``stream`` and counts into ``tally``."""

    @dg.logger(description="Step-by-step progress for `crm run`.")
    def _progress(_init_context) -> logging.Logger:
        log = logging.Logger("crm.progress", level=logging.DEBUG)
        log.addHandler(ProgressHandler(tally, stream))
        return log

    return _progress
