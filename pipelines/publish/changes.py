"""What changed since the last published run: headline figures, customers who moved segment or tier, and each
model's main metric, previous against now. Computed at publish between the new snapshot and the current one, stored
in meta.run_changes (warehouse and snapshot) and in current.json / held.json; :func:`what_changed` turns it into the
sentences ``crm status`` prints."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from pipelines import sql
from pipelines.publish.guard import FIGURES, read_held
from pipelines.publish.snapshot import current_snapshot

# The metric that says how good each model is, and whether lower is better.
# the figure each model is judged by against its baseline (for clv: models_ml.clv_holdout.HOLDOUT_FIGURE)
MAIN_METRICS = {"clv": ("rmse_spend", True), "churn": ("auc", False), "rfm": ("segments", None)}

RUN_CHANGES_COLUMNS = """run_id varchar, as_of date, previous_run_id varchar, previous_as_of date, kind varchar,
    name varchar, previous_value double, current_value double, detail json"""

_NEW_CUSTOMERS = """select count(*) from {c}.marts.dim_customers as now
where now.has_purchased and now.customer_id not in (
    select customer_id from {p}.marts.dim_customers where has_purchased)"""

_MOVES = """with previous as ({previous}), now as ({now})
select previous.value as from_value, now.value as to_value, count(*) as customers
from now join previous using (customer_id)
where previous.value is distinct from now.value
group by all order by customers desc, from_value, to_value"""

_TIERS = "select customer_id, loyalty_tier as value from {c}.marts.dim_customers where has_purchased"
_SEGMENTS = """select customer_id, segment as value from {c}.ml.rfm_scores
where as_of = (select max(as_of) from {c}.ml.rfm_scores)"""

_METRICS = """select model, metrics from {c}.ml.model_runs
qualify row_number() over (partition by model order by as_of desc, finished_at desc nulls last) = 1"""


def _scalar(connection, query: str):
    try:
        return connection.execute(query).fetchone()[0]
    except duckdb.CatalogException:
        return None


def _moves(connection, query: str, current: str, previous: str) -> dict | None:
    try:
        rows = connection.execute(
            _MOVES.format(previous=query.format(c=previous), now=query.format(c=current))
        ).fetchall()
    except duckdb.CatalogException:
        return None
    return {
        "customers": sum(count for *_, count in rows),
        "top": [{"from": before, "to": after, "customers": count} for before, after, count in rows[:5]],
    }


def _model_metrics(connection, catalog: str) -> dict[str, float]:
    try:
        rows = connection.execute(_METRICS.format(c=catalog)).fetchall()
    except duckdb.CatalogException:
        return {}
    found = {}
    for model, metrics in rows:
        name = MAIN_METRICS.get(model, (None,))[0]
        value = (json.loads(metrics) or {}).get(name) if name and metrics else None
        if isinstance(value, int | float):
            found[model] = float(value)
    return found


def compute_changes(
    connection: duckdb.DuckDBPyConnection,
    current_catalog: str,
    figures: dict,
    previous_catalog: str | None,
    previous: dict | None,
) -> dict:
    """What changed between the snapshot attached as ``current_catalog`` (headline ``figures``) and the one
    attached as ``previous_catalog`` (its pointer ``previous`` with its figures), or only the figures on a first
    publish."""
    now = sql.identifier(current_catalog)
    before = sql.identifier(previous_catalog) if previous_catalog else None
    previous_figures = (previous or {}).get("figures") or {}
    changes: dict = {
        "previous": None if previous is None else {key: previous.get(key) for key in ("run_id", "as_of", "snapshot")},
        "figures": {
            name: {"previous": previous_figures.get(name), "current": figures.get(name)}
            for name in ("customers", "net_revenue_12m", "orders", "average_order_value", "net_revenue")
        },
        "new_customers": None,
        "segment_moves": None,
        "tier_moves": None,
        "model_metrics": {},
    }
    current_metrics = _model_metrics(connection, now)
    if before is None:
        changes["model_metrics"] = {
            model: {"metric": MAIN_METRICS[model][0], "previous": None, "current": value}
            for model, value in current_metrics.items()
        }
        return changes
    changes["new_customers"] = _scalar(connection, _NEW_CUSTOMERS.format(c=now, p=before))
    changes["segment_moves"] = _moves(connection, _SEGMENTS, now, before)
    changes["tier_moves"] = _moves(connection, _TIERS, now, before)
    previous_metrics = _model_metrics(connection, before)
    changes["model_metrics"] = {
        model: {"metric": MAIN_METRICS[model][0], "previous": previous_metrics.get(model), "current": value}
        for model, value in current_metrics.items()
    }
    return changes


def change_rows(run_id: str, as_of, changes: dict) -> list[tuple]:
    """meta.run_changes rows of ``changes``: one per figure, per kind of move and per model metric."""
    previous = changes.get("previous") or {}
    head = (run_id, as_of, previous.get("run_id"), previous.get("as_of"))
    rows = [
        (*head, "figure", name, values["previous"], values["current"], None)
        for name, values in changes["figures"].items()
    ]
    if changes.get("new_customers") is not None:
        rows.append((*head, "figure", "new_customers", None, changes["new_customers"], None))
    for kind in ("segment_moves", "tier_moves"):
        moves = changes.get(kind)
        if moves is not None:
            rows.append((*head, kind, kind, None, moves["customers"], json.dumps(moves["top"])))
    for model, values in changes["model_metrics"].items():
        rows.append((*head, "model_metric", f"{model}.{values['metric']}", values["previous"], values["current"], None))
    return rows


def record_changes(connection: duckdb.DuckDBPyConnection, catalog: str | None, run_id: str, as_of, changes: dict):
    """Replace the run's rows of ``meta.run_changes`` in the database attached as ``catalog`` (None: the
    connection's own)."""
    prefix = f"{sql.identifier(catalog)}." if catalog else ""
    connection.execute(f"create schema if not exists {prefix}meta")
    connection.execute(f"create table if not exists {prefix}meta.run_changes ({RUN_CHANGES_COLUMNS})")
    connection.execute(f"delete from {prefix}meta.run_changes where run_id = ?", [run_id])
    rows = change_rows(run_id, as_of, changes)
    if rows:
        connection.executemany(f"insert into {prefix}meta.run_changes values (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


# --- sentences ----------------------------------------------------------------------------------------------------


def _figure(value) -> str:
    if value is None:
        return "nothing"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _change(before, now) -> str:
    if before is None:
        return _figure(now)
    if not before:
        return f"{_figure(before)} → {_figure(now)}"
    return f"{_figure(before)} → {_figure(now)} ({(now - before) / abs(before):+.1%})"


def change_sentences(changes: dict) -> list[str]:
    """The sentences of one run's changes."""
    previous = changes.get("previous")
    figures = changes["figures"]
    if previous is None:
        listed = ", ".join(
            f"{FIGURES[name][0]} {_figure(figures[name]['current'])}"
            for name in ("customers", "net_revenue_12m", "orders", "average_order_value")
        )
        return [f"First publish, nothing to compare with: {listed}."]
    sentences = [f"Since the run published as of {previous['as_of']} ({previous['run_id']}):"]
    if changes.get("new_customers") is not None:
        sentences.append(f"{_figure(changes['new_customers'])} new customers with a purchase.")
    for name in ("customers", "net_revenue_12m", "orders", "average_order_value"):
        values = figures[name]
        sentences.append(f"{FIGURES[name][0].capitalize()}: {_change(values['previous'], values['current'])}.")
    for kind, words in (("segment_moves", "RFM segment"), ("tier_moves", "loyalty tier")):
        moves = changes.get(kind)
        if moves is None:
            continue
        top = ", ".join(f"{move['from']} → {move['to']} {_figure(move['customers'])}" for move in moves["top"][:3])
        sentences.append(
            f"{_figure(moves['customers'])} customers changed {words}" + (f" (most: {top})." if top else ".")
        )
    for model, values in changes["model_metrics"].items():
        sentences.append(f"Model {model}, {values['metric']}: {_change(values['previous'], values['current'])}.")
    return sentences


def what_changed(published_dir: Path) -> list[str]:
    """The sentences ``crm status`` prints: what changed with the current snapshot, and the held one if any."""
    published_dir = Path(published_dir)
    current = current_snapshot(published_dir)
    sentences = []
    if current is None:
        sentences.append("Nothing is published yet.")
    elif current.get("changes"):
        sentences.extend(change_sentences(current["changes"]))
    if current is not None and current.get("rolled_back_from"):
        sentences.append(f"Rolled back from run {current['rolled_back_from']} to run {current['run_id']}.")
    held = read_held(published_dir)
    if held is not None:
        reasons = "; ".join(
            f"{reason['words']} {_figure(reason['previous'])} → {_figure(reason['current'])}"
            for reason in held.get("reasons", [])
        )
        sentences.append(
            f"Held back, not published: run {held['run_id']} as of {held['as_of']} ({reasons}). Publish it with "
            f"`crm publish --accept {held['run_id']}` once the figures are checked."
        )
        if held.get("changes"):
            sentences.extend(f"  {sentence}" for sentence in change_sentences(held["changes"]))
    return sentences
