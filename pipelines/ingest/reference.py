"""The reference of the canonical tables (docs/canonical_tables.md), written from canonical.yaml so it stays true."""

from __future__ import annotations

from pipelines.ingest.contracts import canonical_tables

INTRO = """# Canonical tables

The warehouse's own shape for customer data, whatever system exported it. Source contracts
([contracts.md](contracts.md)) map export files onto these tables; the dbt staging models read them from schema
`raw` (table `<source>__<table>`). Only sales is required: `erp/orders` and `erp/order_lines`, which one
invoice-line export can feed on its own. Every other table is optional, and an absent one is an empty table of
this shape: what it adds is listed under "feeds". `crm doctor` says which capabilities your data supports.

Every raw table also carries the lineage of each row: `_file` and `_row_number` (where it came from),
`_contract` (which contract loaded it), `_run_id` and `_extra` (the file's columns no contract column claims).

This page is generated from `pipelines/ingest/canonical.yaml` (`python -m pipelines.ingest.reference`).
"""


def markdown() -> str:
    """The reference page: every table and column, which are required, and what each table feeds."""
    from pipelines.readiness import CAPABILITIES

    titles = {capability.key: capability.name for capability in CAPABILITIES}
    parts = [INTRO, "| capability | its minimal data | tables |\n|---|---|---|"]
    for capability in CAPABILITIES:
        tables = [t.label for t in canonical_tables().values() if capability.key in t.capabilities]
        parts.append(f"| {capability.name} | {capability.needs} | {', '.join(tables)} |")
    parts.append("")
    for table in canonical_tables().values():
        key = ", ".join(f"`{name}`" for name in table.primary_key)
        parts.append(f"## {table.label}\n\n{table.description}\n")
        parts.append(f"Key: {key}. Feeds: {', '.join(titles[name] for name in table.capabilities)}.\n")
        parts.append("| column | type | required | meaning |\n|---|---|---|---|")
        for column in table.columns:
            required = "yes" if column.required else ""
            parts.append(f"| `{column.name}` | {column.type} | {required} | {column.description} |")
        parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    from pipelines.settings import PROJECT_ROOT

    (PROJECT_ROOT / "docs" / "canonical_tables.md").write_text(markdown(), encoding="utf-8")
