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
