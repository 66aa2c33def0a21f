"""Ingest assets: one per source contract, bringing the raw tables it feeds up to date with the landing zone.

A contract named like a canonical table (erp/orders) loads into it; a contract of another name (an invoice-line
export) may feed several canonical tables. The asset of a canonical table's contract depends on the assets of
every other contract that feeds its table, so dbt, downstream of it, reads the table whole.

Each asset carries two blocking checks: ``files_accepted`` fails while a file of the table in the landing zone is
refused (missing required column, unreadable encoding, a column whose format changed), and ``expectations``
fails when a Great Expectations suite made from the contract finds an ``error``-severity violation in a file
loaded by this run. A failed blocking check stops that source's downstream assets, with the reason in the
run log; ``warn``-severity violations are reported without blocking.

Two more checks warn without blocking: ``plausible`` reports the rows this run found outside a contract bound or
an automatic outlier bound (pipelines/ingest/plausibility.py), quarantined or loaded with a warning, by file,
column and row; ``fresh`` says whether the source delivered a file as often as its contract's cadence says
(pipelines/ingest/freshness.py).
"""

import datetime as dt
from pathlib import Path

import dagster as dg

from pipelines.ingest import ledger
from pipelines.ingest.contracts import Contract
from pipelines.ingest.expectations import validate_loads
from pipelines.ingest.freshness import SourceFreshness, source_freshness
from pipelines.ingest.loader import FileLoad, load_table, raw_table
from pipelines.ingest.plausibility import Finding, Plausibility, run_findings
from pipelines.resources import Warehouse
from pipelines.settings import Settings


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
        "files_empty": sum(load.status == "empty" for load in loads),
        "files_deferred": sum(load.status == "deferred" for load in loads),
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


def plausibility_metadata(findings: list[Finding]) -> dict[str, object]:
    by_file: dict[str, dict[str, dict[str, int]]] = {}
    for finding in findings:
        column = by_file.setdefault(finding.file, {}).setdefault(finding.column, {})
        column[f"{finding.reason_code} {finding.action}"] = finding.rows
    return {
        "rows_implausible_warned": sum(finding.rows for finding in findings if finding.action == "warned"),
        "rows_implausible_quarantined": sum(finding.rows for finding in findings if finding.action == "quarantined"),
        "implausible_by_file": dg.MetadataValue.json(by_file),
    }


def plausible_check(key: dg.AssetKey, findings: list[Finding]) -> dg.AssetCheckResult:
    """Warns when this run found rows outside a bound: quarantined ones (the figures were kept out) and loaded
    ones (severity warn: the figures include them) alike, by file, column and rows."""
    warned = [finding for finding in findings if finding.action == "warned"]
    quarantined = [finding for finding in findings if finding.action == "quarantined"]
    parts = []
    if warned:
        parts.append(
            "Loaded, but implausible (they count in every figure; correct the file, or set the column's "
            "severity or outlier_severity to error to quarantine them): "
            + "; ".join(finding.describe() for finding in warned[:10])
        )
    if quarantined:
        parts.append(
            "Quarantined as implausible (meta.quarantine; correct the file, or widen the contract's min/max if "
            "the values are real): " + "; ".join(finding.describe() for finding in quarantined[:10])
        )
    return dg.AssetCheckResult(
        asset_key=key,
        check_name="plausible",
        passed=not findings,
        severity=dg.AssetCheckSeverity.WARN,
        description=" ".join(parts) or "No value outside the contract's bounds or the automatic outlier bounds.",
        metadata=plausibility_metadata(findings),
    )


def fresh_check(key: dg.AssetKey, freshness: SourceFreshness) -> dg.AssetCheckResult:
    modified = freshness.newest_modified_at
    return dg.AssetCheckResult(
        asset_key=key,
        check_name="fresh",
        passed=not freshness.late,
        severity=dg.AssetCheckSeverity.WARN,
        description=freshness.message,
        metadata={
            "cadence": freshness.cadence or "not declared",
            "expected_every_days": freshness.expected_every_days or 0,
            "newest_file": freshness.newest_file or "",
            "newest_modified_at": modified.isoformat() if modified else "",
            "files": freshness.files,
        },
    )


def feeding_contracts(contracts: list[Contract]) -> dict[str, list[Contract]]:
    """For each contract, the other contracts that feed the table named like it."""
    return {
        contract.name: [other for other in contracts if other is not contract and contract.name in other.tables]
        for contract in contracts
    }


def build_ingest_asset(
    contract: Contract, fed_by: list[Contract] = (), plausibility: Plausibility | Settings | None = None
) -> dg.AssetsDefinition:
    """The asset of one contract. ``plausibility`` draws the automatic outlier bounds: the settings' outlier_*
    values, a ``Plausibility``, or its defaults when None."""
    key = raw_asset_key(contract.source, contract.table)
    if isinstance(plausibility, Settings):
        plausibility = Plausibility.from_settings(plausibility)
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
            dg.AssetCheckSpec(
                "plausible", asset=key, blocking=False, description="No value outside a bound or an outlier."
            ),
            dg.AssetCheckSpec(
                "fresh", asset=key, blocking=False, description="A file arrived as often as its cadence says."
            ),
        ],
    )
    def _ingest(context: dg.AssetExecutionContext, warehouse: Warehouse):
        landing_dir = Path(warehouse.landing_dir)
        with warehouse.connect() as connection:
            loads = load_table(connection, contract, landing_dir, context.run.run_id, plausibility)
            present = {load.file for load in loads}
            current = ledger.current_entries(connection, contract.name)
            validation = validate_loads(connection, contract, loads, context.run.run_id)
            validation.store(connection, context.run.run_id)
            findings = run_findings(connection, contract.name, context.run.run_id)
            rows = sum(
                connection.execute(f"select count(*) from {raw_table(t)}").fetchone()[0] for t in contract.tables
            )
        if not loads:
            context.log.warning(f"no files match {contract.files} in {landing_dir}")
        for load in loads:
            if load.status in ("deferred", "empty"):
                context.log.warning(load.message)
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
        for finding in findings:
            context.log.warning(f"{contract.name}: implausible values: {finding.describe()}")
        [freshness] = source_freshness([contract], landing_dir, dt.datetime.now(dt.UTC))
        if freshness.late:
            context.log.warning(freshness.message)
        yield dg.MaterializeResult(
            metadata={**load_metadata(loads), **plausibility_metadata(findings), "dagster/row_count": rows}
        )
        yield refused_files_check(key, refused)
        yield validation.check_result(key)
        yield plausible_check(key, findings)
        yield fresh_check(key, freshness)

    return _ingest
