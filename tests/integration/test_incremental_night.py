"""Nights on top of a history equal a full rebuild: a night after a history of late, corrected and withdrawn
deliveries loads only the files that changed, and what it builds equals a full rebuild on every file at once (the
session's ``pipeline_run``). This is the equivalence every incremental shortcut must keep."""

import csv
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from pipelines.bench.worlds import split_off_day
from pipelines.ingest.unload import unload_file
from pipelines.resources import marts_path_of
from pipelines.sql import identifier, qualified, string
from tests.conftest import AS_OF, open_warehouse, run_nightly, same_figures, world_environ

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


# The history night's late month of exchange rates, and the window of returns delivered late
LATE_MONTH = NEW_DAY.replace(day=1)
# Settings the history night ran with and the night did not: every figure they shaped is rebuilt
HISTORY_SETTINGS = {"CRM_TIER_GOLD_MIN_SPEND": "500", "CRM_CAMPAIGN_ATTRIBUTION_DAYS": "7"}
# CSV dialects of the demo exports: the ERP's, and the CRM's (SuiteCRM: quoted, BOM, CRLF)
ERP_CSV = {"delimiter": ";", "lineterminator": "\n", "encoding": "utf-8"}
CRM_CSV = {"delimiter": ",", "lineterminator": "\r\n", "encoding": "utf-8-sig", "quoting": csv.QUOTE_ALL}


def _move_rows(path: Path, target: Path | None, late: Callable[[dict[str, str]], bool], dialect: dict) -> list[dict]:
    """Take the rows of the CSV file ``path`` that are ``late`` out of it, into ``target`` (same header and dialect)
    unless it is None; return them."""
    encoding = dialect["encoding"]
    writer_options = {key: value for key, value in dialect.items() if key != "encoding"}
    with path.open(encoding=encoding, newline="") as handle:
        header, *rows = list(csv.reader(handle, delimiter=dialect["delimiter"]))
    records = [dict(zip(header, row, strict=True)) for row in rows]
    moved = [record for record in records if late(record)]
    for file, content in ((path, [r for r in records if not late(r)]), (target, moved)):
        if file is None:
            continue
        with file.open("w", encoding=encoding, newline="") as handle:
            writer = csv.writer(handle, **writer_options)
            writer.writerow(header)
            writer.writerows([record[name] for name in header] for record in content)
    return moved


def _withdrawn_orders(erp: Path, day: str) -> list[str]:
    """Two orders exported by mistake (copies of the day's first orders under new numbers, with their lines), in
    files of their own; their numbers."""
    with (erp / "orders.csv").open(encoding="utf-8", newline="") as handle:
        header, *orders = list(csv.reader(handle, delimiter=";"))
    copies = [row for row in orders if row[header.index("ordered_at")].startswith(day)][:2]
    numbers = {row[0]: "WX" + row[0][2:] for row in copies}
    with (erp / "order_lines.csv").open(encoding="utf-8", newline="") as handle:
        line_header, *lines = list(csv.reader(handle, delimiter=";"))
    for name, head, rows in (("orders", header, copies), ("order_lines", line_header, lines)):
        with (erp / f"{name}_withdrawn.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, delimiter=";", lineterminator="\n")
            writer.writerow(head)
            writer.writerows([numbers[row[0]], *row[1:]] for row in rows if row[0] in numbers)
    return sorted(numbers.values())


def _differences(connection: duckdb.DuckDBPyConnection) -> dict[str, object]:
    """The tables of tonight's scores and marts that differ from the attached full rebuild's (``rebuilt``,
    ``rebuilt_marts``), with how many rows differ."""
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
        # the warehouse also keeps the scores of the nights before: compare tonight's
        this_night = " where as_of = $as_of" if "as_of" in names else ""
        sides = [
            connection.execute(
                f"select {columns} from {side}.{qualified(schema, table)}{this_night} order by all",
                {"as_of": AS_OF} if this_night else {},
            ).fetchall()
            for side in catalogs[schema]
        ]
        if len(sides[0]) != len(sides[1]) or not all(map(same_figures, *sides)):
            unequal = sum(not same_figures(a, b) for a, b in zip(*sides, strict=False))
            differing[f"{schema}.{table}"] = unequal or "row count"
    return differing


def test_a_night_after_late_corrected_and_withdrawn_deliveries_equals_a_full_rebuild(pipeline_run, tmp_path):
    """The history night (the day before) runs with other settings on exports that lack: the last day's orders, the
    last month's exchange rates (the rates file is re-delivered whole, corrected, under its name), the returns of
    the last month and the CRM contacts without an ERP customer number (delivered late in files of their own: they
    link records resolution had kept apart); and it loads two orders exported by mistake, which `crm unload` takes
    back before the night. The night then loads only what changed and equals the full rebuild."""
    world, full = pipeline_run
    assert full.success
    root = tmp_path / "incremental"
    shutil.copytree(world.landing, root / "landing")
    landing, later = root / "landing", root / "later"
    (later / "erp").mkdir(parents=True)
    (later / "crm").mkdir()
    new_orders = split_off_day(landing, NEW_DAY.isoformat())
    assert new_orders > 0, "the demo world sells every day"
    for name in ("orders", "order_lines"):
        shutil.move(landing / "erp" / f"{name}_{NEW_DAY}.csv", later / "erp" / f"{name}_{NEW_DAY}.csv")
    shutil.copy(landing / "erp" / "exchange_rates.csv", later / "erp" / "exchange_rates.csv")
    late_rates = _move_rows(
        landing / "erp" / "exchange_rates.csv", None, lambda rate: rate["rate_month"] >= LATE_MONTH.isoformat(), ERP_CSV
    )
    late_returns = _move_rows(
        landing / "erp" / "returns.csv",
        later / "erp" / "returns_late.csv",
        lambda row: row["returned_on"] >= LATE_MONTH.isoformat(),
        ERP_CSV,
    )
    late_contacts = _move_rows(
        landing / "crm" / "contacts.csv",
        later / "crm" / "contacts_late.csv",
        lambda contact: not contact["ERP Customer No"],
        CRM_CSV,
    )
    assert late_rates and late_returns and late_contacts, "the demo world has rates, returns and prospects to delay"
    withdrawn = _withdrawn_orders(landing / "erp", (NEW_DAY - timedelta(days=1)).isoformat())
    assert withdrawn

    environ = world_environ(root)
    history = run_nightly({**environ, **HISTORY_SETTINGS}, NEW_DAY)
    assert history.success
    warehouse = root / "warehouse" / "crm.duckdb"
    late_contact_ids = [contact["ID"] for contact in late_contacts]
    with open_warehouse(warehouse) as connection:
        # the history night did hold what the night must take back or add
        assert connection.execute(
            "select count(*) from marts.fct_orders where order_id in (select unnest($ids))", {"ids": withdrawn}
        ).fetchone() == (len(withdrawn),)
        assert connection.execute(
            "select count(*) from marts.dim_crm_contacts where contact_id in (select unnest($ids))",
            {"ids": late_contact_ids},
        ).fetchone() == (0,)
    with open_warehouse(warehouse, read_only=False) as connection:
        for name in ("orders", "order_lines"):
            unload_file(connection, landing, f"erp/{name}_withdrawn.csv")
    for name in ("orders", "order_lines"):
        (landing / "erp" / f"{name}_withdrawn.csv").unlink()
    for folder in later.iterdir():
        for path in folder.iterdir():
            shutil.move(path, landing / folder.name / path.name)
    night = run_nightly(environ, AS_OF)
    assert night.success

    with open_warehouse(warehouse) as connection:
        loaded_tonight = connection.execute(
            "select file from meta.load_ledger where run_id = ? and status = 'loaded' order by file", [night.run_id]
        ).fetchall()
        # the order facts were rebuilt only for the orders that could have moved (dbt_project/macros/rebuild_plan.sql)
        assert connection.execute("select build_mode from intermediate.int_sales_rebuild_plan").fetchone() == (
            "incremental",
        )
        assert loaded_tonight == [
            ("crm/contacts_late.csv",),
            ("erp/exchange_rates.csv",),
            (f"erp/order_lines_{NEW_DAY}.csv",),
            (f"erp/orders_{NEW_DAY}.csv",),
            ("erp/returns_late.csv",),
        ]
        rebuilt = world.root / "warehouse" / "crm.duckdb"
        connection.execute(f"attach {string(str(rebuilt))} as rebuilt (read_only)")
        connection.execute(f"attach {string(str(marts_path_of(rebuilt)))} as rebuilt_marts (read_only)")
        differing = _differences(connection)
    assert differing == {}, f"the night differs from the full rebuild in {differing}"
