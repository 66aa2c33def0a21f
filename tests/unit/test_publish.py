import json
import os
import time
from datetime import date
from pathlib import Path

import duckdb

from pipelines.publish.snapshot import current_snapshot, point_to, prune_snapshots, snapshot_name, write_snapshot


def warehouse(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(tmp_path / "work.duckdb"))
    for schema in ("raw", "staging", "marts", "ml"):
        connection.execute(f"create schema {schema}")
    connection.execute("create table raw.orders as select 1 as id")
    connection.execute("create table marts.dim_customers as select range as customer_id from range(5)")
    connection.execute("create view staging.v as select * from raw.orders")
    connection.execute("create table ml.rfm_scores as select 'C1' as customer_id")
    connection.execute("create schema meta")
    connection.execute("create table meta.quarantine as select 'f.csv' as file, '{\"email\": \"a@b.c\"}' as record")
    return connection


def test_the_snapshot_copies_marts_and_scores_and_leaves_raw_and_staging_behind(tmp_path: Path):
    target = tmp_path / "published" / snapshot_name(date(2026, 6, 30), "abcdef123456")
    rows = write_snapshot(warehouse(tmp_path), target)
    assert rows == {"marts.dim_customers": 5, "meta.quarantine": 1, "ml.rfm_scores": 1}
    assert target.name == "crm_2026-06-30_abcdef12.duckdb"
    with duckdb.connect(str(target), read_only=True) as snapshot:
        assert snapshot.execute("select count(*) from marts.dim_customers").fetchone()[0] == 5
        schemas = {row[0] for row in snapshot.execute("select schema_name from information_schema.schemata").fetchall()}
        quarantine_columns = [row[0] for row in snapshot.execute("describe meta.quarantine").fetchall()]
    assert "raw" not in schemas and "staging" not in schemas
    assert quarantine_columns == ["file"], "the quarantined row's contact details are not published"
    assert not list(target.parent.glob("*.partial"))


def test_the_pointer_names_the_current_snapshot_and_is_replaced_whole(tmp_path: Path):
    assert current_snapshot(tmp_path) is None
    point_to(tmp_path, tmp_path / "crm_a.duckdb", as_of=date(2026, 6, 29), run_id="run-a")
    point_to(tmp_path, tmp_path / "crm_b.duckdb", as_of=date(2026, 6, 30), run_id="run-b")
    pointer = current_snapshot(tmp_path)
    assert pointer["snapshot"] == "crm_b.duckdb" and pointer["as_of"] == "2026-06-30"
    assert pointer["path"] == str(tmp_path / "crm_b.duckdb")
    assert json.loads((tmp_path / "current.json").read_text())["run_id"] == "run-b"
    assert not (tmp_path / "current.tmp").exists()


def test_pruning_keeps_the_newest_and_never_the_current_one(tmp_path: Path):
    now = time.time()
    for age, name in enumerate(["crm_e", "crm_d", "crm_c", "crm_b", "crm_a"]):
        path = tmp_path / f"{name}.duckdb"
        path.write_bytes(b"")
        os.utime(path, (now - age * 60, now - age * 60))
    point_to(tmp_path, tmp_path / "crm_a.duckdb", as_of=date(2026, 6, 30), run_id="rollback")
    removed = prune_snapshots(tmp_path, keep=2)
    assert sorted(path.name for path in removed) == ["crm_b.duckdb", "crm_c.duckdb"]
    assert sorted(path.name for path in tmp_path.glob("*.duckdb")) == ["crm_a.duckdb", "crm_d.duckdb", "crm_e.duckdb"]
