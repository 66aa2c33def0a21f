"""The dashboards send no usage statistics, show viewers no Deploy button and listen on this machine only, whatever
folder `streamlit run dashboards/app.py` is started from."""

import tomllib

import pytest
from streamlit import config as streamlit_config

from pipelines.settings import PROJECT_ROOT

# Streamlit reads .streamlit/config.toml in the folder it is started from and beside the main script.
CONFIG_FILES = (PROJECT_ROOT / ".streamlit" / "config.toml", PROJECT_ROOT / "dashboards" / ".streamlit" / "config.toml")
REQUIRED = {
    ("browser", "gatherUsageStats"): False,
    ("client", "toolbarMode"): "viewer",
    ("client", "showErrorDetails"): "none",
    ("server", "address"): "localhost",
}


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda path: str(path.relative_to(PROJECT_ROOT)))
def test_the_config_turns_off_usage_statistics_and_the_deploy_button_and_listens_on_localhost(path):
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    assert {(section, key): config.get(section, {}).get(key) for section, key in REQUIRED} == REQUIRED
    known = streamlit_config.get_config_options()
    for section, options in config.items():
        for key in options:
            assert f"{section}.{key}" in known, f"{path}: {section}.{key} is not a Streamlit option"


def test_the_project_and_script_level_configs_say_the_same():
    project, script = (tomllib.loads(path.read_text(encoding="utf-8")) for path in CONFIG_FILES)
    assert project == script
