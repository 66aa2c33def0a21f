"""Runs killed with SIGKILL: marked failed, no dbt left behind, the published snapshot intact, the next run whole.

The first tests kill a small Dagster job, as `crm run` runs it (in process, tagged with its process) and as the
daemon launches it (a run worker whose PID is in the run's events). The last kills `crm run` itself three times
over a small generated world: during ingest, during dbt and during the models.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from pipelines.runs import fail_dead_runs, process_alive, process_tags
from tests.conftest import world_environ

pytestmark = pytest.mark.integration

VENV_BIN = Path(sys.executable).parent
NAPPER = """\
import sys, time
import dagster as dg

@dg.op
def nap():
    print("napping", flush=True)
    time.sleep(120)

@dg.job
def napper():
    nap()

defs = dg.Definitions(jobs=[napper])

if __name__ == "__main__":
    from pipelines.runs import process_tags
    with dg.DagsterInstance.get() as instance:
        tags = {} if sys.argv[1:] == ["untagged"] else process_tags()
        napper.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
"""
IN_PROCESS_HOME = "telemetry:\n  enabled: false\n"
# The default coordinator launches at once (no daemon needed); the default launcher starts a run worker process.
LAUNCHING_HOME = (
    "telemetry:\n  enabled: false\n"
    "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: DefaultRunCoordinator\n"
)


def dagster_home(tmp_path: Path, config: str) -> dict[str, str]:
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(config, encoding="utf-8")
    (tmp_path / "napper.py").write_text(NAPPER, encoding="utf-8")
    return {**os.environ, "DAGSTER_HOME": str(home)}


def wait_for(condition: Callable[[], object], seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {seconds} s")


def test_this_process_is_alive_and_a_finished_one_is_not():
    tags = process_tags()
    assert tags["crm/pid"] == str(os.getpid())
    from pipelines.runs import identify

    assert process_alive(identify(os.getpid()))
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    gone = identify(child.pid)
    child.wait()
    assert not process_alive(gone)


# A parent that starts a child through dbt_child's guard, says the child's PID, and waits.
PARENT = """\
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.PIPE, text=True)
child.stdout.readline()
print(child.pid, flush=True)
time.sleep(120)
"""
GUARDED_CHILD = (
    "from pipelines.transform.dbt_child import die_with_parent; import time; "
    "assert die_with_parent(); print('ready', flush=True); time.sleep(120)"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_started_through_the_dbt_wrapper_dies_with_its_killed_parent():
    parent = subprocess.Popen([sys.executable, "-c", PARENT, GUARDED_CHILD], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert _state(child) not in (None, "Z")
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        wait_for(lambda: _state(child) in (None, "Z"), 10, "the child's death with its parent")
    finally:
        parent.kill()
        parent.wait()


def test_the_dbt_wrapper_is_what_dagster_runs_and_it_runs_the_real_dbt():
    from pipelines.transform.project import DBT_EXECUTABLE, dbt_resource

    assert Path(DBT_EXECUTABLE).name == "crm-dbt", "reinstall the project: pip install -e ."
    assert dbt_resource().dbt_executable == DBT_EXECUTABLE
    version = subprocess.run([DBT_EXECUTABLE, "--version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and "installed" in version.stdout


def start_napper(environ: dict[str, str], tmp_path: Path, *args: str) -> subprocess.Popen:
    runner = subprocess.Popen(
        [sys.executable, str(tmp_path / "napper.py"), *args],
        env=environ,
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    wait_for(lambda: "napping" in runner.stdout.readline(), 60, "the run's step starting")
    return runner


def test_a_killed_in_process_run_is_marked_failed_and_a_live_one_is_left_alone(tmp_path: Path):
    environ = dagster_home(tmp_path, IN_PROCESS_HOME)
    runner = start_napper(environ, tmp_path)
    try:
        with DagsterInstance.from_config(environ["DAGSTER_HOME"]) as instance:
            (record,) = instance.get_run_records()
            assert record.dagster_run.tags["crm/pid"] == str(runner.pid)
            assert fail_dead_runs(instance, "napper") == [], "a run whose process lives is not failed"
            assert instance.get_run_by_id(record.dagster_run.run_id).status == DagsterRunStatus.STARTED
            runner.send_signal(signal.SIGKILL)
            runner.wait()
            assert instance.get_run_by_id(record.dagster_run.run_id).status == DagsterRunStatus.STARTED
            assert fail_dead_runs(instance, "other_job") == [], "only the named job's runs are looked at"
            assert fail_dead_runs(instance, "napper") == [record.dagster_run.run_id]
            run = instance.get_run_by_id(record.dagster_run.run_id)
            assert run.status == DagsterRunStatus.FAILURE
            failure = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_FAILURE).records
            assert f"PID {runner.pid}" in failure[-1].event_log_entry.message
            assert fail_dead_runs(instance, "napper") == [], "a run is failed once"
    finally:
        runner.kill()
        runner.wait()


def test_a_killed_run_without_our_tags_is_found_by_the_pid_dagster_logged(tmp_path: Path):
    environ = dagster_home(tmp_path, IN_PROCESS_HOME)
    runner = start_napper(environ, tmp_path, "untagged")
    try:
        with DagsterInstance.from_config(environ["DAGSTER_HOME"]) as instance:
            (record,) = instance.get_run_records()
            assert "crm/pid" not in record.dagster_run.tags
            assert fail_dead_runs(instance) == []
            runner.send_signal(signal.SIGKILL)
            runner.wait()
            assert fail_dead_runs(instance) == [record.dagster_run.run_id]
    finally:
        runner.kill()
        runner.wait()


def test_the_sensor_and_the_schedule_free_the_queue_of_a_killed_run_before_they_ask_for_one(tmp_path: Path):
    import dagster as dg

    from pipelines.ingest.sensors import build_landing_sensor
    from pipelines.publish.schedules import build_nightly_schedule

    environ = dagster_home(tmp_path, IN_PROCESS_HOME)
    job = dg.define_asset_job("napper")
    sensor = build_landing_sensor(job, [], tmp_path, 60, date.today)
    schedule = build_nightly_schedule(job, "0 2 * * *", "UTC")
    with DagsterInstance.from_config(environ["DAGSTER_HOME"]) as instance:
        for tick in (
            lambda: sensor(dg.build_sensor_context(instance=instance)),
            lambda: schedule(
                dg.build_schedule_context(instance=instance, scheduled_execution_time=datetime(2026, 7, 1, 2))
            ),
        ):
            runner = start_napper(environ, tmp_path)
            runner.kill()
            runner.wait()
            run = instance.get_run_records(limit=1)[0].dagster_run
            assert run.status == DagsterRunStatus.STARTED
            tick()
            assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE


@pytest.mark.slow
def test_a_run_worker_launched_by_dagster_and_killed_is_marked_failed(tmp_path: Path):
    environ = dagster_home(tmp_path, LAUNCHING_HOME)
    # Output to a file: the run worker inherits it, and a pipe would stay open until the run ends.
    with (tmp_path / "launch.log").open("w") as log:
        subprocess.run(
            [str(VENV_BIN / "dagster"), "job", "launch", "-f", "napper.py", "-j", "napper"],
            env=environ,
            cwd=tmp_path,
            check=True,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    with DagsterInstance.from_config(environ["DAGSTER_HOME"]) as instance:

        def worker_pid() -> int | None:
            records = instance.get_run_records()
            if not records or records[0].dagster_run.status != DagsterRunStatus.STARTED:
                return None
            for event in instance.get_records_for_run(records[0].dagster_run.run_id).records:
                found = re.search(r"Started process for run \(pid: (\d+)\)", event.event_log_entry.message)
                if found:
                    return int(found.group(1))
            return None

        pid = wait_for(worker_pid, 120, "the run worker starting")
        run_id = instance.get_run_records()[0].dagster_run.run_id
        assert fail_dead_runs(instance) == []
        # The multiprocess executor's step process would nap on, orphaned: it goes too.
        for process in [pid, *children(pid)]:
            os.kill(process, signal.SIGKILL)
        wait_for(lambda: not Path(f"/proc/{pid}").exists() or _state(pid) == "Z", 30, "the worker's death")
        assert fail_dead_runs(instance) == [run_id]
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.FAILURE


def _state(pid: int) -> str | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()[0]


# --- `crm run` killed for real --------------------------------------------------------------------------------

CUSTOMERS = 300
AS_OF = date(2026, 6, 30)
RUN_TIMEOUT = 1800


def crm_environ(root: Path) -> dict[str, str]:
    return {**os.environ, **world_environ(root), "CRM_WAREHOUSE_LOCK_WAIT_SECONDS": "60", "CI": ""}


def crm(root: Path, *args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "crm"), *args], env=crm_environ(root), capture_output=True, text=True, timeout=timeout
    )


def start_run(root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(VENV_BIN / "crm"), "run", "--as-of", AS_OF.isoformat()],
        env=crm_environ(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def children(pid: int) -> set[int]:
    """Every descendant of ``pid`` still in the process table."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(text[text.rindex(")") + 2 :].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def processes_of(root: Path) -> list[str]:
    """Live processes (not zombies) whose environment points at this world's warehouse: ours, whoever started them."""
    marker = f"CRM_WAREHOUSE_PATH={root / 'warehouse' / 'crm.duckdb'}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0") and _state(int(entry.name)) != "Z":
                found.append(f"{entry.name}: {' '.join(_cmdline(int(entry.name)))}")
        except OSError:
            continue
    return found


def kill_when(run: subprocess.Popen, pattern: str, then_lines: str | None = None) -> tuple[list[str], dict[int, str]]:
    """Read the run's progress until a line matches ``pattern`` (and then one matching ``then_lines``); SIGKILL it.
    Returns what it printed and the processes it had started, with their command lines."""
    lines: list[str] = []
    wanted = [re.compile(pattern), *([re.compile(then_lines)] if then_lines else [])]
    while wanted:
        line = run.stdout.readline()
        if not line:
            raise AssertionError("the run ended before the point where it was to be killed:\n" + "".join(lines))
        lines.append(line)
        if wanted[0].search(line):
            wanted.pop(0)
    started = {pid: " ".join(_cmdline(pid)) for pid in children(run.pid)}
    run.send_signal(signal.SIGKILL)
    run.wait()
    return lines, started


def published(root: Path) -> dict | None:
    pointer = root / "published" / "current.json"
    return json.loads(pointer.read_text()) if pointer.exists() else None


def counts(snapshot: Path) -> dict[str, int]:
    with duckdb.connect(str(snapshot), read_only=True) as connection:
        tables = connection.execute(
            "select table_schema, table_name from information_schema.tables order by 1, 2"
        ).fetchall()
        return {
            f"{schema}.{table}": connection.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
            for schema, table in tables
        }


def marts(root: Path) -> dict[str, list[tuple]]:
    """Every published mart's rows, sorted, without the columns naming the model runs (their ids differ by run);
    floats to 9 significant digits (sums in parallel may differ in the last bits)."""
    pointer = published(root)
    assert pointer is not None
    tables: dict[str, list[tuple]] = {}
    with duckdb.connect(str(root / "published" / pointer["snapshot"]), read_only=True) as connection:
        names = [row[0] for row in connection.execute(
            "select table_name from information_schema.tables where table_schema = 'marts' order by 1"
        ).fetchall()]  # fmt: skip
        for name in names:
            columns = [
                row[0]
                for row in connection.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = 'marts' and table_name = ? order by ordinal_position",
                    [name],
                ).fetchall()
                if "run_id" not in row[0]
            ]
            selected = ", ".join(f'"{column}"' for column in columns)
            rows = connection.execute(f'select {selected} from marts."{name}"').fetchall()
            tables[name] = sorted((tuple(_comparable(value, root) for value in row) for row in rows), key=repr)
    return tables


def _comparable(value, root: Path):
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.9g}"
    if isinstance(value, str):
        return value.replace(str(root), "<root>")
    return value


def last_run(root: Path) -> dict:
    status = crm(root, "status", "--json", timeout=300)
    assert status.returncode == 0, status.stderr
    return json.loads(status.stdout)["last_run"]


def full_run(root: Path) -> None:
    result = crm(root, "run", "--as-of", AS_OF.isoformat())
    assert result.returncode == 0, f"the run failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"


def check_after_kill(root: Path, started: dict[int, str], before: dict | None, before_counts: dict | None) -> None:
    def left_behind() -> list[str]:
        alive = [f"{pid}: {command}" for pid, command in started.items() if _state(pid) not in (None, "Z")]
        return alive + processes_of(root)

    deadline = time.monotonic() + 30
    while left_behind() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left_behind(), "processes of the killed run still run"
    assert published(root) == before, "a killed run changed what current.json points at"
    if before is not None:
        assert counts(root / "published" / before["snapshot"]) == before_counts, "the published snapshot changed"
    run = last_run(root)
    assert run["outcome"] == "failure", f"`crm status` says the killed run is {run['outcome']}"


@pytest.mark.slow
def test_crm_run_killed_in_ingest_dbt_and_models_recovers_to_an_uninterrupted_result(tmp_path: Path):
    from pipelines.demo_data import generate

    landing = tmp_path / "landing"
    generate(customers=CUSTOMERS, seed=11, as_of=AS_OF, out=landing, truth=tmp_path / "truth")
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    for root in (reference, killed):
        shutil.copytree(landing, root / "landing")
    # The uninterrupted run goes on beside the killed ones.
    uninterrupted = start_run(reference)
    try:
        # 1. During ingest, on an empty warehouse: a few sources loaded, the rest not.
        _, started = kill_when(start_run(killed), r"\] raw__\S+ \.\.\.", r"\] raw__erp__\S+ \.\.\.")
        check_after_kill(killed, started, None, None)
        full_run(killed)
        first = published(killed)
        first_counts = counts(killed / "published" / first["snapshot"])

        # 2. During dbt, once it has built some models: dbt (a child process) must die too.
        run = start_run(killed)
        _, started = kill_when(run, r"\] dbt_models \.\.\.", r"done (staging|intermediate)/")
        assert any("dbt" in command for command in started.values()), f"no dbt process was running: {started}"
        check_after_kill(killed, started, first, first_counts)
        full_run(killed)
        second = published(killed)
        assert second != first
        second_counts = counts(killed / "published" / second["snapshot"])

        # 3. During the models.
        _, started = kill_when(start_run(killed), r"\] ml__\S+ \.\.\.")
        check_after_kill(killed, started, second, second_counts)
        full_run(killed)
    finally:
        output, _ = uninterrupted.communicate(timeout=RUN_TIMEOUT)
    assert uninterrupted.returncode == 0, output[-4000:]
    assert last_run(killed)["outcome"] == "success"
    expected, got = marts(reference), marts(killed)
    assert sorted(got) == sorted(expected)
    for table in expected:
        assert got[table] == expected[table], f"marts.{table} differs from the uninterrupted run's"


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []
