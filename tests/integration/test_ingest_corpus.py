"""Every file of the ingest corpus gets its expected outcome, and rows read = loaded + quarantined for each."""

from pathlib import Path

import duckdb
import pytest
import yaml

from pipelines.ingest.contracts import load_contracts
from pipelines.ingest.loader import load_table

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "ingest_corpus"
CASES = sorted(path for path in CORPUS.iterdir() if path.is_dir())


def test_the_corpus_has_at_least_fifteen_cases():
    assert len(CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_corpus_file_gets_its_expected_outcome(case: Path):
    expected = yaml.safe_load((case / "expected.yaml").read_text(encoding="utf-8"))
    [contract] = load_contracts(case / "contracts")
    connection = duckdb.connect()
    [load] = load_table(connection, contract, case / "landing", run_id="corpus")

    assert load.status == expected["status"], load.message
    assert load.rows_read == load.rows_loaded + load.rows_quarantined
    assert load.rows_read == expected["rows_read"]
    assert load.rows_loaded == expected["rows_loaded"]
    assert connection.execute(f"select count(*) from raw.{contract.name}").fetchone()[0] == load.rows_loaded
    ledger = connection.execute(
        "select rows_read, rows_loaded, rows_quarantined, status from meta.load_ledger"
    ).fetchall()
    assert ledger == [(load.rows_read, load.rows_loaded, load.rows_quarantined, load.status)]
    if expected["status"] == "refused":
        assert expected["message"] in load.message
        assert load.rows_quarantined == expected["rows_quarantined"]
        return
    quarantined = connection.execute(
        "select row_number, column_name, reason from meta.quarantine order by row_number, column_name"
    ).fetchall()
    assert len(quarantined) == len(expected["quarantined"]), quarantined
    for (row, column, reason), wanted in zip(quarantined, expected["quarantined"], strict=True):
        assert (row, column) == (wanted["row"], wanted["column"]), (row, column, reason)
        assert wanted["reason"] in reason
    if "unknown_columns" in expected:
        assert list(load.unknown_columns) == expected["unknown_columns"]
    if "values" in expected:
        rows = connection.execute(expected["values"]["sql"]).fetchall()
        assert [list(row) for row in rows] == expected["values"]["rows"]
