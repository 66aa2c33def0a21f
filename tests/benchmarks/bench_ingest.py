"""Ingest wall time against DuckDB alone reading the same landing files into tables.

`python tests/benchmarks/bench_ingest.py LANDING_DIR` (a landing zone made by `crm demo-data`). Both sides get a
fresh DuckDB file; DuckDB alone is `create table as select * from read_csv/read_parquet(...)` with its own type
detection, per file, with the contract's dialect; the ingest is exactly what the ingest assets do (contracts,
casts, quarantine, ledger, hashes, Great Expectations suites). Prints one JSON line.
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from pipelines.ingest.contracts import load_contracts
from pipelines.ingest.expectations import validate_loads
from pipelines.ingest.loader import load_table, sql_string


def duckdb_alone(landing: Path, database: Path) -> float:
    connection = duckdb.connect(str(database))
    started = time.perf_counter()
    for contract in load_contracts():
        for index, file in enumerate(contract.matching_files(landing)):
            table = f"{contract.name}_{index}"
            if contract.format == "parquet":
                reader = f"read_parquet({sql_string(str(file))})"
            else:
                dialect = contract.dialect
                reader = (
                    f"read_csv({sql_string(str(file))}, delim = {sql_string(dialect.delimiter)}, "
                    f"header = {str(dialect.header).lower()}, "
                    f"decimal_separator = {sql_string(dialect.decimal_separator)})"
                )
            connection.execute(f"create table {table} as select * from {reader}")
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def our_ingest(landing: Path, database: Path) -> tuple[float, dict[str, float], int]:
    connection = duckdb.connect(str(database))
    connection.execute("set TimeZone = 'UTC'")
    timings, rows = {}, 0
    started = time.perf_counter()
    for contract in load_contracts():
        table_started = time.perf_counter()
        loads = load_table(connection, contract, landing, "bench")
        validate_loads(connection, contract, loads, "bench").store(connection, "bench")
        timings[contract.name] = round(time.perf_counter() - table_started, 1)
        rows += sum(load.rows_read for load in loads)
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed, timings, rows


def main() -> None:
    landing = Path(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="crm-bench-ingest-") as folder:
        alone = duckdb_alone(landing, Path(folder) / "alone.duckdb")
        ingest, per_table, rows = our_ingest(landing, Path(folder) / "ingest.duckdb")
    print(json.dumps({
        "landing": str(landing), "rows_read": rows, "duckdb_alone_seconds": round(alone, 1),
        "ingest_seconds": round(ingest, 1), "ratio": round(ingest / alone, 2), "per_table_seconds": per_table,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
