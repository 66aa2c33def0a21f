"""The project's settings: documented defaults in settings.yaml, overridable by a file and by environment variables.

Precedence, highest first: ``CRM_<KEY>`` environment variables, the YAML file named by ``CRM_SETTINGS``, the
defaults in ``pipelines/settings.yaml``. Every key must be known: a typo in an override is an error, not a
silently ignored value.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULTS_FILE = Path(__file__).resolve().parent / "settings.yaml"
ENV_PREFIX = "CRM_"


class SettingsError(ValueError):
    """A settings value is unknown or cannot be read as its type."""


@dataclasses.dataclass(frozen=True)
class Settings:
    landing_dir: Path
    contracts_dir: Path
    warehouse_path: Path
    published_dir: Path
    sensor_interval_seconds: int
    keep_snapshots: int
    dagster_home: Path
    currency: str
    timezone: str
    nightly_cron: str
    default_country: str
    rfm_window_days: int
    churn_window_days: int
    clv_horizon_months: int
    clv_discount_rate: float
    clv_holdout_months: int
    tier_silver_min_spend: float
    tier_gold_min_spend: float
    tier_platinum_min_spend: float
    tier_upgrade_closeness: float
    campaign_control_share: float
    campaign_attribution_days: int

    @property
    def truth_dir(self) -> Path:
        """Where the demo generator writes what the pipeline must never ingest."""
        return self.landing_dir.parent / "truth"

    def today(self) -> date:
        """Today's date in the business timezone: the default as-of date of a run."""
        return datetime.now(ZoneInfo(self.timezone)).date()

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)


_FIELDS = {field.name: field for field in dataclasses.fields(Settings)}


def _convert(key: str, value: object, origin: str) -> object:
    kind = _FIELDS[key].type
    try:
        if kind == "Path":
            path = Path(str(value)).expanduser()
            return path if path.is_absolute() else PROJECT_ROOT / path
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError) as error:
        raise SettingsError(f"setting {key!r} from {origin}: cannot read {value!r} as {kind}") from error


def _read_yaml(path: Path) -> dict[str, object]:
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as error:
        raise SettingsError(f"settings file {path} does not exist") from error
    if not isinstance(content, dict):
        raise SettingsError(f"settings file {path} must hold key: value pairs")
    return content


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings: defaults, then the ``CRM_SETTINGS`` file, then ``CRM_<KEY>`` variables."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    layers: list[tuple[str, Mapping[str, object]]] = [(str(DEFAULTS_FILE), _read_yaml(DEFAULTS_FILE))]
    if environ.get("CRM_SETTINGS"):
        user_file = Path(environ["CRM_SETTINGS"])
        layers.append((str(user_file), _read_yaml(user_file)))
    for origin, layer in layers:
        for key, value in layer.items():
            if key not in _FIELDS:
                raise SettingsError(f"unknown setting {key!r} in {origin}; known: {', '.join(sorted(_FIELDS))}")
            values[key] = _convert(key, value, origin)
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "CRM_SETTINGS":
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key in _FIELDS:
            values[key] = _convert(key, value, f"environment variable {name}")
    missing = sorted(set(_FIELDS) - set(values))
    if missing:
        raise SettingsError(f"settings missing from {DEFAULTS_FILE}: {', '.join(missing)}")
    return Settings(**values)
