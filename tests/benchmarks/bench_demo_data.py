"""Benchmark the synthetic retailer generator: wall time and peak memory as one JSON line.

Usage: ``python tests/benchmarks/bench_demo_data.py [CUSTOMERS]`` (default 1000000). The generation runs in a
child process writing to a temporary folder; the peak RSS is the larger of this process and its children
(``resource.getrusage``).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import datetime as dt, sys
from pathlib import Path
from pipelines.demo_data import generate
summary = generate(int(sys.argv[1]), 42, dt.date(2025, 1, 1), Path(sys.argv[2]) / "landing")
print(sum(v for k, v in summary.rows.items() if k == "erp/order_lines.csv"))
"""


def main() -> None:
    customers = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(customers), folder], cwd=root, check=True, capture_output=True, text=True
        )
        seconds = time.perf_counter() - started
        size = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
    peak_kib = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    print(
        json.dumps(
            {
                "benchmark": "demo_data.generate",
                "customers": customers,
                "order_lines": int(done.stdout.strip()),
                "wall_seconds": round(seconds, 2),
                "peak_rss_mib": round(peak_kib / 1024, 1),
                "output_mib": round(size / 2**20, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
