"""Dagster's run and event storage in PostgreSQL, configured by the block dagster.yaml documents.

A real PostgreSQL server is started in a temporary folder (as an unprivileged user when the tests run as root,
since initdb refuses root); the nightly job runs on a small generated landing zone with an instance made from the
project's dagster.yaml with that block switched on; the run and its materialisations are then read back from
PostgreSQL with plain SQL.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from pipelines.settings import PROJECT_ROOT
from tests.conftest import require_system_tool, world_environ

pytestmark = pytest.mark.integration

AS_OF = date(2026, 6, 30)
INSTALL_HINT = "apt-get install postgresql"


def postgres_bin() -> Path:
    """The folder of initdb and pg_ctl: on PATH's usual place here, or Debian's versioned folder."""
    candidates = ["/usr/local/bin/initdb", *sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)]
    found = next((Path(path) for path in candidates if Path(path).exists()), None)
    if found is None:
        require_system_tool("/usr/lib/postgresql/<version>/bin/initdb", INSTALL_HINT)
    return found.resolve().parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def documented_storage_block() -> str:
    """The commented `storage:` block of dagster.yaml, switched on."""
    lines = (PROJECT_ROOT / "dagster.yaml").read_text(encoding="utf-8").splitlines()
    start = lines.index("# storage:")
    block = []
    for line in lines[start:]:
        if line.strip() == "#":
            break
        block.append(line.removeprefix("# ").split("  #")[0].rstrip())
    return "\n".join(block) + "\n"


@pytest.fixture
def postgres() -> Iterator[dict[str, str]]:
    """A PostgreSQL server on 127.0.0.1, with the DAGSTER_PG_* variables that point at it."""
    bin_dir = postgres_bin()
    # Not under pytest's tmp folder: an unprivileged server user must reach its files.
    root = Path(tempfile.mkdtemp(prefix="crm-pg-"))
    root.chmod(0o755)
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "nobody")
        as_user = ["runuser", "-u", "nobody", "--"]
    data, port = root / "data", free_port()

    def run(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=120)

    run(str(bin_dir / "initdb"), "-D", str(data), "-U", "dagster", "--auth=trust", "-E", "UTF8")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w", "start")
    try:
        yield {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_DB": "postgres",
            "DAGSTER_PG_USER": "dagster",
            "DAGSTER_PG_PASSWORD": "",
        }
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def postgres_instance_home(home: Path) -> Path:
    """A Dagster home whose dagster.yaml is the project's, with the documented PostgreSQL block switched on."""
    home.mkdir()
    project_config = (PROJECT_ROOT / "dagster.yaml").read_text(encoding="utf-8")
    (home / "dagster.yaml").write_text(project_config + documented_storage_block(), encoding="utf-8")
    return home


def stored(postgres: dict[str, str], run_id: str) -> tuple[list[tuple], set[str]]:
    """The run's row in PostgreSQL's runs table and the asset keys of its stored materialisations."""
    import psycopg2

    port = int(postgres["DAGSTER_PG_PORT"])
    connection = psycopg2.connect(host="127.0.0.1", port=port, dbname="postgres", user="dagster")
    try:
        cursor = connection.cursor()
        cursor.execute("select pipeline_name, status from runs where run_id = %s", [run_id])
        runs = cursor.fetchall()
        cursor.execute(
            "select distinct asset_key from event_logs where run_id = %s and dagster_event_type = %s",
            [run_id, "ASSET_MATERIALIZATION"],
        )
        keys = {row[0] for row in cursor.fetchall()}
    finally:
        connection.close()
    return runs, keys


def test_a_run_with_the_documented_block_is_stored_in_postgres(
    tmp_path: Path, postgres: dict[str, str], monkeypatch: pytest.MonkeyPatch
):
    import dagster as dg

    @dg.asset
    def orders() -> int:
        return 3

    @dg.asset
    def customers(orders: int) -> int:
        return orders - 1

    for name, value in postgres.items():
        monkeypatch.setenv(name, value)
    home = postgres_instance_home(tmp_path / "dagster")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        result = dg.materialize([orders, customers], instance=instance)
    assert result.success
    runs, keys = stored(postgres, result.run_id)
    assert runs == [(result.job_def.name, "SUCCESS")]
    assert keys == {'["orders"]', '["customers"]'}


@pytest.mark.slow
def test_the_nightly_run_and_its_materialisations_are_stored_in_postgres(tmp_path: Path, postgres: dict[str, str]):
    from dagster import DagsterInstance

    from pipelines.definitions import NIGHTLY_JOB, build_definitions
    from pipelines.demo_data import generate
    from pipelines.resources import AS_OF_TAG
    from pipelines.settings import load_settings
    from pipelines.transform.project import prepare_manifest

    generate(customers=200, seed=5, as_of=AS_OF, out=tmp_path / "landing", truth=tmp_path / "truth")
    home = postgres_instance_home(tmp_path / "dagster")
    environ = {**world_environ(tmp_path), **postgres}
    saved = {name: os.environ.get(name) for name in environ}
    os.environ.update(environ)
    try:
        prepare_manifest(force=True)
        job = build_definitions(load_settings()).resolve_job_def(NIGHTLY_JOB)
        with DagsterInstance.from_config(str(home)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            result = job.execute_in_process(instance=instance, tags={AS_OF_TAG: AS_OF.isoformat()})
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    assert result.success
    materialised = {
        event.asset_key.to_user_string()
        for event in result.all_events
        if event.event_type_value == "ASSET_MATERIALIZATION"
    }
    runs, keys = stored(postgres, result.run_id)
    assert runs == [(NIGHTLY_JOB, "SUCCESS")]
    assert len(keys) == len(materialised) > 50
    assert '["published_snapshot"]' in keys
    assert '["raw", "erp", "orders"]' in keys
