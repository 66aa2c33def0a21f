"""A night parses the dbt project once: its dbt steps start from the parse made before the run (``crm run`` and
the tests' ``run_nightly`` pass the night's ``--vars`` and profile environment to it) instead of parsing it whole
again each, as dbt does when the vars or the profile differ from its last parse."""

import json

import pytest

from pipelines.transform.project import dbt_project

pytestmark = pytest.mark.integration


def _parse_messages(run_id: str, step: str) -> list[str]:
    folders = sorted(dbt_project.manifest_path.parent.glob(f"{step}-{run_id[:7]}-*"))
    assert len(folders) == 1, f"one dbt invocation of {step} in run {run_id}: {folders}"
    messages = []
    for line in (folders[0] / "dbt.log").read_text(encoding="utf-8").splitlines():
        message = json.loads(line).get("info", {}).get("msg", "") if line.startswith("{") else ""
        if "partial parsing" in message.lower():
            messages.append(message)
    return messages


@pytest.mark.parametrize("step", ["dbt_models", "dbt_score_models"])
def test_each_dbt_step_of_a_night_reuses_the_nights_parse(pipeline_run, step):
    _, result = pipeline_run
    assert result.success
    messages = _parse_messages(result.run_id, step)
    assert "Nothing changed, skipping partial parsing." in messages, messages
    assert not [message for message in messages if "Unable to do partial parsing" in message], messages
