"""Source freshness: has each source delivered a file as often as its contract says it should?

A contract declares its cadence (``cadence: daily|weekly|monthly`` or ``expected_every_days: N``). A source is
late when no file of it in the landing zone is newer than its cadence plus one day of grace: a nightly export
that missed one night is not late yet, one that missed two is. Freshness is judged on the files' modification
times against the clock (it is about the exports arriving, not about the business dates inside them). A source
with no file at all is not late: every source but sales is optional, and an absent one is an empty table. A
contract without a cadence is never late.

The ingest assets report it in a non-blocking ``fresh`` check, and ``crm status`` prints it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from pathlib import Path

from pipelines.ingest.contracts import Contract

GRACE = dt.timedelta(days=1)

__all__ = ["GRACE", "SourceFreshness", "source_freshness"]


@dataclasses.dataclass(frozen=True)
class SourceFreshness:
    """One source's newest file against its cadence."""

    source_table: str  # the contract's name, erp__orders
    cadence: str  # daily, weekly, monthly, "every N days", or "" when the contract declares none
    expected_every_days: int | None
    newest_file: str | None  # relative to the landing zone
    newest_modified_at: dt.datetime | None  # UTC
    files: int
    late: bool
    message: str


def _utc(moment: dt.datetime) -> dt.datetime:
    """An aware moment in UTC; a naive one is taken to be UTC already."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _age_words(age: dt.timedelta) -> str:
    hours = max(age.total_seconds(), 0) / 3600
    if hours < 1:
        return "less than an hour ago"
    if hours < 48:
        return f"{hours:.0f} hour{'' if round(hours) == 1 else 's'} ago"
    return f"{hours / 24:.0f} days ago"


def _one(contract: Contract, landing_dir: Path, now: dt.datetime) -> SourceFreshness:
    stamped = [(path.stat().st_mtime, path) for path in contract.matching_files(landing_dir)]
    label = contract.name.replace("__", "/")
    cadence, every = contract.cadence, contract.expected_every_days
    if not stamped:
        message = f"{label}: no file yet under {contract.files}" + (
            f" (expected {cadence}); the source loads as an empty table until one arrives." if every else "."
        )
        return SourceFreshness(contract.name, cadence, every, None, None, 0, False, message)
    mtime, newest = max(stamped, key=lambda item: (item[0], str(item[1])))
    modified = dt.datetime.fromtimestamp(mtime, tz=dt.UTC)
    relative = newest.relative_to(landing_dir).as_posix()
    seen = f"newest file {relative} arrived {_age_words(now - modified)} ({modified:%Y-%m-%d %H:%M} UTC)"
    if every is None:
        message = f"{label}: {seen}; the contract declares no cadence (add cadence: daily|weekly|monthly)."
        return SourceFreshness(contract.name, cadence, None, relative, modified, len(stamped), False, message)
    due = modified + dt.timedelta(days=every) + GRACE
    late = now > due
    if late:
        message = (
            f"{label} is late: {seen}, but a file is expected {cadence} (due by {due:%Y-%m-%d %H:%M} UTC with a "
            "day's grace). Check that the export still runs and lands under "
            f"{contract.files}; the warehouse keeps showing the data it has."
        )
    else:
        message = f"{label} is on time: {seen}; expected {cadence}."
    return SourceFreshness(contract.name, cadence, every, relative, modified, len(stamped), late, message)


def source_freshness(contracts: Iterable[Contract], landing_dir: Path, now: dt.datetime) -> list[SourceFreshness]:
    """Each contract's newest file in the landing zone, its cadence, and whether the source is late at ``now``
    (a naive ``now`` is read as UTC)."""
    moment = _utc(now)
    return [_one(contract, Path(landing_dir), moment) for contract in contracts]
