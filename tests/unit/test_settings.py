import os
import re
from pathlib import Path

import pytest

from pipelines.settings import PROJECT_ROOT, SettingsError, load_settings


def test_defaults_are_read_from_the_documented_file():
    settings = load_settings({})
    assert settings.churn_window_days == 90
    assert settings.clv_horizon_months == 12
    assert settings.clv_discount_rate == pytest.approx(0.10)
    assert settings.warehouse_path == PROJECT_ROOT / "data" / "warehouse" / "crm.duckdb"


def test_environment_overrides_file_overrides_defaults(tmp_path: Path):
    user_file = tmp_path / "mine.yaml"
    user_file.write_text("timezone: Europe/Paris\nchurn_window_days: 60\n", encoding="utf-8")
    settings = load_settings({"CRM_SETTINGS": str(user_file), "CRM_CHURN_WINDOW_DAYS": "45"})
    assert settings.timezone == "Europe/Paris"
    assert settings.churn_window_days == 45


def test_relative_paths_are_relative_to_the_project_and_absolute_ones_kept(tmp_path: Path):
    settings = load_settings({"CRM_LANDING_DIR": "exports", "CRM_WAREHOUSE_PATH": str(tmp_path / "w.duckdb")})
    assert settings.landing_dir == PROJECT_ROOT / "exports"
    assert settings.warehouse_path == tmp_path / "w.duckdb"


def test_a_bad_value_names_the_setting_and_where_it_came_from():
    with pytest.raises(SettingsError, match="churn_window_days.*CRM_CHURN_WINDOW_DAYS.*'soon'"):
        load_settings({"CRM_CHURN_WINDOW_DAYS": "soon"})


def test_an_unknown_key_in_a_settings_file_is_an_error(tmp_path: Path):
    user_file = tmp_path / "mine.yaml"
    user_file.write_text("churn_windw_days: 60\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="unknown setting 'churn_windw_days'"):
        load_settings({"CRM_SETTINGS": str(user_file)})


def test_every_setting_is_documented_in_the_defaults_file():
    text = (PROJECT_ROOT / "pipelines" / "settings.yaml").read_text(encoding="utf-8")
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line and not line.startswith((" ", "#")):
            assert lines[index - 1].startswith("#"), f"setting on line {index + 1} has no comment above it: {line}"


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("CRM_CURRENCY", "euro", "ISO 4217"),
        ("CRM_CURRENCY", "eur", "three capital letters"),
        ("CRM_DEFAULT_COUNTRY", "ESP", "ISO 3166-1 alpha-2"),
        ("CRM_TIMEZONE", "Mars/Olympus_Mons", "not a timezone"),
        ("CRM_TIMEZONE", "../../etc/passwd", "not a timezone"),
        ("CRM_NIGHTLY_CRON", "0 2 * *", "five fields.*it has 4"),
        ("CRM_NIGHTLY_CRON", "0 24 * * *", "24 as its hour, outside 0-23"),
        ("CRM_NIGHTLY_CRON", "*/0 2 * * *", "minute"),
        ("CRM_NIGHTLY_CRON", "0 2 * * funday", "'funday' in its day of week"),
        ("CRM_OUTLIER_SEVERITY", "ignore", "must be error or warn"),
        ("CRM_CAMPAIGN_CONTROL_SHARE", "1.5", "between 0 and 1"),
        ("CRM_TIER_UPGRADE_CLOSENESS", "-0.1", "between 0 and 1"),
        ("CRM_CLV_DISCOUNT_RATE", "nan", "finite"),
        ("CRM_PUBLISH_GUARD_FACTOR", "inf", "finite"),
        ("CRM_TIER_SILVER_MIN_SPEND", "-5", "at least 0"),
        ("CRM_WAREHOUSE_LOCK_WAIT_SECONDS", "-1", "at least 0"),
        ("CRM_KEEP_SNAPSHOTS", "0", "at least 1"),
        ("CRM_CHURN_WINDOW_DAYS", "2.5", "cannot read '2.5' as a whole number"),
        ("CRM_PRIVATE_FILES", "maybe", "true or false"),
        ("CRM_CURRENCY", "  ", "has no value"),
    ],
)
def test_a_value_the_setting_cannot_take_is_refused_naming_setting_origin_and_value(variable, value, says):
    key = variable.removeprefix("CRM_").lower()
    with pytest.raises(SettingsError, match=f"'{key}'.*environment variable {variable}") as error:
        load_settings({variable: value})
    assert repr(value) in str(error.value) or "has no value" in str(error.value)
    assert re.search(says, str(error.value)), str(error.value)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CRM_CURRENCY", "USD", "USD"),
        ("CRM_DEFAULT_COUNTRY", "GB", "GB"),
        ("CRM_TIMEZONE", "UTC", "UTC"),
        ("CRM_NIGHTLY_CRON", "30 1-5/2 1,15 jan-jun mon-fri", "30 1-5/2 1,15 jan-jun mon-fri"),
        ("CRM_OUTLIER_SEVERITY", "warn", "warn"),
        ("CRM_CAMPAIGN_CONTROL_SHARE", "0", 0.0),
        ("CRM_CAMPAIGN_CONTROL_SHARE", "1", 1.0),
        ("CRM_WAREHOUSE_LOCK_WAIT_SECONDS", "0", 0),
        ("CRM_PRIVATE_FILES", "no", False),
    ],
)
def test_values_at_the_edges_of_what_a_setting_can_take_are_accepted(variable, value, expected):
    settings = load_settings({variable: value})
    assert getattr(settings, variable.removeprefix("CRM_").lower()) == expected


def test_a_bad_value_in_a_settings_file_names_the_file(tmp_path: Path):
    user_file = tmp_path / "mine.yaml"
    user_file.write_text("currency: 978\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=rf"'currency' from {re.escape(str(user_file))}: 978 must be an ISO 4217"):
        load_settings({"CRM_SETTINGS": str(user_file)})


def test_a_yaml_number_with_a_fraction_is_not_cut_to_a_whole_number(tmp_path: Path):
    user_file = tmp_path / "mine.yaml"
    user_file.write_text("keep_snapshots: 7.9\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="keep_snapshots.*7.9.*whole number"):
        load_settings({"CRM_SETTINGS": str(user_file)})


def test_tier_thresholds_must_rise_and_the_error_names_both_origins(tmp_path: Path):
    with pytest.raises(
        SettingsError, match="'tier_gold_min_spend' from environment variable CRM_TIER_GOLD_MIN_SPEND"
    ) as error:
        load_settings({"CRM_TIER_GOLD_MIN_SPEND": "100"})
    assert "'tier_silver_min_spend' from " + str(PROJECT_ROOT / "pipelines" / "settings.yaml") in str(error.value)
    assert load_settings({"CRM_TIER_GOLD_MIN_SPEND": "250"}).tier_gold_min_spend == 250


def test_the_engine_gets_a_sixth_of_the_memory_by_default_and_what_a_setting_says_otherwise(tmp_path: Path):
    from pipelines.resources import Warehouse
    from pipelines.settings import engine_config

    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    auto = engine_config(load_settings({}))
    assert auto == {"memory_limit": f"{max(total // 6, 2**30) // 2**20}MiB", "threads": os.cpu_count()}
    engine = {"CRM_ENGINE_MEMORY_LIMIT": "1.5GiB", "CRM_ENGINE_THREADS": "1"}
    settings = load_settings({**engine, "CRM_WAREHOUSE_PATH": str(tmp_path / "w.duckdb")})
    assert engine_config(settings) == {"memory_limit": "1.5GiB", "threads": 1}
    # every connection the night opens to the warehouse runs under them
    with Warehouse.from_settings(settings).connect() as connection:
        limit, threads = connection.execute(
            "select current_setting('memory_limit'), current_setting('threads')"
        ).fetchone()
    assert (limit, threads) == ("1.5 GiB", 1)


@pytest.mark.parametrize("value", ["lots", "4", "-1GiB", "4 GiB; drop table x"])
def test_an_engine_memory_limit_that_is_not_a_size_is_refused(value: str):
    with pytest.raises(SettingsError, match="engine_memory_limit.*auto, or a size such as 4GiB"):
        load_settings({"CRM_ENGINE_MEMORY_LIMIT": value})
