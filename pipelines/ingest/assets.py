"""Ingest assets: one per source contract, bringing the raw tables it feeds up to date with the landing zone.

A contract named like a canonical table (erp/orders) loads into it; a contract of another name (an invoice-line
export) may feed several canonical tables. The asset of a canonical table's contract depends on the assets of
every other contract that feeds its table, so dbt, downstream of it, reads the table whole.

Each asset carries two blocking checks: ``files_accepted`` fails while a file of the table in the landing zone is
refused (missing required column, unreadable encoding, a column whose format changed), and ``expectations``
fails when a Great Expectations suite made from the contract finds an ``error``-severity violation in a file
loaded by this run. A failed blocking check stops that source's downstream assets, with the reason in the
run log; ``warn``-severity violations are reported without blocking.
"""

from pathlib import Path

import dagster as dg

from pipelines.ingest import ledger
from pipelines.ingest.contracts import Contract
from pipelines.ingest.expectations import validate_loads
from pipelines.ingest.loader import FileLoad, load_table, raw_table
from pipelines.resources import Warehouse


def raw_asset_key(source: str, table: str) -> dg.AssetKey:
    """The key of a raw table's asset; the dbt translator maps dbt sources to the same key."""
    return dg.AssetKey(["raw", source, table])


def refused_files_check(key: dg.AssetKey, refused: dict[str, str]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=key,
        check_name="files_accepted",
        passed=not refused,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "; ".join(refused.values()) + ". Fix the file (a corrected copy under the same name replaces it) "
            "or its contract, or move it out of the landing zone."
            if refused
            else "Every file of this table in the landing zone was accepted."
        ),
        metadata={"refused_files": dg.MetadataValue.json(refused)},
    )


def load_metadata(loads: list[FileLoad]) -> dict[str, object]:
    loaded = [load for load in loads if load.status == "loaded"]
    filtered: dict[str, int] = {}
    written: dict[str, int] = {}
    for load in loaded:
        for reason, rows in load.filtered:
            filtered[reason] = filtered.get(reason, 0) + rows
        for table, rows in load.tables:
            written[table] = written.get(table, 0) + rows
    return {
        "files_loaded": len(loaded),
        "files_unchanged": sum(load.status == "unchanged" for load in loads),
        "files_refused": sum(load.status == "refused" for load in loads),
        "rows_read": sum(load.rows_read for load in loaded),
        "rows_loaded": sum(load.rows_loaded for load in loaded),
        "rows_quarantined": sum(load.rows_quarantined for load in loaded),
        "rows_filtered": sum(load.rows_filtered for load in loaded),
        "rows_replaced": sum(load.rows_replaced for load in loaded),
        "filtered_by_reason": dg.MetadataValue.json(filtered),
        "rows_written_by_table": dg.MetadataValue.json(written),
        "unknown_columns": dg.MetadataValue.json(
            {load.file: list(load.unknown_columns) for load in loads if load.unknown_columns}
        ),
    }


def feeding_contracts(contracts: list[Contract]) -> dict[str, list[Contract]]:
    """For each contract, the other contracts that feed the table named like it."""
    return {
        contract.name: [other for other in contracts if other is not contract and contract.name in other.tables]
        for contract in contracts
    }


def build_ingest_asset(contract: Contract, fed_by: list[Contract] = ()) -> dg.AssetsDefinition:
    key = raw_asset_key(contract.source, contract.table)
    feeds = ", ".join(feed.label for feed in contract.feeds)

    @dg.asset(
        key=key,
        group_name="ingest",
        deps=[raw_asset_key(other.source, other.table) for other in fed_by],
        description=f"{contract.description}\n\nContract: {contract.path}, files `{contract.files}`; feeds {feeds}.",
        kinds={"duckdb", contract.format},
        check_specs=[
            dg.AssetCheckSpec("files_accepted", asset=key, blocking=True, description="No file of it is refused."),
            dg.AssetCheckSpec(
                "expectations", asset=key, blocking=True, description="Its contract's expectations hold."
            ),
        ],
    )
    def _ingest(context: dg.AssetExecutionContext, warehouse: Warehouse):
        landing_dir = Path(warehouse.landing_dir)
        with warehouse.connect() as connection:
            loads = load_table(connection, contract, landing_dir, context.run.run_id)
            present = {load.file for load in loads}
            current = ledger.current_entries(connection, contract.name)
            validation = validate_loads(connection, contract, loads, context.run.run_id)
            validation.store(connection, context.run.run_id)
            rows = sum(
                connection.execute(f"select count(*) from {raw_table(t)}").fetchone()[0] for t in contract.tables
            )
        if not loads:
            context.log.warning(f"no files match {contract.files} in {landing_dir}")
        for load in loads:
            if load.unknown_columns:
                context.log.warning(f"{load.file}: columns not in the contract, kept in _extra: {load.unknown_columns}")
        refused = {
            file: next((load.message for load in loads if load.file == file and load.message), "refused earlier")
            for file, entry in current.items()
            if entry.status == "refused" and file in present
        }
        for message in refused.values():
            context.log.error(message)
        for failure in validation.failures:
            log = context.log.error if failure.spec.severity == "error" else context.log.warning
            log(f"{contract.name}: {failure.describe()}")
        yield dg.MaterializeResult(metadata={**load_metadata(loads), "dagster/row_count": rows})
        yield refused_files_check(key, refused)
        yield validation.check_result(key)

    return _ingest
