"""Two real runs with tier and segment changes between them leave the changes in the snapshot history."""

import duckdb
import pytest

from pipelines.publish.snapshot import current_snapshot
from tests.conftest import AS_OF, LATER

pytestmark = pytest.mark.integration


def test_tier_changes_between_runs_are_kept_as_versions(second_run_root):
    pointer = current_snapshot(second_run_root / "published")
    with duckdb.connect(pointer["path"], read_only=True) as connection:
        moves = connection.execute(
            """select earlier.loyalty_tier, later.loyalty_tier, earlier.rfm_segment, later.rfm_segment,
                earlier.geography_id, later.geography_id, earlier.as_of_date, later.as_of_date
            from snapshots.customer_history as earlier
            join snapshots.customer_history as later
              on earlier.customer_id = later.customer_id and earlier.dbt_valid_to = later.dbt_valid_from"""
        ).fetchall()
        current = connection.execute(
            "select customer_id, loyalty_tier, rfm_segment from marts.customer_360 order by customer_id"
        ).fetchall()
        open_versions = connection.execute(
            "select customer_id, loyalty_tier, rfm_segment from snapshots.customer_history "
            "where dbt_valid_to is null order by customer_id"
        ).fetchall()
    tier_moves = [(old, new) for old, new, *_ in moves if old != new]
    segment_moves = [(old, new) for _, _, old, new, *_ in moves if old != new]
    assert tier_moves, "some customers' tier changed between the runs"
    assert segment_moves, "some customers' RFM segment changed between the runs"
    assert all(move[0::2] != move[1::2] for move in (row[:6] for row in moves)), "a version is a change"
    assert {(before, after) for *_, before, after in moves} == {(AS_OF, LATER)}
    assert open_versions == current, "the open version of every customer is their current tier and segment"
