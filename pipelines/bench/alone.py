"""Each dbt model of the night timed alone, for the growth of the stages from one size to the next.

``python -m pipelines.bench.alone AS_OF`` runs the night's two dbt steps again on the warehouse the night built
(the world the settings point at), with the night's variables and engine settings but one model at a time, and
prints one JSON line: each model's seconds under its stage name (``dbt_models: <model>``,
``dbt_score_models: <model>``, as :func:`pipelines.bench.stages.read_dbt_windows` names the night's).

Why: the night runs two models at a time (the profile's threads), so a model's time in the night also says what
ran beside it, and what runs beside it differs between sizes; alone, its times at two sizes say how the model itself
grows. Models only (`dbt run`: no tests, no snapshot), each rebuilt whole (`--full-refresh`): the models built
incrementally (the order facts, docs/operations.md) would otherwise find nothing changed since the night and rebuild
nothing, where the night measured (the first on its warehouse) built them whole. They rebuild from the same tables,
so the marts come out as the night left them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from pipelines.bench.stages import dbt_model_stage


def model_seconds(run_results: dict, step: str) -> dict[str, float]:
    """Each model's execution time in a dbt invocation's ``run_results.json``, named ``<step>: <model>``."""
    return {
        dbt_model_stage(step, result["unique_id"]): float(result["execution_time"])
        for result in run_results.get("results", [])
        if result.get("unique_id", "").startswith("model.") and result.get("status") == "success"
    }


def run_alone(as_of: date) -> dict[str, float]:
    """Run the night's dbt steps one model at a time, each rebuilt whole, on the settings' warehouse; each model's
    seconds."""
    from pipelines.resources import Warehouse
    from pipelines.settings import load_settings
    from pipelines.transform.assets import DBT_STEPS, dbt_vars_args
    from pipelines.transform.project import DBT_EXECUTABLE, DBT_PROJECT_DIR, dbt_environment

    settings = load_settings()
    variables = dbt_vars_args(settings, as_of)
    environ = {**os.environ, **dbt_environment(Warehouse.from_settings(settings))}
    seconds: dict[str, float] = {}
    for step, selection in DBT_STEPS.items():
        with tempfile.TemporaryDirectory(prefix=f"alone-{step}-") as target:
            selecting = [argument for how, what in selection.items() for argument in (f"--{how}", what)]
            command = [DBT_EXECUTABLE, "run", *selecting, *variables, "--threads", "1", "--full-refresh"]
            command += ["--target-path", target, "--quiet"]
            done = subprocess.run(command, cwd=DBT_PROJECT_DIR, env=environ, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"{step}, one model at a time: dbt failed: {(done.stdout + done.stderr)[-2000:]}")
            seconds |= model_seconds(json.loads((Path(target) / "run_results.json").read_text("utf-8")), step)
    return seconds


def main() -> None:
    print(json.dumps({"models": run_alone(date.fromisoformat(sys.argv[1]))}))


if __name__ == "__main__":
    main()
