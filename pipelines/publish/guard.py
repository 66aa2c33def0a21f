"""The publish guard: a new snapshot whose headline figures moved too far from the current one's is held back.

Before ``current.json`` moves to a new snapshot, its headline figures (customers with a purchase, net revenue,
orders, average order value) are compared with the current snapshot's. One that changed by more than the guard
factor, up or down, holds the new snapshot back: it is written but not made current, ``held.json`` beside
``current.json`` says which run, which figures and why, and someone who checked the data accepts it
(:func:`accept_held`, ``crm publish --accept RUN``) or corrects the files and runs again. :func:`rollback`
(``crm publish --rollback``) makes the previously published snapshot current again; ``history.json`` keeps the
order in which snapshots were made current.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from pipelines import sql
from pipelines.publish.snapshot import current_snapshot, point_to, write_json

HELD_FILE = "held.json"
HISTORY_FILE = "history.json"

# name -> (words for a person, SQL over a catalog's marts); the guard compares the first four.
FIGURES = {
    "customers": (
        "customers with a purchase",
        "select count(*) filter (where has_purchased) from {c}.marts.dim_customers",
    ),
    "net_revenue": ("net revenue", "select coalesce(sum(net_revenue), 0)::double from {c}.marts.fct_orders"),
    "orders": ("orders", "select count(*) from {c}.marts.fct_orders"),
    "average_order_value": (
        "average order value",
        "select (sum(net_revenue) / nullif(count(*), 0))::double from {c}.marts.fct_orders",
    ),
    "net_revenue_12m": (
        "net revenue over the last 12 months",
        "select coalesce(sum(trailing_12m_net_revenue), 0)::double from {c}.marts.dim_customers",
    ),
}
GUARDED = ("customers", "net_revenue", "orders", "average_order_value")


class PublishError(RuntimeError):
    """A publish, accept or rollback that cannot be done; the message says why and what to do."""


def headline_figures(connection: duckdb.DuckDBPyConnection, catalog: str) -> dict[str, float | None]:
    """The headline figures of the snapshot attached as ``catalog`` (None for a figure its tables cannot give)."""
    figures: dict[str, float | None] = {}
    for name, (_, query) in FIGURES.items():
        try:
            value = connection.execute(query.format(c=sql.identifier(catalog))).fetchone()[0]
        except duckdb.CatalogException:  # a snapshot of an older layout, or without sales yet
            value = None
        figures[name] = None if value is None else int(value) if isinstance(value, int) else float(value)
    return figures


def guard_reasons(current: dict, previous: dict | None, factor: float) -> list[dict]:
    """The guarded figures that changed by more than ``factor`` (up or down) since ``previous``: figure, words,
    previous, current, ratio (None when one side is zero or the sign changed)."""
    if not previous:
        return []
    reasons = []
    for name in GUARDED:
        before, now = previous.get(name), current.get(name)
        if before is None or now is None or before == now:
            continue
        if before == 0 or now == 0 or (before < 0) != (now < 0):
            ratio = None
        else:
            ratio = max(abs(now / before), abs(before / now))
            if ratio <= factor:
                continue
        reasons.append({"figure": name, "words": FIGURES[name][0], "previous": before, "current": now, "ratio": ratio})
    return reasons


def responsible_rows(connection: duckdb.DuckDBPyConnection, run_id: str, catalog: str, lines: int = 5) -> dict:
    """What could explain a jump: the files this run loaded (meta.load_ledger) with their rows, and the largest
    order lines of the new snapshot by amount with the file and record they came from."""
    files = connection.execute(
        "select file, status, rows_read, rows_loaded, rows_quarantined from meta.load_ledger "
        "where run_id = ? order by rows_loaded desc, file",
        [run_id],
    ).fetchall()
    largest = connection.execute(
        f"""select source_file, source_row_number, order_line_id, quantity, net_revenue::double
        from {sql.identifier(catalog)}.marts.fct_order_lines order by abs(net_revenue) desc nulls last limit ?""",
        [lines],
    ).fetchall()
    return {
        "files": [
            dict(zip(("file", "status", "rows_read", "rows_loaded", "rows_quarantined"), row, strict=True))
            for row in files
        ],
        "largest_order_lines": [
            dict(zip(("file", "record", "order_line_id", "quantity", "net_revenue"), row, strict=True))
            for row in largest
        ],
    }


def _number(value: float | None) -> str:
    if value is None:
        return "nothing"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def held_message(held: dict, factor: float) -> str:
    """The sentences a person reads when a snapshot is held back: which figure, both values, the factor, and the
    files and rows that could explain it, and what to do."""
    sentences = []
    for reason in held["reasons"]:
        before, now = reason["previous"], reason["current"]
        if reason["ratio"] is not None:
            change = f"{'up' if abs(now) > abs(before) else 'down'} {reason['ratio']:,.1f} times"
        else:
            change = "to or from zero" if not before or not now else "it changed sign"
        sentences.append(
            f"{reason['words'].capitalize()} went from {_number(before)} to {_number(now)} ({change}), beyond the "
            f"publish guard factor {factor:g}."
        )
    files = held["responsible"]["files"]
    if files:
        listed = "; ".join(
            f"{file['file']} ({file['status']}: {_number(file['rows_read'])} rows read, "
            f"{_number(file['rows_loaded'])} loaded, {_number(file['rows_quarantined'])} quarantined)"
            for file in files
        )
        sentences.append(f"Files loaded by this run: {listed}.")
    else:
        sentences.append("This run loaded no new file: the change comes from files loaded earlier or a new contract.")
    lines = held["responsible"]["largest_order_lines"]
    if lines:
        listed = "; ".join(
            f"{line['file']} record {line['record']} (order line {line['order_line_id']}, quantity "
            f"{_number(line['quantity'])}, net revenue {_number(line['net_revenue'])})"
            for line in lines
        )
        sentences.append(f"Largest order lines: {listed}.")
    sentences.append(
        f"The new snapshot {held['snapshot']} is written but not published; the dashboards still show the previous "
        f"one. If the figures are right, publish it with `crm publish --accept {held['run_id']}`; if not, correct or "
        "remove the file and run again."
    )
    return " ".join(sentences)


# --- held.json and history.json -------------------------------------------------------------------------------------


def read_held(published_dir: Path) -> dict | None:
    path = Path(published_dir) / HELD_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def hold(published_dir: Path, held: dict) -> Path:
    """Record the held snapshot in held.json (a later held run replaces an earlier one)."""
    return write_json(Path(published_dir) / HELD_FILE, {**held, "held_at": _now()})


def read_history(published_dir: Path) -> dict:
    """``{"published": [...], "rolled_back": [...]}``: the snapshots in the order they were made current (the
    last is the current one) and those a rollback took back. A folder published to before the history existed
    starts from its current snapshot."""
    path = Path(published_dir) / HISTORY_FILE
    current = current_snapshot(Path(published_dir))
    entry = None if current is None else {key: current.get(key) for key in _ENTRY_KEYS}
    if not path.exists():
        return {"published": [entry] if entry else [], "rolled_back": []}
    history = json.loads(path.read_text(encoding="utf-8"))
    published = history.setdefault("published", [])
    # A crash between writing current.json and the history: the pointer is the truth, the history catches up.
    if entry and (not published or published[-1].get("snapshot") != entry["snapshot"]):
        published[:] = [item for item in published if item.get("snapshot") != entry["snapshot"]] + [entry]
    return history


# "contacts": the snapshot's contacts file (pipelines/publish/contacts.py), which goes wherever its snapshot goes
_ENTRY_KEYS = ("run_id", "as_of", "snapshot", "published_at", "figures", "contacts")


def make_current(published_dir: Path, entry: dict, details: dict | None = None, history: dict | None = None) -> dict:
    """Point current.json at ``entry``'s snapshot (and its contacts file) and append it to the history; return the
    pointer's content."""
    published_dir = Path(published_dir)
    history = read_history(published_dir) if history is None else history
    point_to(
        published_dir,
        published_dir / entry["snapshot"],
        as_of=date.fromisoformat(str(entry["as_of"])),
        run_id=entry["run_id"],
        details={"figures": entry.get("figures"), "contacts": entry.get("contacts"), **(details or {})},
    )
    pointer = current_snapshot(published_dir)
    history["published"].append(
        {**{key: entry.get(key) for key in _ENTRY_KEYS}, "published_at": pointer["published_at"]}
    )
    write_json(published_dir / HISTORY_FILE, history)
    return pointer


def accept_held(published_dir: Path, run_id: str) -> dict:
    """Make the held snapshot of run ``run_id`` current (``crm publish --accept RUN``), record it in the history
    and remove held.json; return the new pointer. ``run_id`` may be the run id's first characters."""
    published_dir = Path(published_dir)
    held = read_held(published_dir)
    if held is None:
        raise PublishError(f"No snapshot is held back in {published_dir}: there is nothing to accept.")
    if not run_id or not held["run_id"].startswith(run_id):
        raise PublishError(
            f"The held snapshot is run {held['run_id']}'s, not {run_id}'s: accept it with "
            f"`crm publish --accept {held['run_id']}`."
        )
    if not (published_dir / held["snapshot"]).exists():
        raise PublishError(f"The held snapshot file {held['snapshot']} is gone from {published_dir}: run again.")
    pointer = make_current(published_dir, held, {"changes": held.get("changes"), "accepted_at": _now()})
    (published_dir / HELD_FILE).unlink()
    return pointer


def rollback(published_dir: Path) -> dict:
    """Make the previously published snapshot current again (``crm publish --rollback``); the one taken back is
    remembered in the history's ``rolled_back``. Each call goes one further back; an error when none is left."""
    published_dir = Path(published_dir)
    history = read_history(published_dir)
    stack = history["published"]
    if not stack:
        raise PublishError(f"Nothing is published in {published_dir}: there is nothing to roll back.")
    taken_back = [stack.pop()]
    while stack and not (published_dir / stack[-1]["snapshot"]).exists():
        taken_back.append(stack.pop())  # pruned: cannot be gone back to
    if not stack:
        history["published"] = [taken_back[0]]
        raise PublishError(
            f"There is no earlier snapshot to go back to in {published_dir}: run {taken_back[0]['run_id']} stays "
            "current."
        )
    previous = stack.pop()
    history["rolled_back"].extend({**entry, "rolled_back_at": _now()} for entry in taken_back)
    return make_current(published_dir, previous, {"rolled_back_from": taken_back[0]["run_id"]}, history)


def protected_snapshots(published_dir: Path) -> set[str]:
    """Snapshots pruning must keep: the held one and the one a rollback would go back to (the current one is
    always kept)."""
    held = read_held(published_dir)
    stack = read_history(published_dir)["published"]
    names = {entry["snapshot"] for entry in stack[-2:]}
    return names | ({held["snapshot"]} if held else set())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
