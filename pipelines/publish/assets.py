"""The publish asset: after every upstream asset and check passed, a new read-only snapshot for the dashboards,
made current unless the publish guard holds it back (see :mod:`pipelines.publish.release`)."""

from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from pipelines.publish.changes import change_sentences
from pipelines.publish.health import record_health
from pipelines.publish.release import publish
from pipelines.resources import Warehouse, as_of_date
from pipelines.settings import Settings


def build_publish_asset(upstream: Sequence[dg.AssetsDefinition], settings: Settings) -> dg.AssetsDefinition:
    """The publish step after ``upstream``; the guard's factor and file privacy come from ``settings``."""
    guard_factor = settings.publish_guard_factor

    @dg.asset(
        key=dg.AssetKey(["published_snapshot"]),
        deps=list(upstream),
        group_name="publish",
        kinds={"duckdb"},
        description="A consistent read-only copy of the marts, scores and load bookkeeping (codes and counts), "
        "made the current one (published/current.json) only after the rest of the run succeeded and only when "
        f"no headline figure moved by more than {guard_factor:g} times since the current one (else held back in "
        "published/held.json until `crm publish --accept RUN`).",
    )
    def published_snapshot(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        as_of = as_of_date(context, settings.today())
        published_dir = Path(warehouse.published_dir)
        with warehouse.connect() as connection:
            # what the data supports and how fresh each source is, for the Data health page: into the snapshot
            record_health(connection, settings, as_of, context.run.run_id)
            release = publish(
                connection,
                published_dir,
                as_of=as_of,
                run_id=context.run.run_id,
                guard_factor=guard_factor,
                private_files=settings.private_files,
                keep_snapshots=warehouse.keep_snapshots,
            )
        payloads = {f"{table}.{column}": count for table, column, count in release.formula_payloads}
        if payloads:
            context.log.warning(
                f"{sum(payloads.values()):,} text value(s) of the snapshot start like a spreadsheet formula "
                f"(=, +, -, @): {payloads}. Exports neutralise them (pipelines/exports.py); look at the files they "
                "came from."
            )
        metadata = {
            "path": dg.MetadataValue.path(str(release.target)),
            "as_of": as_of.isoformat(),
            "tables": dg.MetadataValue.json(release.rows),
            "figures": dg.MetadataValue.json(release.figures),
            "what_changed": dg.MetadataValue.md("\n".join(f"- {line}" for line in change_sentences(release.changes))),
            "formula_payloads": dg.MetadataValue.json(payloads),
            "formula_payload_values": sum(payloads.values()),
        }
        if release.held is not None:
            raise dg.Failure(description=release.message, metadata={**metadata, "held": True})
        context.log.info(f"published {release.target}; removed {len(release.removed)} old snapshot(s)")
        return dg.MaterializeResult(metadata=metadata)

    return published_snapshot
