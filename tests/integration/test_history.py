"""Two real runs with a tier change between them leave the change in the snapshot history."""

import shutil
from datetime import date

import duckdb
import pytest

from pipelines.publish.snapshot import current_snapshot
from tests.conftest import AS_OF, run_nightly, world_environ

pytestmark = pytest.mark.integration
LATER = date(2026, 9, 30)  # three months on, with no new orders: some customers' trailing spend falls


@pytest.fixture(scope="module")
def second_run(pipeline_run, tmp_path_factory):
    world, first = pipeline_run
    assert first.success
    root = tmp_path_factory.mktemp("history")
    for folder in ("landing", "warehouse"):
        shutil.copytree(world.root / folder, root / folder)
    result = run_nightly(world_environ(root), LATER)
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
