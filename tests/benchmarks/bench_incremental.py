"""An incremental night beside a full rebuild, at the demo scale: wall time and peak memory of each.

The demo world's orders and order lines of the day before the as-of date are split off into files of their own.
Night 1 runs as of that day on the history alone; night 2 (the incremental night, measured) adds the day's files
and runs as of the as-of date, loading only them; the full rebuild runs on every file in a fresh warehouse.

    .venv/bin/python tests/benchmarks/bench_incremental.py --customers 20000
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.run import CRM, measure
from tests.conftest import world_environ
from tests.integration.test_incremental_night import split_off_day


def environ_for(root: Path) -> dict[str, str]:
    return {**os.environ, **world_environ(root)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--as-of", default="2026-06-30")
    arguments = parser.parse_args()
    as_of = date.fromisoformat(arguments.as_of)
    day = as_of - timedelta(days=1)
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-incremental-"))
    full, incremental = workdir / "full", workdir / "incremental"
    results = [
        measure(
            f"demo-data {arguments.customers}",
            [CRM, "demo-data", "--customers", str(arguments.customers), "--as-of", as_of.isoformat()],
            environ_for(full),
        )
    ]
    shutil.copytree(full / "landing", incremental / "landing")
    new_orders = split_off_day(incremental / "landing", day.isoformat())
    held_back = workdir / "day"
    held_back.mkdir()
    for name in ("orders", "order_lines"):
        shutil.move(incremental / "landing" / "erp" / f"{name}_{day}.csv", held_back / f"{name}_{day}.csv")
    results.append(measure("history night", [CRM, "run", "--as-of", day.isoformat()], environ_for(incremental)))
    for path in held_back.iterdir():
        shutil.move(path, incremental / "landing" / "erp" / path.name)
    results.append(
        measure(
            f"incremental night (+{new_orders:,} orders of {day})",
            [CRM, "run", "--as-of", as_of.isoformat()],
            environ_for(incremental),
        )
    )
    results.append(measure("full rebuild", [CRM, "run", "--as-of", as_of.isoformat()], environ_for(full)))
    out = Path(__file__).resolve().parents[2] / "data" / "bench" / "incremental.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(result) + "\n" for result in results), encoding="utf-8")
    print(f"results in {out}; data in {workdir}")


if __name__ == "__main__":
    main()
