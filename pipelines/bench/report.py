"""The benchmark report from its measurements: ratios, growth per stage, the issue's targets, markdown, a summary.

Every function here is pure: it reads the report dictionary ``pipelines.bench.runner`` builds (and writes to
data/bench/report.json) and returns figures or text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

BEGIN_MARKER = "<!-- bench:begin -->"
END_MARKER = "<!-- bench:end -->"
GIB = 2**30
MIB = 2**20
# A dbt model is a stage of the report when its execution took longer than this at some size.
DBT_MODEL_SHOWN_SECONDS = 1.0
QUIET_LOAD_AVERAGE = 0.5
# The before-and-after sizes of the issue's growth target, and its allowance over linear (10x customers, 11x time).
GROWTH_SIZES = (100_000, 1_000_000)
GROWTH_TARGET = 11.0
PARAMETERS = {"bgnbd": ("r", "alpha", "a", "b"), "gamma_gamma": ("p", "q", "v")}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, None when either is missing or the denominator is not positive."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def agree(left: float | None, right: float | None, digits: int = 4) -> bool:
    """Whether two figures agree to ``digits`` significant digits: they differ by at most half a unit in the
    last of those digits of the larger (1.2345 and 1.2349 agree to 4, 1.2340 and 1.2346 do not)."""
    if left is None or right is None or not (math.isfinite(left) and math.isfinite(right)):
        return False
    largest = max(abs(left), abs(right))
    if largest == 0:
        return True
    unit = 10 ** (math.floor(math.log10(largest)) - digits + 1)
    return abs(left - right) <= unit / 2 * (1 + 1e-9)


def _size(report: dict, customers: int) -> dict | None:
    return next((size for size in report["sizes"] if size["customers"] == customers), None)


def _figure(size: dict | None, step: str, name: str) -> float | None:
    measured = (size or {}).get(step) or {}
    return measured.get(name)


def night_over_floor(size: dict) -> float | None:
    """The night's wall time over DuckDB alone reading the same files."""
    return ratio(_figure(size, "night", "wall_seconds"), _figure(size, "floor", "duckdb_seconds"))


def clv_comparison(clv: dict | None) -> dict | None:
    """Speed-up of our route over the lifetimes route, each parameter side by side, and whether they agree to 4
    significant digits; whether both routes summarised the same customers and purchases."""
    if not clv or not clv.get("ours") or not clv.get("lifetimes"):
        return None
    ours, theirs = clv["ours"], clv["lifetimes"]
    parameters = [
        {
            "model": model,
            "parameter": name,
            "ours": ours.get(model, {}).get(name),
            "lifetimes": theirs.get(model, {}).get(name),
            "agree": agree(ours.get(model, {}).get(name), theirs.get(model, {}).get(name)),
        }
        for model, names in PARAMETERS.items()
        for name in names
    ]
    same = all(ours.get(key) == theirs.get(key) for key in ("customers", "total_frequency", "repeat_buyers"))
    return {
        "speedup": ratio(theirs.get("seconds"), ours.get("seconds")),
        "parameters": parameters,
        "all_agree": all(parameter["agree"] for parameter in parameters),
        "same_summary": same,
    }


def shown_stages(sizes: Sequence[dict]) -> list[str]:
    """The stages of the report, in order of start at the largest size: every phase and Dagster step, and each dbt
    model whose execution took over ``DBT_MODEL_SHOWN_SECONDS`` at some size."""
    slow_models = {
        stage["name"]
        for size in sizes
        for stage in (size.get("night") or {}).get("stages", [])
        if stage["kind"] == "dbt model" and (stage.get("reported_seconds") or 0) > DBT_MODEL_SHOWN_SECONDS
    }
    names: list[str] = []
    for size in sorted(sizes, key=lambda size: -size["customers"]):
        stages = sorted((size.get("night") or {}).get("stages", []), key=lambda stage: stage["start"])
        for stage in stages:
            if (stage["kind"] != "dbt model" or stage["name"] in slow_models) and stage["name"] not in names:
                names.append(stage["name"])
    return names


def _stages_by_name(size: dict) -> dict[str, dict]:
    return {stage["name"]: stage for stage in (size.get("night") or {}).get("stages", [])}


def _alone_seconds(size: dict | None) -> dict[str, float]:
    """Each dbt model's seconds when the bench ran it again alone at ``size`` (pipelines.bench.alone)."""
    return ((size or {}).get("models_alone") or {}).get("models") or {}


def stage_growth(sizes: Sequence[dict], small: int, large: int, names: Sequence[str]) -> list[dict]:
    """Per stage measured at both sizes: its wall time at each and the ratio; for a dbt model timed again alone at
    both sizes, those times and their ratio too, which is the one judged (``judged_ratio``): in the night two models
    run at once, so a model's time there also says what ran beside it. ``above_linear``: the judged ratio is over
    ``large / small``."""
    by_size = {size["customers"]: _stages_by_name(size) for size in sizes}
    alone = {size["customers"]: _alone_seconds(size) for size in sizes}
    linear = large / small
    growth = []
    for name in names:
        before, after = by_size.get(small, {}).get(name), by_size.get(large, {}).get(name)
        if before is None or after is None:
            continue
        grew = ratio(after["wall_seconds"], before["wall_seconds"])
        alone_before, alone_after = alone.get(small, {}).get(name), alone.get(large, {}).get(name)
        grew_alone = ratio(alone_after, alone_before)
        judged = grew_alone if grew_alone is not None else grew
        growth.append(
            {
                "stage": name,
                "small_seconds": before["wall_seconds"],
                "large_seconds": after["wall_seconds"],
                "ratio": grew,
                "alone_small_seconds": alone_before,
                "alone_large_seconds": alone_after,
                "alone_ratio": grew_alone,
                "judged_ratio": judged,
                "linear": linear,
                "above_linear": judged is not None and judged > linear,
            }
        )
    return growth


def _target(name: str, figure: float | None, limit: float, style: Callable[[float], str]) -> dict:
    status = "not measured" if figure is None else "met" if figure < limit else "missed"
    return {"target": name, "figure": style(figure) if figure is not None else "-", "status": status}


def _seconds(value: float) -> str:
    return f"{value:,.1f} s"


def _gib(value: float) -> str:
    return f"{value / GIB:,.2f} GiB"


def _times(value: float) -> str:
    return f"{value:,.1f}x"


def targets(report: dict) -> list[dict]:
    """The targets of issue 13, each with the figure measured and ``met``, ``missed`` or ``not measured``."""
    million, ten_million = _size(report, 1_000_000), _size(report, 10_000_000)
    floor_ratio = night_over_floor(million) if million else None
    incremental = report.get("incremental") or {}
    incremental_night = incremental.get("night") if incremental.get("customers") == 1_000_000 else None
    clv = clv_comparison((million or {}).get("clv"))
    found = [
        _target("1M: night under 180 s", _figure(million, "night", "wall_seconds"), 180, _seconds),
        _target("1M: night's peak memory under 6 GiB", _figure(million, "night", "peak_rss_bytes"), 6 * GIB, _gib),
        _target("1M: night / floor under 65x (the ratio before)", floor_ratio, 65, _times),
        _target("1M: night / floor at most 15x (stretch)", floor_ratio, 15 + 1e-9, _times),
        _target("1M: incremental night under 60 s", (incremental_night or {}).get("wall_seconds"), 60, _seconds),
    ]
    speedup = clv["speedup"] if clv else None
    found.append(
        {
            "target": "1M: CLV fit at least 5x faster than the lifetimes route",
            "figure": _times(speedup) if speedup is not None else "-",
            "status": "not measured" if speedup is None else "met" if speedup >= 5 else "missed",
        }
    )
    found.append(
        {
            "target": "1M: CLV parameters agree with lifetimes' to 4 significant digits",
            "figure": "-" if clv is None else "all agree" if clv["all_agree"] else "some differ",
            "status": "not measured" if clv is None else "met" if clv["all_agree"] else "missed",
        }
    )
    small, large = GROWTH_SIZES
    names = shown_stages(report["sizes"])
    growth = stage_growth(report["sizes"], small, large, names) if _size(report, small) and million else []
    over = [row["stage"] for row in growth if row["judged_ratio"] is not None and row["judged_ratio"] > GROWTH_TARGET]
    alone = any(row["alone_ratio"] is not None for row in growth)
    found.append(
        {
            "target": f"every stage at most {GROWTH_TARGET:g}x from 100k to 1M"
            + (" (dbt models timed alone)" if alone else ""),
            "figure": "-" if not growth else f"{len(over)} over: {', '.join(over)}" if over else "none over",
            "status": "not measured" if not growth else "missed" if over else "met",
        }
    )
    for step, label in (("generator", "generator"), ("night", "night")):
        found.append(_target(f"10M: {label} under 30 min", _figure(ten_million, step, "wall_seconds"), 1800, _seconds))
        found.append(
            _target(f"10M: {label}'s peak under 16 GiB", _figure(ten_million, step, "peak_rss_bytes"), 16 * GIB, _gib)
        )
    return found


def replace_generated(text: str, generated: str) -> str:
    """``text`` with what lies between the markers replaced by ``generated``; the rest unchanged."""
    start, end = text.find(BEGIN_MARKER), text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"the markers {BEGIN_MARKER} and {END_MARKER} are missing or out of order")
    return text[: start + len(BEGIN_MARKER)] + "\n" + generated.strip("\n") + "\n" + text[end:]


def _cell(value: float | None, style: Callable[[float], str]) -> str:
    return "-" if value is None else style(value)


def _number(value: float) -> str:
    return f"{value:,.1f}"


def _gib_number(value: float) -> str:
    return f"{value / GIB:,.2f}"


def _stage_cell(stage: dict | None) -> str:
    if stage is None:
        return "-"
    return f"{stage['wall_seconds']:,.1f} / {stage['cpu_seconds']:,.1f} / {stage['peak_rss_bytes'] / GIB:,.2f}"


def _machine_lines(report: dict) -> list[str]:
    machine, options = report["machine"], report["options"]
    versions = ", ".join(f"{name} {version}" for name, version in machine["versions"].items())
    sizes = " ".join(f"--customers {customers}" for customers in options["customers"])
    lines = [
        f"Measured {report['generated_at']} on {machine['cpus']} CPUs ({machine['cpu_model']}), "
        f"{machine['memory_bytes'] / GIB:,.1f} GiB of memory; commit {machine['git_commit']}"
        f"{' with uncommitted changes' if machine.get('git_dirty') else ''}; {versions}.",
        f"Command: `crm bench {sizes} --as-of {options['as_of']} --sales-shape {options['sales_shape']}`.",
    ]
    if machine["load_average_1m"] > QUIET_LOAD_AVERAGE:
        lines.append(
            f"**Not a quiet machine:** the 1-minute load average was {machine['load_average_1m']:.2f} at the start "
            f"(above {QUIET_LOAD_AVERAGE}): other work shared the CPUs, and the times are longer than alone."
        )
    for failure in report.get("failures", []):
        lines.append(f"**Failed:** {failure}")
    return lines


def _sizes_table(report: dict) -> list[str]:
    lines = [
        "| customers | generator s | CPU s | peak GiB | floor s | night s | CPU s | peak GiB | night / floor |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    measured = (("wall_seconds", _number), ("cpu_seconds", _number), ("peak_rss_bytes", _gib_number))
    for size in report["sizes"]:
        cells = [f"{size['customers']:,}"]
        cells += [_cell(_figure(size, "generator", name), style) for name, style in measured]
        cells.append(_cell(_figure(size, "floor", "duckdb_seconds"), _number))
        cells += [_cell(_figure(size, "night", name), style) for name, style in measured]
        cells.append(_cell(night_over_floor(size), _times))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _targets_table(report: dict) -> list[str]:
    lines = ["| target | figure | |", "|---|---:|---|"]
    lines += [f"| {row['target']} | {row['figure']} | {row['status']} |" for row in report["targets"]]
    return lines


def _stages_table(report: dict) -> list[str]:
    sizes = report["sizes"]
    names = shown_stages(sizes)
    if not names:
        return ["No stage was measured (the night did not run)."]
    by_size = [(size["customers"], _stages_by_name(size)) for size in sizes]
    small, large = sizes[0]["customers"], sizes[-1]["customers"]
    growth = {row["stage"]: row for row in report.get("stage_growth", [])}
    header = "| stage | " + " | ".join(f"{customers:,}" for customers, _ in by_size)
    header += f" | {small:,} → {large:,} |" if len(sizes) > 1 else " |"
    lines = [header, "|---|" + "---:|" * (len(by_size) + (len(sizes) > 1))]
    for name in names:
        cells = [name.replace("|", "\\|"), *(_stage_cell(stages.get(name)) for _, stages in by_size)]
        if len(sizes) > 1:
            row = growth.get(name) or {}
            cells.append(_cell(row.get("ratio"), _times))
            alone = row.get("alone_ratio")
            if alone is not None:
                cells[-1] += f" (alone {row['alone_small_seconds']:,.1f} → {row['alone_large_seconds']:,.1f} s: "
                cells[-1] += f"{_times(alone)})"
            cells[-1] += " **above linear**" if row.get("above_linear") else ""
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _clv_tables(report: dict) -> list[str]:
    rows = [(size["customers"], size.get("clv"), clv_comparison(size.get("clv"))) for size in report["sizes"]]
    rows = [row for row in rows if row[1]]
    if not rows:
        return ["Not measured."]
    lines = [
        "| customers | cutoff | ours s | lifetimes route s | speed-up | same summary | parameters agree (4 s.f.) |",
        "|---:|---|---:|---:|---:|---|---|",
    ]
    for customers, clv, comparison in rows:
        ours, theirs = clv.get("ours") or {}, clv.get("lifetimes") or {}
        cells = [
            f"{customers:,}",
            ours.get("cutoff", "-"),
            _cell(ours.get("seconds"), lambda value: f"{value:,.2f}"),
            _cell(theirs.get("seconds"), lambda value: f"{value:,.2f}"),
            _cell((comparison or {}).get("speedup"), _times),
            "-" if comparison is None else "yes" if comparison["same_summary"] else "no",
            "-" if comparison is None else "all" if comparison["all_agree"] else "no",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    customers, clv, comparison = rows[-1]
    lines += ["", f"Parameters at {customers:,} customers:", ""]
    if comparison:
        lines += ["| model | parameter | ours | lifetimes route | agree |", "|---|---|---:|---:|---|"]
        for parameter in comparison["parameters"]:
            values = [_cell(parameter[side], lambda value: f"{value:.6g}") for side in ("ours", "lifetimes")]
            model = "BG/NBD" if parameter["model"] == "bgnbd" else "Gamma-Gamma"
            agreed = "yes" if parameter["agree"] else "no"
            lines.append(f"| {model} | {parameter['parameter']} | {values[0]} | {values[1]} | {agreed} |")
    ours, theirs = clv.get("ours") or {}, clv.get("lifetimes") or {}
    if ours:
        lines += [
            "",
            f"Ours: summary {ours['summary_seconds']:,.2f} s, fit {ours['fit_seconds']:,.2f} s "
            f"(BG/NBD by {ours['method']['bgnbd']}, Gamma-Gamma by {ours['method']['gamma_gamma']}); "
            f"the night published {ours['night_published']}.",
        ]
    if theirs:
        lines.append(
            f"lifetimes route: frame {theirs['frame_seconds']:,.2f} s, summary {theirs['summary_seconds']:,.2f} s "
            f"({theirs['summarised_by']}), fits {theirs['fit_seconds']:,.2f} s."
        )
        lines += [f"lifetimes route error: {error}" for error in theirs.get("errors", [])]
    return lines


def _absent(section: dict | None) -> list[str] | None:
    """What a section says when it has no figures: not measured, or skipped and why."""
    if not section:
        return ["Not measured."]
    if section.get("skipped"):
        return [f"Skipped: {section['skipped']}"]
    return None


def _incremental_lines(report: dict) -> list[str]:
    incremental = report.get("incremental")
    if (absent := _absent(incremental)) is not None:
        return absent
    night, history = incremental.get("night") or {}, incremental.get("history_night") or {}
    full = _figure(_size(report, incremental["customers"]), "night", "wall_seconds")
    lines = [
        "| customers | new orders | history night s | incremental night s | CPU s | peak GiB | full night s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {incremental['customers']:,} | {incremental['new_orders']:,} (of {incremental['day']}) "
        f"| {_cell(history.get('wall_seconds'), _number)} | {_cell(night.get('wall_seconds'), _number)} "
        f"| {_cell(night.get('cpu_seconds'), _number)} | {_cell(night.get('peak_rss_bytes'), _gib_number)} "
        f"| {_cell(full, _number)} |",
    ]
    stages = {stage["name"]: stage for stage in night.get("stages", [])}
    slowest = sorted((stage for stage in stages.values() if stage["kind"] != "phase"),
                     key=lambda stage: -stage["wall_seconds"])[:5]  # fmt: skip
    refit_days = incremental.get("model_refit_days", 1)
    lines += ["", "Every model fitted on both nights (model_refit_days 1)." if refit_days == 1 else
              f"Both nights with model_refit_days {refit_days}: the incremental night's churn, lifetime value "
              "and next best offers scored with the history night's fit and checks."]  # fmt: skip
    if slowest:
        listed = ", ".join(f"{stage['name']} {stage['wall_seconds']:,.1f} s" for stage in slowest)
        lines += ["", f"Its slowest stages: {listed}."]
    return lines


def _pages_lines(report: dict) -> list[str]:
    pages = report.get("pages")
    if (absent := _absent(pages)) is not None:
        return absent
    lines = [
        f"On the snapshot of {pages['customers']:,} customers, seconds:",
        "",
        "| page | cold | warm | with a customer, cold | with a customer, warm |",
        "|---|---:|---:|---:|---:|",
    ]
    for page in pages["pages"]:
        if "error" in page:
            lines.append(f"| {page['page']} | error: {' '.join(page['error'])} | | | |")
            continue
        cells = [page["page"]] + [
            _cell(page.get(name), lambda value: f"{value:.2f}")
            for name in ("cold_seconds", "warm_seconds", "with_customer_cold_seconds", "with_customer_warm_seconds")
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(report: dict) -> str:
    """The generated part of docs/benchmarks.md: machine, sizes, targets, stages, CLV routes, incremental, pages."""
    sections = [
        _machine_lines(report),
        ["#### The night at each size", "", *_sizes_table(report)],
        ["#### Targets of issue 13", "", *_targets_table(report)],
        [
            "#### Stages of the night",
            "",
            "Wall seconds / CPU seconds / peak GiB at each size; the last column is the growth of the wall time "
            "from the smallest size to the largest, **above linear** when it outgrew the customers. dbt models "
            "(`dbt_models: <model>`, over a second at some size) run two at a time: their CPU and peak include the "
            "other thread's model, and their time what ran beside them; each was timed again alone on the night's "
            "warehouse (dbt's own seconds, one model at a time), and that growth, in brackets, is the one judged.",
            "",
            *_stages_table(report),
        ],
        ["#### CLV: our route beside the lifetimes route", "", *_clv_tables(report)],
        ["#### Incremental night", "", *_incremental_lines(report)],
        ["#### Dashboard pages", "", *_pages_lines(report)],
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


def summary_lines(report: dict) -> list[str]:
    """A few lines for the console: each size's headline figures, the CLV routes, incremental, pages, targets."""
    lines = []
    for size in report["sizes"]:
        figures = [
            f"generator {_cell(_figure(size, 'generator', 'wall_seconds'), _seconds)}",
            f"floor {_cell(_figure(size, 'floor', 'duckdb_seconds'), _seconds)}",
            f"night {_cell(_figure(size, 'night', 'wall_seconds'), _seconds)} "
            f"(CPU {_cell(_figure(size, 'night', 'cpu_seconds'), _seconds)}, "
            f"peak {_cell(_figure(size, 'night', 'peak_rss_bytes'), _gib)})",
            f"night / floor {_cell(night_over_floor(size), _times)}",
        ]
        lines.append(f"{size['customers']:>12,} customers: " + ", ".join(figures))
        comparison = clv_comparison(size.get("clv"))
        if comparison:
            clv = size["clv"]
            lines.append(
                f"{'':>12}  CLV: ours {clv['ours']['seconds']:,.2f} s, lifetimes route "
                f"{clv['lifetimes']['seconds']:,.2f} s ({_cell(comparison['speedup'], _times)}); parameters "
                f"{'agree' if comparison['all_agree'] else 'DIFFER'} to 4 s.f."
                f"{'' if comparison['same_summary'] else '; the summaries differ'}"
            )
    incremental = report.get("incremental") or {}
    if incremental.get("night"):
        lines.append(
            f"incremental night at {incremental['customers']:,}: "
            f"{_seconds(incremental['night']['wall_seconds'])} (+{incremental['new_orders']:,} orders of "
            f"{incremental['day']}; history night {_seconds(incremental['history_night']['wall_seconds'])}; "
            f"model_refit_days {incremental.get('model_refit_days', 1)})"
        )
    pages = [page for page in (report.get("pages") or {}).get("pages", []) if "error" not in page]
    if pages:
        cold = max(pages, key=lambda page: page["cold_seconds"])
        warm = max(pages, key=lambda page: page["warm_seconds"])
        lines.append(
            f"pages at {report['pages']['customers']:,}: slowest cold {cold['cold_seconds']:.2f} s ({cold['page']}), "
            f"slowest warm {warm['warm_seconds']:.2f} s ({warm['page']})"
        )
    above = [row["stage"] for row in report.get("stage_growth", []) if row["above_linear"]]
    if above:
        lines.append(f"stages growing faster than the customers: {', '.join(above)}")
    counts = {status: sum(row["status"] == status for row in report["targets"])
              for status in ("met", "missed", "not measured")}  # fmt: skip
    lines.append(", ".join(f"{count} {status}" for status, count in counts.items()) + " (targets of issue 13)")
    if report["machine"]["load_average_1m"] > QUIET_LOAD_AVERAGE:
        lines.append(
            f"WARNING: the 1-minute load average was {report['machine']['load_average_1m']:.2f} at the start "
            f"(above {QUIET_LOAD_AVERAGE}): not a quiet machine"
        )
    lines += [f"FAILED: {failure}" for failure in report.get("failures", [])]
    return lines


def finish(report: dict) -> dict:
    """The report with what is derived from its measurements: stage growth, CLV comparisons, targets."""
    sizes = report["sizes"]
    names = shown_stages(sizes)
    growth = stage_growth(sizes, sizes[0]["customers"], sizes[-1]["customers"], names) if len(sizes) > 1 else []
    sizes = [{**size, "clv_comparison": clv_comparison(size.get("clv"))} for size in sizes]
    finished = {**report, "sizes": sizes, "stage_growth": growth}
    return {**finished, "targets": targets(finished)}
