"""The dbt project as Dagster sees it."""

from __future__ import annotations

import sys
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from pipelines.settings import PROJECT_ROOT

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
# The dbt installed beside this Python (the project's .venv), whether or not the venv is on PATH, started through
# `crm-dbt` (pipelines/transform/dbt_child.py) so that it dies with the run that started it. An install that
# predates the wrapper falls back to dbt itself.
_BIN = Path(sys.executable).parent
DBT_EXECUTABLE = str(_BIN / "crm-dbt") if (_BIN / "crm-dbt").exists() else str(_BIN / "dbt")

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR)


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)


def prepare_manifest(force: bool = False) -> None:
    """Parse the dbt project into target/manifest.json, which the dbt assets are built from.

    Loading the definitions parses once when there is no manifest; ``crm run`` and the tests pass ``force`` so
    that a model edited since the last parse never runs from a stale manifest.
    """
    if force or not dbt_project.manifest_path.exists():
        dbt_resource().cli(["parse", "--quiet"], target_path=Path("target")).wait()
