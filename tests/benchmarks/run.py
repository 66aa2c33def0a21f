"""`make bench`: wall time and peak memory of the demo generator and of the whole nightly job at scale, the
ingest's wall time beside DuckDB alone reading the same files (bench_ingest.py), and the render time of every
dashboard page on the snapshot the run published, cold and warm (bench_pages.py).

Each step runs as its own process so its peak memory (max RSS of the process and its children) is its own.
Prints one JSON line per step and writes them to data/bench/results.jsonl.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CRM = str(Path(sys.executable).parent / "crm")


def measure(name: str, command: list[str], environ: dict[str, str]) -> dict:
    script = (
        "import resource, subprocess, sys, time, json\n"
        "start = time.perf_counter()\n"
        "code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "seconds = time.perf_counter() - start\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(json.dumps({'exit_code': code, 'seconds': round(seconds, 1), 'peak_rss_mib': round(peak / 1024)}))\n"
    )
    output = subprocess.run([sys.executable, "-c", script, *command], env=environ, capture_output=True, text=True)
    result = {"step": name, **json.loads(output.stdout.strip().splitlines()[-1])}
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--as-of", default="2026-06-30")
    parser.add_argument(
        "--sales-shape", choices=["tables", "invoice-lines"], default="tables",
        help="The ERP's sales as its tables, or as one invoice-line export (the minimal path).",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="Keep the generated data and warehouse.")
    arguments = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    environ = {
        **os.environ,
        "CRM_LANDING_DIR": str(workdir / "landing"),
        "CRM_WAREHOUSE_PATH": str(workdir / "warehouse" / "crm.duckdb"),
        "CRM_PUBLISHED_DIR": str(workdir / "published"),
        "CRM_DAGSTER_HOME": str(workdir / "dagster"),
    }
    demo_data_command = [CRM, "demo-data", "--customers", str(arguments.customers), "--as-of", arguments.as_of]
    demo_data_command += ["--sales-shape", arguments.sales_shape]
    results = [
        measure(
            f"demo-data {arguments.customers} {arguments.sales_shape}",
            demo_data_command,
            environ,
        ),
        measure(
            f"crm run {arguments.customers} {arguments.sales_shape}", [CRM, "run", "--as-of", arguments.as_of], environ
        ),
    ]
    # Ingest alone against DuckDB alone reading the same files (issue: within 2x).
    comparison = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "benchmarks" / "bench_ingest.py"), str(workdir / "landing")],
        capture_output=True, text=True, env=environ,
    )  # fmt: skip
    if comparison.returncode == 0:
        results.append({"step": "ingest vs duckdb alone", "exit_code": 0, **json.loads(comparison.stdout)})
        print(json.dumps(results[-1]), flush=True)
    else:
        results.append({"step": "ingest vs duckdb alone", "exit_code": comparison.returncode})
        print(comparison.stderr, file=sys.stderr)
    pages = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "benchmarks" / "bench_pages.py")], capture_output=True, text=True,
        env=environ,
    )  # fmt: skip
    results.append({"step": "dashboard pages", "exit_code": pages.returncode, **(
        json.loads(pages.stdout.strip().splitlines()[-1]) if pages.returncode == 0 else {})})  # fmt: skip
    print(json.dumps(results[-1]), flush=True)
    if pages.returncode:
        print(pages.stderr, file=sys.stderr)
    out = ROOT / "data" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    with (out / "results.jsonl").open("a", encoding="utf-8") as handle:
        for result in results:
            handle.write(json.dumps({**result, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
    if not arguments.keep:
        subprocess.call(["rm", "-rf", str(workdir)])
    if any(result["exit_code"] for result in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
