"""The floor: DuckDB alone reading the landing zone's files into typed tables, what no ingest can beat.

``python -m pipelines.bench.floor LANDING DATABASE`` creates, in a fresh DuckDB file, one table per file with
``create table as select * from read_csv/read_parquet(...)``, DuckDB's own type detection and the contract's
dialect (delimiter, header, decimal separator); no contracts, casts, quarantine, ledger or expectations. Prints one
JSON line: the seconds DuckDB took (from opening the file to closing it, its last table written) and the
files read.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import duckdb

from pipelines.ingest.contracts import load_contracts
from pipelines.sql import identifier, literal, string


def duckdb_alone(landing: Path, database: Path) -> tuple[float, int]:
    """Seconds DuckDB takes to read every file a built-in contract matches into tables, and the files read."""
    started = time.perf_counter()
    files = 0
    with duckdb.connect(str(database)) as connection:
        for contract in load_contracts():
            for index, file in enumerate(contract.matching_files(landing)):
                table = identifier(f"{contract.name}_{index}")
                if contract.format == "parquet":
                    reader = f"read_parquet({string(str(file))})"
                else:
                    dialect = contract.dialect
                    reader = (
                        f"read_csv({string(str(file))}, delim = {string(dialect.delimiter)}, "
                        f"header = {literal(dialect.header)}, "
                        f"decimal_separator = {string(dialect.decimal_separator)})"
                    )
                connection.execute(f"create table {table} as select * from {reader}")
                files += 1
    return time.perf_counter() - started, files


def main() -> None:
    landing, database = Path(sys.argv[1]), Path(sys.argv[2])
    seconds, files = duckdb_alone(landing, database)
    database.unlink(missing_ok=True)
    print(json.dumps({"duckdb_seconds": round(seconds, 3), "files": files}))


if __name__ == "__main__":
    main()
