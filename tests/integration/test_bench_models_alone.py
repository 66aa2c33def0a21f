"""`crm bench` times every dbt model of the night again alone (pipelines.bench.alone): real dbt on a copy of the
session's night, one model at a time, and the marts as the night left them."""

import json
import os
import shutil
import subprocess
import sys

from pipelines.sql import qualified
from tests.conftest import AS_OF, open_warehouse, same_figures, world_environ


def _marts(path) -> dict[str, list]:
    """Every mart table's rows, in order of all their columns, from the warehouse at ``path``."""
    with open_warehouse(path) as connection:
        tables = connection.sql(
            "select table_name from duckdb_tables() "
            "where database_name = 'marts_db' and schema_name = 'marts' order by table_name"
        ).fetchall()
        return {
            table: connection.sql(f"select * from {qualified('marts', table)} order by all").fetchall()
            for (table,) in tables
        }


def test_every_model_of_the_night_is_timed_again_alone_and_the_marts_stay_as_the_night_left_them(
    pipeline_run, tmp_path
):
    world, result = pipeline_run
    assert result.success
    root = tmp_path / "world"
    shutil.copytree(world.root / "warehouse", root / "warehouse")
    warehouse = root / "warehouse" / "crm.duckdb"
    before = _marts(warehouse)
    # an order's facts lost: an incremental build (nothing changed since the night) would not bring them back
    with open_warehouse(warehouse, read_only=False) as connection:
        order = connection.execute("select min(order_id) from marts.fct_orders").fetchone()[0]
        for table in ("fct_orders", "fct_order_lines"):
            connection.execute(f"delete from {qualified('marts', table)} where order_id = ?", [order])

    environ = {**os.environ, **world_environ(root)}
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.bench.alone", AS_OF.isoformat()],
        env=environ, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    models = json.loads(done.stdout.strip().splitlines()[-1])["models"]

    # both dbt steps, named as the night names its stages, each model once with its own seconds
    assert {"dbt_models: fct_orders", "dbt_models: int_identity_records_resolved"} <= set(models)
    assert {"dbt_score_models: customer_360", "dbt_score_models: olap_sales_rollup"} <= set(models)
    assert not {name for name in models if name.startswith("dbt_models: ")} & {
        name.replace("dbt_score_models: ", "dbt_models: ") for name in models
        if name.startswith("dbt_score_models: ")
    }  # fmt: skip
    assert all(seconds > 0 for seconds in models.values())
    # the models rebuilt the marts whole from the same tables
    after = _marts(warehouse)
    assert after.keys() == before.keys() and "fct_orders" in after
    changed = [
        table
        for table in before
        if len(after[table]) != len(before[table]) or not all(map(same_figures, before[table], after[table]))
    ]
    assert not changed, f"the marts changed: {changed}"
