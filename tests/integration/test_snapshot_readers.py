"""A dashboard polling the published snapshot while runs build and publish sees no error and no half-built state.

The reader, another process, does what a dashboard does every 50 ms: read published/current.json, open the snapshot
it names read-only, count marts.dim_customers. "Never half-built" means: each read of a snapshot counts exactly
the rows that current.json says were published in it (its ``rows``, when the pointer carries them) and exactly the
rows that snapshot holds once every run is over (it was complete when first pointed at and never changed after),
and the snapshots the reader saw came in publishing order, never back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines.publish.snapshot import snapshot_name
from tests.conftest import run_nightly, world_environ

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AS_OF = date(2026, 6, 30)
READER = """\
import json, sys, time
from pathlib import Path
import duckdb

published, stop, out = Path(sys.argv[1]), Path(sys.argv[2]), open(sys.argv[3], "a", buffering=1)
while not stop.exists():
    seen = {"at": time.time()}
    try:
        pointer = published / "current.json"
        if pointer.exists():
            content = json.loads(pointer.read_text())
            with duckdb.connect(str(published / content["snapshot"]), read_only=True) as connection:
                count = connection.execute("select count(*) from marts.dim_customers").fetchone()[0]
            pointed = content.get("rows", {}).get("marts.dim_customers")
            seen.update(snapshot=content["snapshot"], dim_customers=count, pointed=pointed)
    except Exception as error:
        seen["error"] = f"{type(error).__name__}: {error}"
    out.write(json.dumps(seen) + "\\n")
    time.sleep(0.05)
"""


def dim_customers(snapshot: Path) -> int:
    with duckdb.connect(str(snapshot), read_only=True) as connection:
        return connection.execute("select count(*) from marts.dim_customers").fetchone()[0]


def test_readers_polling_the_snapshot_during_runs_never_see_an_error_or_a_half_built_snapshot(tmp_path: Path):
    from pipelines.demo_data import generate

    generate(customers=200, seed=3, as_of=AS_OF, out=tmp_path / "landing", truth=tmp_path / "truth")
    environ = world_environ(tmp_path)
    published_dir = Path(environ["CRM_PUBLISHED_DIR"])
    published_dir.mkdir(parents=True)
    (tmp_path / "reader.py").write_text(READER, encoding="utf-8")
    stop, log = tmp_path / "stop", tmp_path / "reads.jsonl"
    reader = subprocess.Popen(
        [sys.executable, str(tmp_path / "reader.py"), str(published_dir), str(stop), str(log)],
        env={**os.environ, **environ},
    )
    try:
        # The whole job on an empty warehouse, then the whole job again: two snapshots swapped in under the reader.
        first = run_nightly(environ, AS_OF)
        assert first.success
        second = run_nightly(environ, AS_OF)
        assert second.success
        time.sleep(0.5)
    finally:
        stop.touch()
        reader.wait(timeout=60)

    names = [snapshot_name(AS_OF, result.run_id) for result in (first, second)]
    final = {name: dim_customers(published_dir / name) for name in names}
    reads = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(reads) > 100, "the reader polled all along"
    errors = [read for read in reads if "error" in read]
    assert not errors, f"{len(errors)} reads failed, the first: {errors[0]}"
    seen = [read for read in reads if "snapshot" in read]
    assert {read["snapshot"] for read in seen} == set(names), "the reader saw both snapshots and no other"
    half_built = [read for read in seen if read["dim_customers"] != final[read["snapshot"]]]
    assert not half_built, f"reads that differ from the finished snapshot: {half_built[:3]}"
    unlike_pointer = [read for read in seen if read["pointed"] is not None and read["dim_customers"] != read["pointed"]]
    assert not unlike_pointer, f"reads that differ from current.json's published rows: {unlike_pointer[:3]}"
    order = [read["snapshot"] for read in seen]
    last_of_first = len(order) - 1 - order[::-1].index(names[0])
    assert order.index(names[1]) > last_of_first, "the reader was pointed back at the older snapshot"
