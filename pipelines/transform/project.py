"""The dbt project as Dagster sees it."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dagster_dbt import DbtCliResource, DbtProject
from packaging.version import Version

from pipelines.ingest.loader import file_sha256
from pipelines.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from pipelines.resources import Warehouse

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
# The dbt installed beside this Python (the project's .venv), whether or not the venv is on PATH, started through
# `crm-dbt` (pipelines/transform/dbt_child.py) so that it dies with the run that started it. An install that
# predates the wrapper falls back to dbt itself.
_BIN = Path(sys.executable).parent
DBT_EXECUTABLE = str(_BIN / "crm-dbt") if (_BIN / "crm-dbt").exists() else str(_BIN / "dbt")

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR)


# What a model's SQL is made of: a change to any of these files changes the project's checksum.
_CODE_FOLDERS = ("models", "macros", "seeds", "snapshots")


@functools.cache
def project_checksum() -> str:
    """SHA-256 of the dbt project's code (every file under :data:`_CODE_FOLDERS` and dbt_project.yml, by path):
    the ``project_checksum`` var, with which a model built incrementally knows that its last build ran the same
    code (dbt_project/macros/rebuild_plan.sql)."""
    digest = hashlib.sha256()
    files = [DBT_PROJECT_DIR / "dbt_project.yml"]
    files += sorted(
        path for folder in _CODE_FOLDERS for path in (DBT_PROJECT_DIR / folder).rglob("*") if path.is_file()
    )
    for path in files:
        digest.update(path.relative_to(DBT_PROJECT_DIR).as_posix().encode() + b"\0")
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


class CrmDbtCliResource(DbtCliResource):
    """dagster-dbt's dbt resource without two costs it pays before each dbt command and the night has no use
    for (3-4 s a command, three a night): asking the dbt executable its version in a subprocess (it is this
    Python's dbt-core, :data:`DBT_EXECUTABLE`) and loading the project's macros in this process for a database
    handle, which only dagster-dbt's column metadata and row counts read, and the night asks for neither.
    tests/unit/test_transform.py checks that dagster-dbt still has both, so an upgrade that renames them fails
    there rather than quietly paying them again."""

    @functools.cached_property
    def _cli_version(self) -> Version:
        return Version(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        return None


def dbt_resource() -> DbtCliResource:
    return CrmDbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)


PARTIAL_PARSE_FILE = "partial_parse.msgpack"


# What dbt_project/profiles.yml reads from the environment.
DBT_ENVIRONMENT_VARIABLES = ("CRM_WAREHOUSE_PATH", "CRM_MARTS_PATH", "CRM_DBT_MEMORY_LIMIT", "CRM_DBT_THREADS")


def dbt_environment(warehouse: Warehouse) -> dict[str, str]:
    """The values of :data:`DBT_ENVIRONMENT_VARIABLES` for ``warehouse``: its file, its marts file and the
    engine's memory and threads (empty and 0 are DuckDB's defaults). dbt parses a project again whole when any of
    them, or the ``--vars``, differ from its last parse's, so a run's parse and its builds must see the same."""
    threads = str(warehouse.threads or os.cpu_count() or 1)
    values = (warehouse.path, str(warehouse.marts_path), warehouse.memory_limit or "80%", threads)
    return dict(zip(DBT_ENVIRONMENT_VARIABLES, values, strict=True))


def prepare_manifest(
    force: bool = False, *, args: Sequence[str] = (), environment: dict[str, str] | None = None
) -> None:
    """Parse the dbt project into target/manifest.json, which the dbt assets are built from.

    Loading the definitions parses once when there is no manifest; ``crm run`` and the tests pass ``force`` so
    that a model edited since the last parse never runs from a stale manifest. ``crm run`` passes its build's
    ``args`` (the ``--vars``) and ``environment`` (:func:`dbt_environment`), which this process keeps: its dbt
    steps then find the parse they would make already in target/ (dagster-dbt copies the partial-parse file into
    each invocation's folder) and skip parsing, one parse a night instead of one per dbt step.
    """
    if force or not dbt_project.manifest_path.exists():
        os.environ.update(environment or {})
        dbt_resource().cli(["parse", "--quiet", *args], target_path=Path("target")).wait()


def keep_partial_parse(invocation_target: Path) -> None:
    """Make an invocation's parse the one the next dbt invocation starts from (dagster-dbt copies target/'s
    partial-parse file into each invocation's folder): the second dbt step of a run, with the same ``--vars``
    and environment, then skips parsing. A file of other vars is only a missed shortcut, never a wrong parse
    (dbt checks the vars, the profile and every file's checksum before using it)."""
    made = invocation_target / PARTIAL_PARSE_FILE
    if not made.exists():
        return
    kept = dbt_project.manifest_path.parent / PARTIAL_PARSE_FILE
    temporary = kept.with_suffix(f".{os.getpid()}.tmp")
    shutil.copyfile(made, temporary)
    os.replace(temporary, kept)
