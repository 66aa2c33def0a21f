"""Worlds of the bench and the tests: where a world's night reads and writes, and one day of its orders split off
into files of their own (the incremental night's new day)."""

from __future__ import annotations

import csv
from pathlib import Path


def world_environ(root: Path) -> dict[str, str]:
    """The settings variables that point everything a night reads and writes at ``root``."""
    return {
        "CRM_LANDING_DIR": str(root / "landing"),
        "CRM_WAREHOUSE_PATH": str(root / "warehouse" / "crm.duckdb"),
        "CRM_PUBLISHED_DIR": str(root / "published"),
        "CRM_DAGSTER_HOME": str(root / "dagster"),
    }


def split_off_day(landing: Path, day: str) -> int:
    """Move the orders of ``day`` and their lines out of the ERP exports into files of their own; return them."""
    erp = landing / "erp"
    with (erp / "orders.csv").open(encoding="utf-8", newline="") as handle:
        header, *orders = list(csv.reader(handle, delimiter=";"))
    ordered_at = header.index("ordered_at")
    new = [row for row in orders if row[ordered_at].startswith(day)]
    new_numbers = {row[0] for row in new}
    with (erp / "order_lines.csv").open(encoding="utf-8", newline="") as handle:
        line_header, *lines = list(csv.reader(handle, delimiter=";"))
    for name, head, rows, moved in (
        ("orders", header, orders, new),
        ("order_lines", line_header, lines, [row for row in lines if row[0] in new_numbers]),
    ):
        kept = [row for row in rows if row[0] not in new_numbers]
        for target, content in ((erp / f"{name}.csv", kept), (erp / f"{name}_{day}.csv", moved)):
            with target.open("w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle, delimiter=";", lineterminator="\n")
                writer.writerow(head)
                writer.writerows(content)
    return len(new)
