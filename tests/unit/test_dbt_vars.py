"""Settings reach dbt only in the shape they must have: checked in Python before the run (each error names the
setting), and checked and quoted again by the dbt macros (dbt_project/macros/literals.sql) for anyone who passes
``--vars`` by hand."""

import dataclasses
import json
import math
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from pipelines.settings import load_settings
from pipelines.transform.assets import DbtVarError, dbt_build_args, dbt_vars

AS_OF = date(2026, 6, 30)
DBT_PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"


@pytest.fixture
def settings():
    return load_settings({})


def test_the_default_settings_pass_as_they_are(settings):
    passed = dbt_vars(settings, AS_OF)
    assert passed["as_of"] == "2026-06-30"
    assert passed["reporting_currency"] == settings.currency.upper()
    assert passed["timezone"] == settings.timezone
    assert passed["rfm_window_days"] == settings.rfm_window_days
    assert passed["outlier_date_span_years"] == settings.outlier_date_span_years
    assert passed["channel_min_contacts"] == settings.channel_min_contacts
    assert json.loads(dbt_build_args(settings, AS_OF)[-1]) == passed


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("currency", "EUR'; drop table x; --"),
        ("currency", "EURO"),
        ("currency", ""),
        ("default_country", "ES' or 1=1 --"),
        ("default_country", "ESP"),
        ("timezone", "Europe/Madrid'); drop table x; --"),
        ("timezone", "Mars/Olympus"),
        ("rfm_window_days", math.nan),
        ("rfm_window_days", 0),
        ("rfm_window_days", 365.5),
        ("tier_silver_min_spend", math.nan),
        ("tier_gold_min_spend", math.inf),
        ("tier_platinum_min_spend", "3000; drop table x"),
        ("campaign_attribution_days", -1),
        ("outlier_date_span_years", True),
        ("channel_min_contacts", 0),
        ("channel_min_contacts", 2.5),
    ],
)
def test_a_hostile_or_malformed_setting_is_refused_naming_it(settings, setting, value):
    hostile = dataclasses.replace(settings, **{setting: value})
    with pytest.raises(DbtVarError, match=f"setting '{setting}'"):
        dbt_vars(hostile, AS_OF)


def test_an_as_of_that_is_not_a_date_is_refused(settings):
    with pytest.raises(DbtVarError, match="as_of"):
        dbt_vars(settings, "2024-01-01' or 1=1")


def test_a_lower_case_currency_is_passed_upper_case(settings):
    assert dbt_vars(dataclasses.replace(settings, currency=" usd "), AS_OF)["reporting_currency"] == "USD"


@pytest.mark.slow
def test_dbt_itself_refuses_a_hostile_as_of_naming_the_var(tmp_path):
    """Someone running dbt by hand with ``--vars``: the macros refuse what is not a date, before any SQL runs."""
    hostile = {"as_of": "2024-01-01' or 1=1 --", "timezone": "Europe/Madrid'; drop table x; --"}
    inline = "select {{ as_of_date() }} as as_of_date, {{ crm_string(var('timezone'), 'timezone') }} as timezone"
    dbt = Path(sys.executable).with_name("dbt")
    completed = subprocess.run(
        [
            str(dbt), "compile", "--inline", inline, "--vars", json.dumps(hostile),
            "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
            "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"), "--no-partial-parse",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "CRM_WAREHOUSE_PATH": ":memory:"},
        timeout=300,
    )  # fmt: skip
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0, output
    assert "the dbt var as_of must be a date written YYYY-MM-DD" in output, output
    assert "or 1=1" not in output.split("must be a date")[0], output
