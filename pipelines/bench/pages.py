"""Render time of every dashboard page on the published snapshot the settings point at (CRM_PUBLISHED_DIR).

Each page is rendered by Streamlit's AppTest as an admin: "cold" is its first render in a fresh process (the
snapshot opened, every query run: what the first visitor after a night waits for), "warm" the median of three
renders after it (cached queries, what every later visitor waits for). The Customer lookup is also timed looking
up one customer (the first in customer_360). Prints one JSON object; the issue's targets are under 1 s warm and
3 s cold on the demo, under 3 s warm at 1M customers.

    python -m pipelines.bench.pages            # every page (or: python tests/benchmarks/bench_pages.py)
    python -m pipelines.bench.pages loyalty    # one page (its cold time in this process)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

# The page timed a second time looking up one customer (its search box is its first text input).
LOOKUP_PAGE = "lookup"


def _render(app, title: str) -> float:
    start = time.perf_counter()
    app.run()
    seconds = time.perf_counter() - start
    if app.exception:
        raise RuntimeError(f"{app.exception[0].message}")
    if not app.title or app.title[0].value != title:  # the page itself, not a sign-in form or a refusal
        raise RuntimeError(f"the page {title!r} did not render: {[element.value for element in app.error]}")
    return seconds


def time_page(page_id: str) -> dict:
    """Cold and warm render times of one page, in this (fresh) process."""
    import duckdb
    from streamlit.testing.v1 import AppTest

    from dashboards.auth import User
    from dashboards.registry import PAGES_DIR, page_spec
    from pipelines.publish.snapshot import current_snapshot
    from pipelines.settings import load_settings

    title = page_spec(PAGES_DIR / f"{page_id}.py").title
    app = AppTest.from_file(str(PAGES_DIR / f"{page_id}.py"), default_timeout=120)
    app.session_state["crm_user"] = User(username="bench", name="bench", role="admin", contacts=True)
    cold = _render(app, title)
    warm = statistics.median(_render(app, title) for _ in range(3))
    result = {"page": page_id, "cold_seconds": round(cold, 3), "warm_seconds": round(warm, 3)}
    if page_id == LOOKUP_PAGE and app.text_input:
        snapshot = current_snapshot(load_settings().published_dir)
        with duckdb.connect(snapshot["path"], read_only=True) as connection:
            (customer,) = connection.execute("select min(customer_id) from marts.customer_360").fetchone()
        app.text_input[0].input(customer)
        first = _render(app, title)
        warm = _render(app, title)
        result |= {"with_customer_cold_seconds": round(first, 3), "with_customer_warm_seconds": round(warm, 3)}
    # the targets on the demo: under 3 s cold, under 1 s warm (at 1M customers: under 3 s warm)
    result["within_demo_targets"] = cold < 3 and result["warm_seconds"] < 1
    return result


def main() -> None:
    from dashboards.registry import all_pages

    if len(sys.argv) > 1:
        print(json.dumps(time_page(sys.argv[1])))
        return
    results = []
    for spec in all_pages():
        # each page in its own process, so its cold time owes nothing to another page's cache
        output = subprocess.run(
            [sys.executable, "-m", "pipelines.bench.pages", spec.page_id], capture_output=True, text=True
        )
        if output.returncode:
            results.append({"page": spec.page_id, "error": output.stderr.strip().splitlines()[-1:]})
        else:
            results.append(json.loads(output.stdout.strip().splitlines()[-1]))
    print(json.dumps({"pages": results}))


if __name__ == "__main__":
    main()
