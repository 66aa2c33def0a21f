"""dbt's unit tests check the models' code on fixed rows: they run here, in `make test`, and not in the night,
whose dbt steps build the models and run the data tests only (pipelines.transform.assets.dbt_build_args)."""

import json
import os
import shutil
import subprocess

import pytest

from pipelines.settings import load_settings
from pipelines.transform.assets import dbt_vars_args
from pipelines.transform.project import DBT_EXECUTABLE, DBT_PROJECT_DIR, dbt_project
from tests.conftest import AS_OF, world_environ

pytestmark = pytest.mark.integration


def _results(target) -> dict[str, str]:
    run_results = json.loads((target / "run_results.json").read_text(encoding="utf-8"))
    return {result["unique_id"]: result["status"] for result in run_results["results"]}


def test_every_dbt_unit_test_passes(pipeline_run, tmp_path):
    """On a copy of the night's warehouse (a unit test reads the columns of its model's inputs from it)."""
    world, _ = pipeline_run
    shutil.copytree(world.root / "warehouse", tmp_path / "warehouse")
    environ = {**os.environ, **world_environ(tmp_path)}
    environ.pop("CRM_MARTS_PATH", None)
    target = tmp_path / "target"
    completed = subprocess.run(
        [DBT_EXECUTABLE, "test", "--select", "test_type:unit", *dbt_vars_args(load_settings(environ), AS_OF),
         "--target-path", str(target)],
        cwd=DBT_PROJECT_DIR, env=environ, capture_output=True, text=True,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:]
    unit_tests = set(json.loads((target / "manifest.json").read_text(encoding="utf-8"))["unit_tests"])
    results = _results(target)
    assert len(unit_tests) >= 20 and set(results) == unit_tests
    assert {status for status in results.values()} == {"pass"}


@pytest.mark.parametrize("step", ["dbt_models", "dbt_score_models"])
def test_the_night_runs_the_data_tests_and_no_unit_test(pipeline_run, step):
    _, result = pipeline_run
    folders = sorted(dbt_project.manifest_path.parent.glob(f"{step}-{result.run_id[:7]}-*"))
    assert len(folders) == 1, f"one dbt invocation of {step} in run {result.run_id}: {folders}"
    kinds = {unique_id.split(".")[0] for unique_id in _results(folders[0])}
    assert {"model", "test"} <= kinds and "unit_test" not in kinds, kinds
