"""`crm bench`: every step in a child process, sampled, at each size in a fresh world; then the report.

At each size (ascending), in ``<workdir>/<customers>`` with the landing zone, warehouse, published snapshots and
Dagster home of its own (the CRM_* environment variables): the generator, the floor, the night split into stages,
and on the night's warehouse the two CLV routes and the night's dbt models again, one at a time
(pipelines.bench.alone); at the largest size also the dashboard pages on its snapshot and the incremental night.
The report goes to data/bench/report.json (and a copy named by its time), its tables into docs/benchmarks.md
between the markers, and a summary to the console. Each child's output is in data/bench/logs.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib import metadata
from pathlib import Path

from pipelines.bench.report import finish, render_markdown, replace_generated, summary_lines
from pipelines.bench.sampler import Measured, run_sampled
from pipelines.bench.stages import figures, phase_windows, read_dbt_windows, read_step_events, step_windows
from pipelines.bench.worlds import split_off_day, world_environ
from pipelines.settings import PROJECT_ROOT

BENCH_DIR = PROJECT_ROOT / "data" / "bench"
DOC = PROJECT_ROOT / "docs" / "benchmarks.md"
PYTHON = sys.executable
CRM = str(Path(sys.executable).parent / "crm")
VERSIONS = ("duckdb", "dbt-core", "dbt-duckdb", "dagster", "dagster-dbt", "polars", "pandas", "lifetimes")


@dataclass(frozen=True)
class BenchOptions:
    customers: tuple[int, ...]
    as_of: date
    sales_shape: str = "tables"
    keep: bool = False
    workdir: Path | None = None
    skip_pages: bool = False
    skip_incremental: bool = False
    refit_days: int = 1
    skip_models_alone: bool = False


def measured_figures(measured: Measured) -> dict:
    return {
        "exit_code": measured.exit_code,
        "started": measured.started,
        "ended": measured.ended,
        "wall_seconds": measured.wall_seconds,
        "cpu_seconds": measured.cpu_seconds,
        "peak_rss_bytes": measured.peak_rss_bytes,
        "max_process_rss_bytes": measured.max_process_rss_bytes,
        # (seconds since the epoch, resident bytes, CPU seconds) every SAMPLE_INTERVAL_SECONDS, to plot
        "samples": [
            [round(sample.at, 3), sample.rss_bytes, round(sample.cpu_seconds, 3)] for sample in measured.samples
        ],
    }


def machine() -> dict:
    """CPUs, memory, CPU model, load average now, versions and the commit measured."""
    cpu_model = platform.processor() or platform.machine()
    memory = 0
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    for line in Path("/proc/meminfo").read_text().splitlines() if Path("/proc/meminfo").exists() else []:
        if line.startswith("MemTotal:"):
            memory = int(line.split()[1]) * 1024
    git = ["git", "-C", str(PROJECT_ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "memory_bytes": memory,
        "cpu_model": cpu_model,
        "load_average_1m": load[0],
        "load_average": list(load),
        "versions": {"python": platform.python_version(), **{name: metadata.version(name) for name in VERSIONS}},
        "git_commit": commit or "unknown",
        "git_dirty": bool(dirty),
    }


@dataclass
class Bench:
    """One `crm bench`: where its worlds and logs go, what failed, and how it says what it does."""

    options: BenchOptions
    workdir: Path
    logs: Path
    echo: Callable[[str], None]
    failures: list[str] = field(default_factory=list)

    @staticmethod
    def environ(root: Path, **settings: str) -> dict[str, str]:
        """This process's environment with every setting a night reads and writes pointed at the world ``root``,
        and ``settings`` (``CRM_<KEY>`` variables)."""
        return {**os.environ, **world_environ(root), **settings}

    def log_stem(self, label: str, name: str) -> Path:
        return self.logs / f"{label.replace(',', '')}-{name}".replace(" ", "-")

    def measure(self, label: str, name: str, command: list[str], environ: dict[str, str]) -> Measured:
        self.echo(f"  {label}: {name} ...")
        stem = self.log_stem(label, name)
        measured = run_sampled(command, environ, stem.with_suffix(".out"), stem.with_suffix(".err"), cwd=PROJECT_ROOT)
        self.echo(
            f"  {label}: {name} {measured.wall_seconds:,.1f} s, CPU {measured.cpu_seconds:,.1f} s, "
            f"peak {measured.peak_rss_bytes / 2**30:,.2f} GiB"
            + (f", FAILED (exit code {measured.exit_code}; {stem}.err)" if measured.exit_code else "")
        )
        if measured.exit_code:
            self.failures.append(f"{name} at {label}: exit code {measured.exit_code} (see {stem}.err)")
        return measured

    def json_output(self, label: str, name: str, measured: Measured) -> dict | None:
        """The last line a child printed, as JSON (None when it failed)."""
        if measured.exit_code:
            return None
        lines = self.log_stem(label, name).with_suffix(".out").read_text(encoding="utf-8").strip().splitlines()
        return json.loads(lines[-1])

    def night(self, label: str, name: str, as_of: date, root: Path, **settings: str) -> dict:
        """A `crm run` as of ``as_of`` in the world at ``root`` (with ``settings``), and its stages."""
        command = [CRM, "run", "--as-of", as_of.isoformat()]
        measured = self.measure(label, name, command, self.environ(root, **settings))
        try:
            stages = night_stages(measured, root / "dagster")
        except Exception as error:  # the night is measured: a failure to split it must not lose the rest
            self.failures.append(f"the stages of the {name} at {label}: {type(error).__name__}: {error}")
            stages = {"run_id": None, "stages": []}
        return {**measured_figures(measured), **stages}

    def size(self, customers: int) -> dict:
        options, label = self.options, f"{customers:,}"
        root = self.workdir / str(customers)
        environ = self.environ(root)
        self.echo(f"{label} customers in {root}")
        result: dict = {"customers": customers}
        command = [CRM, "demo-data", "--customers", str(customers), "--as-of", options.as_of.isoformat()]
        generator = self.measure(label, "generator", [*command, "--sales-shape", options.sales_shape], environ)
        result["generator"] = measured_figures(generator)
        if generator.exit_code:
            return result
        floor_command = [PYTHON, "-m", "pipelines.bench.floor", str(root / "landing"), str(root / "floor.duckdb")]
        floor = self.measure(label, "floor", floor_command, environ)
        result["floor"] = {**measured_figures(floor), **(self.json_output(label, "floor", floor) or {})}
        result["night"] = self.night(label, "night", options.as_of, root)
        if result["night"]["exit_code"] == 0:
            result["clv"] = {route: self.route(label, route, environ) for route in ("ours", "lifetimes")}
            result["models_alone"] = self.models_alone(label, environ)
        return result

    def models_alone(self, label: str, environ: dict[str, str]) -> dict:
        """Each dbt model of the night again, one at a time, on the night's warehouse (pipelines.bench.alone)."""
        if self.options.skip_models_alone:
            return {"skipped": "--skip-models-alone"}
        command = [PYTHON, "-m", "pipelines.bench.alone", self.options.as_of.isoformat()]
        measured = self.measure(label, "dbt models alone", command, environ)
        output = self.json_output(label, "dbt models alone", measured) or {}
        return {**output, "process": measured_figures(measured)}

    def route(self, label: str, route: str, environ: dict[str, str]) -> dict | None:
        command = [PYTHON, "-m", "pipelines.bench.routes", route, self.options.as_of.isoformat()]
        measured = self.measure(label, f"clv {route}", command, environ)
        output = self.json_output(label, f"clv {route}", measured)
        return {**output, "process": measured_figures(measured)} if output else None

    def pages(self, customers: int) -> dict:
        if self.options.skip_pages:
            return {"skipped": "--skip-pages"}
        root = self.workdir / str(customers)
        self.echo(f"  {customers:,}: dashboard pages ...")
        done = subprocess.run(
            [PYTHON, "-m", "pipelines.bench.pages"], env=self.environ(root), capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
        )  # fmt: skip
        if done.returncode:
            self.failures.append(f"dashboard pages at {customers:,}: exit code {done.returncode}: {done.stderr[-500:]}")
            return {"customers": customers, "pages": []}
        pages = json.loads(done.stdout.strip().splitlines()[-1])["pages"]
        broken = [page["page"] for page in pages if "error" in page]
        if broken:
            self.failures.append(f"dashboard pages at {customers:,}: {', '.join(broken)} did not render")
        return {"customers": customers, "pages": pages}

    def incremental(self, customers: int) -> dict:
        """The night before on the history, then the measured night adding one day of orders (bench_incremental)."""
        options = self.options
        if options.skip_incremental:
            return {"skipped": "--skip-incremental"}
        if options.sales_shape != "tables":
            return {"skipped": "the incremental night splits the ERP's orders files: run with --sales-shape tables"}
        label, day = f"{customers:,} incremental", options.as_of - timedelta(days=1)
        root = self.workdir / f"{customers}-incremental"
        self.echo(f"{label}: the orders of {day} held back, then added")
        shutil.copytree(self.workdir / str(customers) / "landing", root / "landing")
        new_orders = split_off_day(root / "landing", day.isoformat())
        held_back = root / "day"
        held_back.mkdir()
        day_files = [f"{name}_{day}.csv" for name in ("orders", "order_lines")]
        for file in day_files:
            shutil.move(root / "landing" / "erp" / file, held_back / file)
        # both nights under the same refit cadence: with more than one day, the history night's fits score the next
        refit = {"CRM_MODEL_REFIT_DAYS": str(options.refit_days)}
        history = self.night(label, "history night", day, root, **refit)
        for file in day_files:
            shutil.move(held_back / file, root / "landing" / "erp" / file)
        night = self.night(label, "incremental night", options.as_of, root, **refit)
        if not options.keep:
            shutil.rmtree(root, ignore_errors=True)
        return {
            "customers": customers,
            "day": day.isoformat(),
            "new_orders": new_orders,
            "model_refit_days": options.refit_days,
            "history_night": history,
            "night": night,
        }

    def run(self) -> dict:
        sizes = sorted(set(self.options.customers))
        report: dict = {"sizes": [], "incremental": None, "pages": None}
        for customers in sizes:
            size = self.size(customers)
            report["sizes"].append(size)
            if customers == sizes[-1] and size.get("night", {}).get("exit_code") == 0:
                report["pages"] = self.pages(customers)
                report["incremental"] = self.incremental(customers)
            if not self.options.keep:
                shutil.rmtree(self.workdir / str(customers), ignore_errors=True)
        return report


def night_stages(measured: Measured, dagster_home: Path) -> dict:
    """The run's id and its stages (phases, Dagster steps, dbt models), each with its figures from the samples."""
    from pipelines.runs import NIGHTLY_JOB
    from pipelines.transform.project import DBT_PROJECT_DIR

    if not (dagster_home / "dagster.yaml").exists():
        return {"run_id": None, "stages": []}
    run_id, events = read_step_events(dagster_home, NIGHTLY_JOB)
    if run_id is None:
        return {"run_id": None, "stages": []}
    steps = step_windows(events)
    windows = [*phase_windows(measured.started, measured.ended, steps), *steps]
    windows += read_dbt_windows(DBT_PROJECT_DIR / "target", run_id)
    stages = []
    for window in sorted(windows, key=lambda window: window.start):
        stage = figures(measured.samples, window)
        stages.append(
            {
                "name": window.name,
                "kind": window.kind,
                "start": window.start,
                "end": window.end,
                "wall_seconds": stage.wall_seconds,
                "cpu_seconds": stage.cpu_seconds,
                "peak_rss_bytes": stage.peak_rss_bytes,
                "reported_seconds": window.reported_seconds,
                "failed": window.failed,
            }
        )
    return {"run_id": run_id, "stages": stages}


def prepare_workdir(options: BenchOptions) -> tuple[Path, bool]:
    """The folder the worlds go in (made here when not given) and whether it was made here; every size's folder
    must not exist yet, so that each night starts fresh."""
    if options.workdir is None:
        return Path(tempfile.mkdtemp(prefix="crm-bench-")), True
    taken = [
        options.workdir / name
        for customers in options.customers
        for name in (str(customers), f"{customers}-incremental")
        if (options.workdir / name).exists()
    ]
    if taken:
        raise FileExistsError(f"{', '.join(map(str, taken))} exist(s): remove them or give another --workdir")
    options.workdir.mkdir(parents=True, exist_ok=True)
    return options.workdir, False


def write_report(report: dict, doc: Path = DOC, out: Path = BENCH_DIR) -> Path:
    """data/bench/report.json and its copy named by the time; the tables into ``doc`` between the markers."""
    text = json.dumps(report, indent=2)
    (out / "report.json").write_text(text, encoding="utf-8")
    stamp = report["generated_at"].replace(":", "").replace("-", "")
    (out / f"report-{stamp}.json").write_text(text, encoding="utf-8")
    doc.write_text(replace_generated(doc.read_text(encoding="utf-8"), render_markdown(report)), encoding="utf-8")
    return out / "report.json"


def run_bench(options: BenchOptions, echo: Callable[[str], None] = print) -> int:
    """Measure, report, and return the exit code: 1 when a step failed (a missed target is not a failure)."""
    workdir, made_here = prepare_workdir(options)
    logs = BENCH_DIR / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    started = datetime.now().astimezone()
    about = machine()
    echo(
        f"crm bench: {', '.join(f'{customers:,}' for customers in sorted(set(options.customers)))} customers, "
        f"sales as {options.sales_shape}; worlds in {workdir}; logs in {logs}; "
        f"load average {about['load_average_1m']:.2f}"
    )
    bench = Bench(options, workdir, logs, echo)
    measured = bench.run()
    report = finish(
        {
            "generated_at": started.isoformat(timespec="seconds"),
            "options": {
                "customers": sorted(set(options.customers)),
                "as_of": options.as_of.isoformat(),
                "sales_shape": options.sales_shape,
                "skip_pages": options.skip_pages,
                "skip_incremental": options.skip_incremental,
                "refit_days": options.refit_days,
            },
            "machine": about,
            **measured,
            "failures": bench.failures,
        }
    )
    path = write_report(report)
    if made_here and not options.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    echo("")
    for line in summary_lines(report):
        echo(line)
    echo(f"Report: {path}; tables in {DOC}" + (f"; worlds kept in {workdir}" if options.keep else ""))
    return 1 if bench.failures else 0
