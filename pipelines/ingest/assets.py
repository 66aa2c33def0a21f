"""Ingest assets: one per source contract, loading its landing files into DuckDB schema ``raw``."""

from pathlib import Path

import dagster as dg

from pipelines.ingest.contracts import Contract
from pipelines.ingest.loader import load_table
from pipelines.resources import Warehouse


def raw_asset_key(source: str, table: str) -> dg.AssetKey:
    """The key of a raw table's asset; the dbt translator maps dbt sources to the same key."""
    return dg.AssetKey(["raw", source, table])


def build_ingest_asset(contract: Contract) -> dg.AssetsDefinition:
    @dg.asset(
        key=raw_asset_key(contract.source, contract.table),
        group_name="ingest",
        description=f"{contract.description}\n\nContract: {contract.path.name}, files `{contract.files}`.",
        kinds={"duckdb", contract.format},
    )
    def _ingest(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        landing_dir = Path(warehouse.landing_dir)
        with warehouse.connect() as connection:
            loads = load_table(connection, contract, landing_dir, context.run.run_id)
        if not loads:
            context.log.warning(f"no files match {contract.files} in {landing_dir}")
        for load in loads:
            if load.unknown_columns:
                context.log.warning(f"{load.file}: columns not in the contract, not loaded: {load.unknown_columns}")
        return dg.MaterializeResult(
            metadata={
                "files": len(loads),
                "rows_read": sum(load.rows_read for load in loads),
                "rows_loaded": sum(load.rows_loaded for load in loads),
                "rows_quarantined": sum(load.rows_quarantined for load in loads),
                "dagster/row_count": sum(load.rows_loaded for load in loads),
            }
        )

    return _ingest
