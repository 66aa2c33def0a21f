"""Shared fixtures: a small synthetic retailer and one real pipeline run over it, made once per test session."""

import json
import math
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines.bench.worlds import world_environ
from pipelines.resources import attach_marts

SMALL_CUSTOMERS = 1500
SEED = 7
AS_OF = date(2026, 6, 30)
LATER = date(2026, 9, 30)  # a second run, three months on, with no new orders: some customers' tier falls


def open_warehouse(path: Path, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """The working warehouse file with its marts file attached, as the pipeline's connections open it: the
    marts (``marts.<table>``) live in a file of their own beside it."""
    connection = duckdb.connect(str(path), read_only=read_only)
    attach_marts(connection, path, read_only=read_only)
    return connection


def same_figures(left: object, right: object) -> bool:
    """Equal, floats to 9 significant digits: DuckDB sums doubles in parallel, in no fixed order, so two runs
    on the same rows may differ in the last bits (and a fitted parameter with them); JSON text is compared as data."""
    if isinstance(left, float) and isinstance(right, float):
        return math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(left, str) and isinstance(right, str) and left[:1] in "[{" and left != right:
        try:
            return same_figures(json.loads(left), json.loads(right))
        except ValueError:
            return False
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(map(same_figures, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same_figures(left[key], right[key]) for key in left)
    return left == right


@dataclass(frozen=True)
class World:
    """A generated landing zone with its truth, and the settings environment that points the pipeline at it."""

    root: Path
    landing: Path
    truth: Path
    rows: dict[str, int]
    environ: dict[str, str]


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    from pipelines.demo_data import generate

    root = tmp_path_factory.mktemp("world")
    summary = generate(customers=SMALL_CUSTOMERS, seed=SEED, as_of=AS_OF, out=root / "landing", truth=root / "truth")
    return World(root, root / "landing", root / "truth", dict(summary.rows), world_environ(root))


def run_nightly(environ: dict[str, str], as_of: date = AS_OF):
    """The whole nightly job, materialised for real by Dagster, with the settings pointed at ``environ``."""
    from dagster import DagsterInstance

    from pipelines.definitions import NIGHTLY_JOB, build_definitions
    from pipelines.resources import AS_OF_TAG
    from pipelines.settings import load_settings
    from pipelines.transform.assets import night_parse_inputs
    from pipelines.transform.project import DBT_ENVIRONMENT_VARIABLES, prepare_manifest

    saved = {name: os.environ.get(name) for name in [*environ, *DBT_ENVIRONMENT_VARIABLES]}
    os.environ.update(environ)
    try:
        # as `crm run` does: the night's dbt steps reuse this parse
        prepare_manifest(force=True, **night_parse_inputs(load_settings(), as_of))
        job = build_definitions(load_settings()).resolve_job_def(NIGHTLY_JOB)
        with DagsterInstance.ephemeral() as instance:
            tags = {AS_OF_TAG: as_of.isoformat()}
            return job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def pipeline_run(small_world: World) -> tuple[World, object]:
    """The whole nightly job over the small world."""
    return small_world, run_nightly(small_world.environ)


@pytest.fixture(scope="session")
def second_run_root(pipeline_run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the small world's landing zone and warehouse, run again three months later (no new orders)."""
    import shutil

    world, first = pipeline_run
    assert first.success
    root = tmp_path_factory.mktemp("second_run")
    for folder in ("landing", "warehouse"):
        shutil.copytree(world.root / folder, root / folder)
    result = run_nightly(world_environ(root), LATER)
    assert result.success
    return root


@dataclass(frozen=True)
class LandedRun:
    """The nightly job over a landing zone of real exports: its working warehouse, published snapshot and result."""

    warehouse: Path
    snapshot: Path | None
    result: object

    def published(self):
        import duckdb

        assert self.snapshot is not None, "the run published no snapshot"
        return duckdb.connect(str(self.snapshot), read_only=True)


def run_landed(root: Path, contracts: Path, as_of: date, **settings: str) -> LandedRun:
    """Run the nightly job over ``root/landing`` with the user's ``contracts`` and settings (CRM_<KEY> values)."""
    from pipelines.publish.snapshot import current_snapshot

    environ = {**world_environ(root), "CRM_CONTRACTS_DIR": str(contracts), **settings}
    result = run_nightly(environ, as_of)
    pointer = current_snapshot(root / "published")
    return LandedRun(root / "warehouse" / "crm.duckdb", Path(pointer["path"]) if pointer else None, result)


def require_system_tool(path: str, install_hint: str) -> None:
    """Skip when a system package is missing on a developer's machine; fail in CI, where it must be there."""
    if Path(path).exists():
        return
    message = f"{path} is missing: install it with `{install_hint}`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
