"""An incremental night: one new day of exports on top of the history loads only the new files, and what it
builds equals a full rebuild on every file at once (the session's ``pipeline_run``)."""

import json
import math
import shutil
from datetime import timedelta

import duckdb
import pytest

from pipelines.bench.worlds import split_off_day
from pipelines.resources import marts_path_of
from pipelines.sql import identifier, qualified, string
from tests.conftest import AS_OF, open_warehouse, run_nightly, world_environ

pytestmark = pytest.mark.integration

NEW_DAY = AS_OF - timedelta(days=1)
# Columns that say which file, run or moment a row came from: they differ between the two routes by design.
# What moved since the night before, and the history of runs and files: a full rebuild has no night before (and
# one run, one version of each file), so it cannot hold the same.
BETWEEN_RUNS = {
    ("marts", "rpt_segment_migration"),
    ("marts", "rpt_model_history"),
    ("marts", "rpt_file_health"),
}
# ... and in these tables, the columns that compare with the night before (the KPIs' current values must agree)
BETWEEN_RUNS_COLUMNS = {("marts", "rpt_loyalty_kpis"): ("previous_value", "comparison")}
LINEAGE = ("source_file", "source_row_number", "_file", "_row_number", "_run_id", "run_id", "model_run_id")


def _same(left: object, right: object) -> bool:
    """Equal, floats to 9 significant digits: DuckDB sums doubles in parallel, in no fixed order, so two runs
    on the same rows may differ in the last bits (and a fitted parameter with them); JSON text is compared as data."""
    if isinstance(left, float) and isinstance(right, float):
        return math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(left, str) and isinstance(right, str) and left[:1] in "[{" and left != right:
        try:
            return _same(json.loads(left), json.loads(right))
        except ValueError:
            return False
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(map(_same, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_same(left[key], right[key]) for key in left)
    return left == right


def _comparable(connection: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[str]:
    return [
        name
        for (name,) in connection.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
            "order by ordinal_position",
            [schema, table],
        ).fetchall()
        if name not in LINEAGE and not name.endswith(("_at", "model_run_id"))
    ]


def test_one_new_day_loads_only_its_files_and_equals_a_full_rebuild(pipeline_run, tmp_path):
    world, full = pipeline_run
    assert full.success
    root = tmp_path / "incremental"
    shutil.copytree(world.landing, root / "landing")
    day_files = root / "day"
    new_orders = split_off_day(root / "landing", NEW_DAY.isoformat())
    assert new_orders > 0, "the demo world sells every day"
    day_files.mkdir()
    for name in ("orders", "order_lines"):
        shutil.move(root / "landing" / "erp" / f"{name}_{NEW_DAY}.csv", day_files / f"{name}_{NEW_DAY}.csv")

    environ = world_environ(root)
    history = run_nightly(environ, NEW_DAY)
    assert history.success
    for path in day_files.iterdir():
        shutil.move(path, root / "landing" / "erp" / path.name)
    night = run_nightly(environ, AS_OF)
    assert night.success

    warehouse = root / "warehouse" / "crm.duckdb"
    with open_warehouse(warehouse) as connection:
        loaded_tonight = connection.execute(
            "select file from meta.load_ledger where run_id = ? and status = 'loaded' order by file", [night.run_id]
        ).fetchall()
        assert loaded_tonight == [(f"erp/order_lines_{NEW_DAY}.csv",), (f"erp/orders_{NEW_DAY}.csv",)]
        rebuilt = world.root / "warehouse" / "crm.duckdb"
        connection.execute(f"attach {string(str(rebuilt))} as rebuilt (read_only)")
        connection.execute(f"attach {string(str(marts_path_of(rebuilt)))} as rebuilt_marts (read_only)")
        # (tonight's catalog, the full rebuild's) of each schema: the marts live in a file of their own
        catalogs = {"marts": ("marts_db", "rebuilt_marts"), "ml": ("crm", "rebuilt")}
        tables = connection.execute(
            "select table_schema, table_name from information_schema.tables "
            "where ((table_catalog = 'crm' and table_schema = 'ml') or "
            "(table_catalog = 'marts_db' and table_schema = 'marts')) and table_type = 'BASE TABLE' "
            "order by 1, 2"
        ).fetchall()
        assert len(tables) > 20
        differing = {}
        for schema, table in tables:
            if (schema, table) in BETWEEN_RUNS:
                continue
            names = [
                name
                for name in _comparable(connection, schema, table)
                if name not in BETWEEN_RUNS_COLUMNS.get((schema, table), ())
            ]
            if schema == "ml" and table == "model_runs":  # when and how long it ran differ, what it found not
                names = ["model", "as_of", "parameters", "metrics", "baseline_metrics", "score_source", "rows_used"]
            columns = ", ".join(identifier(name) for name in names)
            # the incremental warehouse also keeps the scores of the night before: compare tonight's
            this_night = " where as_of = $as_of" if "as_of" in names else ""
            sides = [
                connection.execute(
                    f"select {columns} from {side}.{qualified(schema, table)}{this_night} order by all",
                    {"as_of": AS_OF} if this_night else {},
                ).fetchall()
                for side in catalogs[schema]
            ]
            if len(sides[0]) != len(sides[1]) or not all(map(_same, *sides)):
                unequal = sum(not _same(a, b) for a, b in zip(*sides, strict=False))
                differing[f"{schema}.{table}"] = unequal or "row count"
    assert differing == {}, f"the incremental night differs from the full rebuild in {differing}"
