"""The marts' own DuckDB file beside the warehouse: every connection reads ``marts.<table>`` from it and creates
its own tables in the warehouse, and the first dbt step drops the marts a version before the marts file left in
the warehouse file (stale tables for whoever opens that file alone, and the disk of a second copy)."""

from pathlib import Path

import duckdb

from pipelines.resources import Warehouse, attach_marts, marts_path_of


def warehouse_at(path: Path) -> Warehouse:
    return Warehouse(path=str(path), landing_dir=str(path.parent / "landing"), published_dir=str(path.parent / "pub"))


def test_the_marts_file_sits_beside_the_warehouse_under_its_name():
    assert marts_path_of("/data/warehouse/crm.duckdb") == Path("/data/warehouse/crm_marts.duckdb")
    assert marts_path_of("/data/shop.db") == Path("/data/shop.db_marts.duckdb")


def test_a_connection_reads_the_marts_file_and_writes_its_own_tables_in_the_warehouse(tmp_path: Path):
    path = tmp_path / "crm.duckdb"
    with warehouse_at(path).connect() as connection:
        connection.execute("create table marts.dim_customers as select 'C1' as customer_id")
        connection.execute("create schema ml")
        connection.execute("create table ml.scores as select 'C1' as customer_id")
        connection.execute("create table notes as select 1 as id")
    with duckdb.connect(str(marts_path_of(path)), read_only=True) as marts:
        assert marts.execute("select schema_name, table_name from duckdb_tables()").fetchall() == [
            ("marts", "dim_customers")
        ]
    with duckdb.connect(str(path), read_only=True) as own:
        assert sorted(own.execute("select schema_name, table_name from duckdb_tables()").fetchall()) == [
            ("main", "notes"),
            ("ml", "scores"),
        ]


def test_read_only_before_any_dbt_run_there_is_no_marts_file_to_attach(tmp_path: Path):
    path = tmp_path / "crm.duckdb"
    duckdb.connect(str(path)).close()
    with duckdb.connect(str(path), read_only=True) as connection:
        assert attach_marts(connection, path, read_only=True) is False
    assert not marts_path_of(path).exists()


def test_the_first_dbt_step_drops_the_marts_an_older_version_left_in_the_warehouse(tmp_path: Path):
    path = tmp_path / "crm.duckdb"
    with duckdb.connect(str(path)) as old:
        old.execute("create schema marts")
        old.execute("create table marts.dim_customers as select 'old' as customer_id")
    warehouse = warehouse_at(path)
    with warehouse.connect() as connection:
        connection.execute("create table marts.dim_customers as select 'new' as customer_id")
    warehouse.wait_until_free()
    with warehouse.connect(read_only=True) as connection:
        assert connection.execute("select customer_id from marts.dim_customers").fetchall() == [("new",)]
        assert connection.execute(
            "select count(*) from duckdb_schemas() where database_name = 'crm' and schema_name = 'marts'"
        ).fetchone() == (0,)


def test_dbt_finds_the_marts_file_by_the_same_rule_when_run_by_hand(tmp_path: Path):
    """profiles.yml derives the marts file from CRM_WAREHOUSE_PATH when CRM_MARTS_PATH is not set (dbt run by
    hand): the same file as the pipeline's rule."""
    import os
    import re
    import subprocess
    import sys

    from pipelines.transform.project import DBT_PROJECT_DIR

    dbt = Path(sys.executable).with_name("dbt")
    for warehouse in (tmp_path / "crm.duckdb", tmp_path / "shop.db"):
        environ = {key: value for key, value in os.environ.items() if key != "CRM_MARTS_PATH"}
        completed = subprocess.run(
            [str(dbt), "debug", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
             "--log-path", str(tmp_path / "logs")],
            capture_output=True, text=True, env={**environ, "CRM_WAREHOUSE_PATH": str(warehouse)}, timeout=300,
        )  # fmt: skip
        attached = re.search(r"attach: \[\{'path': '([^']*)'", completed.stdout)
        assert attached, completed.stdout[-2000:]
        assert Path(attached.group(1)) == marts_path_of(warehouse)
