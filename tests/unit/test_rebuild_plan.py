"""The identity records', the order facts' and the interactions' plan (dbt_project/macros/rebuild_plan.sql)
rebuilds every record, order and interaction when a setting they read changes: the settings it compares with the
last build's are exactly the vars the chain's models, the models they read and the project's macros read, besides
the cutoff (which the plan follows order by order and touch by touch)."""

import re

from pipelines.transform.project import DBT_PROJECT_DIR

CHAIN = (
    "int_identity_records_normalised",
    "int_identity_records_touched",
    "int_orders_classified",
    "int_order_lines_classified",
    "fct_order_lines",
    "fct_orders",
    "fct_interactions",
    "int_interactions_touched",
)
_REF = re.compile(r"""\bref\(\s*['"](\w+)['"]\s*\)""")
_VAR = re.compile(r"""\bvar\(\s*['"](\w+)['"]""")


def _models() -> dict[str, str]:
    return {path.stem: path.read_text() for path in (DBT_PROJECT_DIR / "models").rglob("*.sql")}


def _upstream(models: dict[str, str], names: tuple[str, ...]) -> set[str]:
    """The models ``names`` and every model they read, directly or not (seeds, which read nothing, left out)."""
    found, waiting = set(), list(names)
    while waiting:
        name = waiting.pop()
        if name not in found and name in models:
            found.add(name)
            waiting.extend(_REF.findall(models[name]))
    return found


def test_the_plan_compares_every_setting_the_chain_reads():
    models = _models()
    chain = _upstream(models, CHAIN)
    read_first = {
        "stg_erp__orders",
        "stg_erp__order_lines",
        "int_sales_touched_orders",
        "int_identity_records_normalised",
    }
    assert read_first <= chain
    macros = [path.read_text() for path in (DBT_PROJECT_DIR / "macros").glob("*.sql")]
    read = {name for text in [*(models[name] for name in chain), *macros] for name in _VAR.findall(text)}
    plan = (DBT_PROJECT_DIR / "macros" / "rebuild_plan.sql").read_text()
    settings = plan[plan.index("macro rebuild_plan_settings") :].split("endmacro")[0]
    compared = set(re.findall(r"""['"](\w+)['"]\s*:\s*var\(""", settings))
    assert compared == read - {"as_of"}
