"""The publish asset: after every upstream asset and check passed, a new read-only snapshot for the dashboards."""

from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

import dagster as dg

from pipelines.publish.snapshot import point_to, prune_snapshots, snapshot_name, write_snapshot
from pipelines.resources import Warehouse, as_of_date


def build_publish_asset(
    upstream: Sequence[dg.AssetsDefinition], default_as_of: Callable[[], date]
) -> dg.AssetsDefinition:
    @dg.asset(
        key=dg.AssetKey(["published_snapshot"]),
        deps=list(upstream),
        group_name="publish",
        kinds={"duckdb"},
        description="A consistent read-only copy of the marts, scores and load bookkeeping, made the current "
        "one (published/current.json) only after the rest of the run succeeded.",
    )
    def published_snapshot(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        as_of = as_of_date(context, default_as_of())
        published_dir = Path(warehouse.published_dir)
        target = published_dir / snapshot_name(as_of, context.run.run_id)
        with warehouse.connect() as connection:
            rows = write_snapshot(connection, target)
        point_to(published_dir, target, as_of=as_of, run_id=context.run.run_id)
        removed = prune_snapshots(published_dir, warehouse.keep_snapshots)
        context.log.info(f"published {target}; removed {len(removed)} old snapshot(s)")
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(target)),
                "as_of": as_of.isoformat(),
                "tables": dg.MetadataValue.json(rows),
            }
        )

    return published_snapshot
