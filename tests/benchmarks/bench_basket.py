"""Association rules at scale: DuckDB SQL pair counting (models_ml/basket.py) against maintained libraries.

`python tests/benchmarks/bench_basket.py [--lines 10000000] [--library-python PATH]` draws synthetic order lines
(seeded): ``--baskets`` baskets of 1 + Poisson items, products by a Zipf law over ``--products`` (a long tail:
a few products in many baskets, most in few), repeated items in a basket collapsed. Each approach then mines the
same one item => one item rules (support >= 0.001, confidence >= 0.05, lift >= 1, the default settings) in its own
process, so that its peak memory (VmHWM) is its own; the time counts reading the lines and everything after,
not importing the libraries:

- ``duckdb``: models_ml.basket.association_rules (the project's code, this interpreter);
- ``mlxtend``: mlxtend's fpgrowth (max_len 2) and association_rules on a sparse one-hot frame of the frequent items;
- ``efficient-apriori``: efficient_apriori.apriori (max_length 2) on one tuple of items per basket.

The libraries are not project dependencies: install them in a throwaway venv (``python -m venv /tmp/lib &&
/tmp/lib/bin/pip install mlxtend efficient-apriori pyarrow``) and pass its interpreter as ``--library-python``.
Each approach writes its rules; the bench checks they agree with DuckDB's (same rules, same counts) and prints one
JSON line per approach.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIN_SUPPORT, MIN_CONFIDENCE, MIN_LIFT = 0.001, 0.05, 1.0
APPROACHES = ("duckdb", "mlxtend", "efficient-apriori")
THEMES, IN_THEME = 1_000, 0.5
# Imported before the clock starts: the time is the work, not the interpreter loading a library.
LIBRARIES = {
    "duckdb": ("polars", "duckdb", "models_ml.basket"),
    "mlxtend": ("pandas", "scipy.sparse", "mlxtend.frequent_patterns"),
    "efficient-apriori": ("pandas", "efficient_apriori"),
}


def draw_lines(path: Path, lines: int, baskets: int, products: int, zipf: float, seed: int) -> int:
    """Write (basket_id, item, item_name) to ``path`` (parquet); returns the number of distinct lines.

    Products have Zipf popularity (weight 1 / rank^zipf) and sit in THEMES themes of products bought together
    (product p in theme p mod THEMES, so each theme has popular and rare products): each basket has a theme, and
    each of its lines comes from it with probability IN_THEME, else from the whole catalogue. Without themes every
    pair would be independent, and the thresholds would leave no rule to count."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    weight = 1.0 / np.arange(1, products + 1) ** zipf
    theme_weight = np.bincount(np.arange(products) % THEMES, weights=weight, minlength=THEMES)
    per_theme = -(-products // THEMES)
    rank_weight = 1.0 / np.arange(1, per_theme + 1) ** zipf  # popularity within a theme: Zipf again

    def draw(drawn: int) -> pl.DataFrame:
        size = 1 + rng.poisson(drawn / baskets - 1, baskets)
        n = int(size.sum())
        anywhere = rng.choice(products, n, p=weight / weight.sum())
        theme = np.repeat(rng.choice(THEMES, baskets, p=theme_weight / theme_weight.sum()), size)
        in_theme = theme + THEMES * rng.choice(per_theme, n, p=rank_weight / rank_weight.sum())
        item = np.where((rng.random(n) < IN_THEME) & (in_theme < products), in_theme, anywhere)
        return pl.DataFrame({"basket_id": np.repeat(np.arange(baskets), size), "item": item}).unique()

    # repeated items collapse: draw once, then again with as many more lines as collapsed, to land near ``lines``
    kept = draw(lines).height
    frame = draw(round(lines * lines / kept))
    frame = (
        frame.with_columns(item=pl.format("P{}", pl.col("item").cast(pl.String).str.zfill(5)))
        .with_columns(item_name=pl.format("Product {}", pl.col("item")))
        .sort("basket_id", "item")
    )
    frame.write_parquet(path)
    return frame.height


def mine(approach: str, lines: Path, out: Path) -> None:
    """Run one approach on the lines at ``lines``; write its rules (antecedent, consequent, both_baskets, lift)."""
    if approach == "duckdb":
        import polars as pl

        from models_ml.basket import association_rules

        rules = association_rules(
            pl.read_parquet(lines), min_support=MIN_SUPPORT, min_confidence=MIN_CONFIDENCE, min_lift=MIN_LIFT
        )
        rules.select("antecedent", "consequent", "both_baskets", "lift").write_parquet(out)
    elif approach == "mlxtend":
        import pandas as pd
        from mlxtend.frequent_patterns import association_rules, fpgrowth
        from scipy import sparse

        frame = pd.read_parquet(lines, columns=["basket_id", "item"])
        basket_ids = pd.Index(frame["basket_id"].unique())
        baskets = len(basket_ids)
        # fpgrowth reads df.values, which makes even a sparse frame dense (3M x 20k booleans: 56 GiB): keep only
        # the items frequent enough to be in a rule, as DuckDB's pruning does, so that the one-hot frame fits.
        counts = frame["item"].value_counts()
        frame = frame[frame["item"].isin(counts.index[counts / baskets >= MIN_SUPPORT])]
        item = frame["item"].astype("category").cat
        matrix = sparse.csr_matrix(
            ([True] * len(frame), (basket_ids.get_indexer(frame["basket_id"]), item.codes)),
            shape=(baskets, len(item.categories)),
        )
        one_hot = pd.DataFrame.sparse.from_spmatrix(matrix, columns=list(item.categories))
        itemsets = fpgrowth(one_hot, min_support=MIN_SUPPORT, use_colnames=True, max_len=2)
        rules = association_rules(itemsets, num_itemsets=baskets, metric="confidence", min_threshold=MIN_CONFIDENCE)
        rules = rules[rules["lift"] >= MIN_LIFT]
        pd.DataFrame(
            {
                "antecedent": [next(iter(items)) for items in rules["antecedents"]],
                "consequent": [next(iter(items)) for items in rules["consequents"]],
                "both_baskets": (rules["support"] * baskets).round().astype("int64"),
                "lift": rules["lift"],
            }
        ).to_parquet(out)
    elif approach == "efficient-apriori":
        import pandas as pd
        from efficient_apriori import apriori

        frame = pd.read_parquet(lines, columns=["basket_id", "item"])
        transactions = [tuple(items) for _, items in frame.groupby("basket_id", sort=False)["item"]]
        _, rules = apriori(transactions, min_support=MIN_SUPPORT, min_confidence=MIN_CONFIDENCE, max_length=2)
        rules = [rule for rule in rules if rule.lift >= MIN_LIFT]
        pd.DataFrame(
            {
                "antecedent": [rule.lhs[0] for rule in rules],
                "consequent": [rule.rhs[0] for rule in rules],
                "both_baskets": [rule.count_full for rule in rules],
                "lift": [rule.lift for rule in rules],
            }
        ).to_parquet(out)
    else:
        raise ValueError(f"unknown approach {approach!r}; choose from {APPROACHES}")


def _measure_here(approach: str, lines: Path, out: Path) -> None:
    """Child process: mine, then print seconds (after the imports) and this process's peak memory."""
    for module in LIBRARIES[approach]:
        __import__(module)
    imported_mib = _peak_mib()
    started = time.perf_counter()
    mine(approach, lines, out)
    seconds = time.perf_counter() - started
    peak_mib = _peak_mib()
    print(json.dumps({"seconds": round(seconds, 1), "peak_rss_mib": round(peak_mib),
                      "rss_after_imports_mib": round(imported_mib)}))  # fmt: skip


def _peak_mib() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: Linux keeps that across exec, so a child would
    report its parent's peak from before the exec (here: drawing the lines)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _agreement(reference: Path, other: Path) -> dict:
    import polars as pl

    ours, theirs = pl.read_parquet(reference), pl.read_parquet(other)
    joined = ours.join(theirs, on=["antecedent", "consequent"], how="full", coalesce=True, suffix="_other")
    both = joined.drop_nulls(["both_baskets", "both_baskets_other"])
    return {
        "rules": theirs.height,
        "rules_only_duckdb": joined.filter(pl.col("both_baskets_other").is_null()).height,
        "rules_only_this": joined.filter(pl.col("both_baskets").is_null()).height,
        "count_mismatches": both.filter(pl.col("both_baskets") != pl.col("both_baskets_other")).height,
        "max_lift_difference": float((both["lift"] - both["lift_other"]).abs().max() or 0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--baskets", type=int, default=3_000_000)
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--zipf", type=float, default=1.0, help="Exponent of the products' popularity law.")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--library-python", help="An interpreter with mlxtend and efficient-apriori installed.")
    parser.add_argument("--approaches", nargs="+", choices=APPROACHES, default=list(APPROACHES))
    parser.add_argument("--timeout", type=int, default=3600, help="Seconds before an approach is stopped.")
    parser.add_argument("--run", nargs=3, metavar=("APPROACH", "LINES", "OUT"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.run:
        _measure_here(arguments.run[0], Path(arguments.run[1]), Path(arguments.run[2]))
        return

    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-basket-"))
    lines = workdir / "lines.parquet"
    written = draw_lines(lines, arguments.lines, arguments.baskets, arguments.products, arguments.zipf, arguments.seed)
    print(json.dumps({"order_lines": written, "baskets": arguments.baskets, "products": arguments.products,
                      "zipf": arguments.zipf}), flush=True)  # fmt: skip
    root = str(Path(__file__).resolve().parents[2])
    for approach in ["duckdb", *[name for name in arguments.approaches if name != "duckdb"]]:
        python = sys.executable if approach == "duckdb" else arguments.library_python
        if python is None:
            print(json.dumps({"approach": approach, "skipped": "no --library-python"}), flush=True)
            continue
        out = workdir / f"rules_{approach}.parquet"
        command = [python, __file__, "--run", approach, str(lines), str(out)]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=arguments.timeout, cwd=root,
                env={**os.environ, "PYTHONPATH": root},
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            print(json.dumps({"approach": approach, "timed_out_after_seconds": arguments.timeout}), flush=True)
            continue
        if done.returncode != 0:
            print(json.dumps({"approach": approach, "exit_code": done.returncode, "error": done.stderr[-2000:]}))
            continue
        result = {"approach": approach, **json.loads(done.stdout.strip().splitlines()[-1])}
        if approach != "duckdb" and (workdir / "rules_duckdb.parquet").exists():
            result |= _agreement(workdir / "rules_duckdb.parquet", out)
        elif approach == "duckdb":
            import polars as pl

            result["rules"] = pl.read_parquet(out).height
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
