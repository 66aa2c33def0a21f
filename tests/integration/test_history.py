"""Two real runs with a tier change between them leave the change in the snapshot history."""

import os
import shutil
from datetime import date

import duckdb
import pytest
from dagster import DagsterInstance

from pipelines.definitions import NIGHTLY_JOB, build_definitions
from pipelines.publish.snapshot import current_snapshot
from pipelines.resources import AS_OF_TAG
from pipelines.settings import load_settings
from pipelines.transform.project import prepare_manifest
from tests.conftest import AS_OF, world_environ

pytestmark = pytest.mark.integration
LATER = date(2026, 9, 30)  # three months on, with no new orders: some customers' trailing spend falls


@pytest.fixture(scope="module")
def second_run(pipeline_run, tmp_path_factory):
    world, first = pipeline_run
    assert first.success
    root = tmp_path_factory.mktemp("history")
    for folder in ("landing", "warehouse"):
        shutil.copytree(world.root / folder, root / folder)
    environ = world_environ(root)
    saved = {name: os.environ.get(name) for name in environ}
    os.environ.update(environ)
    try:
        prepare_manifest()
        job = build_definitions(load_settings()).resolve_job_def(NIGHTLY_JOB)
        with DagsterInstance.ephemeral() as instance:
            result = job.execute_in_process(
                instance=instance, tags={AS_OF_TAG: LATER.isoformat()}, raise_on_error=False
            )
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
    assert result.success
    return root


def test_tier_changes_between_runs_are_kept_as_versions(second_run):
    pointer = current_snapshot(second_run / "published")
    with duckdb.connect(pointer["path"], read_only=True) as connection:
        moves = connection.execute(
            """select earlier.loyalty_tier, later.loyalty_tier, earlier.as_of_date, later.as_of_date
            from snapshots.customer_history as earlier
            join snapshots.customer_history as later
              on earlier.customer_id = later.customer_id and earlier.dbt_valid_to = later.dbt_valid_from"""
        ).fetchall()
        current_tiers = dict(connection.execute("select customer_id, loyalty_tier from marts.dim_customers").fetchall())
        open_versions = dict(
            connection.execute(
                "select customer_id, loyalty_tier from snapshots.customer_history where dbt_valid_to is null"
            ).fetchall()
        )
    assert moves, "some customers' tier changed between the runs"
    assert all(old != new for old, new, _, _ in moves)
    assert {(before, after) for _, _, before, after in moves} == {(AS_OF, LATER)}
    assert open_versions == current_tiers, "the open version of every customer is their current tier"
