"""The project's settings: documented defaults in settings.yaml, overridable by a file and by environment variables.

Precedence, highest first: ``CRM_<KEY>`` environment variables, the YAML file named by ``CRM_SETTINGS``, the
defaults in ``pipelines/settings.yaml``. Every key must be known: a typo in an override is an error, not a
silently ignored value.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
    users_file: Path
    currency: str
    timezone: str
    nightly_cron: str
    default_country: str
    display_locale: str
    rfm_window_days: int
    churn_window_days: int
    churn_training_customers: int
    model_refit_days: int
    clv_horizon_months: int
    clv_discount_rate: float
    clv_holdout_months: int
    tier_silver_min_spend: float
    tier_gold_min_spend: float
    tier_platinum_min_spend: float
    tier_upgrade_closeness: float
    campaign_control_share: float
    campaign_attribution_days: int
    campaign_cooldown_days: int
    channel_min_contacts: int
    basket_min_support: float
    basket_min_confidence: float
    basket_min_lift: float
    basket_min_baskets: int
    offer_count: int
    offer_holdout_days: int
    warehouse_lock_wait_seconds: int
    engine_memory_limit: str
    engine_threads: int
    publish_guard_factor: float
    outlier_factor: float
    outlier_date_span_years: int
    outlier_severity: str
    private_files: bool

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


_KINDS = {"Path": "a path", "int": "a whole number", "float": "a number", "bool": "true or false", "str": "text"}


def _convert(key: str, value: object, origin: str) -> object:
    """``value`` as the setting's type, checked against what the setting can be (see :data:`_RULES`)."""
    kind = _FIELDS[key].type
    if value is None or (isinstance(value, str) and not value.strip()):
        raise SettingsError(
            f"setting {key!r} from {origin} has no value: give it one there, or remove it to use the default"
        )
    try:
        if kind == "Path":
            path = Path(str(value)).expanduser()
            converted: object = path if path.is_absolute() else PROJECT_ROOT / path
        elif kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            converted = int(value)  # type: ignore[call-overload]
        elif kind == "float":
            if isinstance(value, bool):
                raise ValueError(value)
            converted = float(value)
        elif kind == "bool":
            text = str(value).strip().lower()
            if not isinstance(value, bool) and text not in ("true", "false", "yes", "no", "1", "0"):
                raise ValueError(text)
            converted = value if isinstance(value, bool) else text in ("true", "yes", "1")
        else:
            converted = str(value).strip()
    except (TypeError, ValueError, OverflowError) as error:
        raise SettingsError(
            f"setting {key!r} from {origin}: cannot read {value!r} as {_KINDS.get(kind, kind)}"
        ) from error
    problem = _problem(key, converted)
    if problem:
        raise SettingsError(f"setting {key!r} from {origin}: {value!r} {problem}")
    return converted


# --- what each setting can be -------------------------------------------------------------------------------

_CRON_FIELDS = (  # name, lowest, highest, names allowed in place of numbers
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_CRON_ITEM = re.compile(r"^(\*|(\w+)(?:-(\w+))?)(?:/(\d+))?$")


def _cron_problem(text: str) -> str | None:
    fields = text.split()
    if len(fields) != len(_CRON_FIELDS):
        return (
            f"must be a cron line of five fields (minute hour day-of-month month day-of-week, e.g. '0 2 * * *'); "
            f"it has {len(fields)}"
        )
    for field, (name, lowest, highest, names) in zip(fields, _CRON_FIELDS, strict=True):
        for item in field.split(","):
            match = _CRON_ITEM.match(item.lower())
            bounds = [part for part in (match.group(2), match.group(3)) if part] if match else None
            if bounds is None or (match.group(4) is not None and int(match.group(4)) == 0):
                return f"has {field!r} as its {name}: write *, a number, a range a-b, a list a,b or a step */n"
            for bound in bounds:
                number = names.index(bound) + (lowest if name == "month" else 0) if bound in names else None
                if number is None and not bound.isdigit():
                    return f"has {bound!r} in its {name}, which is not a number"
                if number is None and not lowest <= int(bound) <= highest:
                    return f"has {bound} as its {name}, outside {lowest}-{highest}"
    return None


def _timezone_problem(text: str) -> str | None:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        return "is not a timezone known to this system's tz database (an IANA name such as Europe/Madrid or UTC)"
    return None


def _between(low: float, high: float | None = None) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        number = float(value)  # type: ignore[arg-type]
        if not math.isfinite(number):
            return "must be a finite number"
        if number < low or (high is not None and number > high):
            return f"must be between {low:g} and {high:g}" if high is not None else f"must be at least {low:g}"
        return None

    return check


def _locale_problem(text: str) -> str | None:
    from babel import Locale, UnknownLocaleError

    try:
        Locale.parse(text)
    except (ValueError, UnknownLocaleError):
        return "must be a locale such as en_GB, es_ES or de_DE (language_COUNTRY)"
    return None


def _matches(pattern: str, what: str) -> Callable[[object], str | None]:
    compiled = re.compile(pattern)
    return lambda value: None if compiled.fullmatch(str(value)) else f"must be {what}"


# Settings not listed here are checked by their type alone: whole numbers are never negative, numbers finite.
_RULES: dict[str, Callable[[object], str | None]] = {
    "engine_memory_limit": _matches(
        r"auto|\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", "auto, or a size such as 4GiB, 3.5GB or 512MiB"
    ),
    "currency": _matches(r"[A-Z]{3}", "an ISO 4217 currency code: three capital letters such as EUR or USD"),
    "default_country": _matches(r"[A-Z]{2}", "an ISO 3166-1 alpha-2 country code: two capital letters such as ES"),
    "display_locale": lambda value: _locale_problem(str(value)),
    "timezone": lambda value: _timezone_problem(str(value)),
    "nightly_cron": lambda value: _cron_problem(str(value)),
    "outlier_severity": lambda value: None if value in ("error", "warn") else "must be error or warn",
    "campaign_control_share": _between(0, 1),
    "basket_min_support": _between(0, 1),
    "basket_min_confidence": _between(0, 1),
    "offer_count": _between(1),
    "basket_min_baskets": _between(1),
    "offer_holdout_days": _between(1),
    "channel_min_contacts": _between(1),
    "tier_upgrade_closeness": _between(0, 1),
    "clv_discount_rate": _between(0, 1),
    "publish_guard_factor": _between(1),
    "outlier_factor": _between(1),
    # zero of these would make a run that scores, keeps or watches nothing
    "sensor_interval_seconds": _between(1),
    "keep_snapshots": _between(1),
    "rfm_window_days": _between(1),
    "churn_window_days": _between(1),
    "churn_training_customers": _between(1000),
    "model_refit_days": _between(1),
    "clv_horizon_months": _between(1),
    "outlier_date_span_years": _between(1),
}
_TIERS = ("tier_silver_min_spend", "tier_gold_min_spend", "tier_platinum_min_spend")


def _problem(key: str, value: object) -> str | None:
    kind = _FIELDS[key].type
    if key in _RULES:
        return _RULES[key](value)
    if kind in ("int", "float"):
        return _between(0)(value)
    return None


def _check_together(values: Mapping[str, object], origins: Mapping[str, str]) -> None:
    """What no single setting shows: the tier thresholds must rise from silver to platinum."""
    for lower, higher in itertools.pairwise(_TIERS):
        if values[lower] > values[higher]:  # type: ignore[operator]
            raise SettingsError(
                f"setting {higher!r} from {origins[higher]} is {values[higher]!r}, below {lower!r} from "
                f"{origins[lower]} ({values[lower]!r}): the tier thresholds must rise from silver to gold to platinum"
            )


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
    origins: dict[str, str] = {}
    layers: list[tuple[str, Mapping[str, object]]] = [(str(DEFAULTS_FILE), _read_yaml(DEFAULTS_FILE))]
    if environ.get("CRM_SETTINGS"):
        user_file = Path(environ["CRM_SETTINGS"])
        layers.append((str(user_file), _read_yaml(user_file)))
    for origin, layer in layers:
        for key, value in layer.items():
            if key not in _FIELDS:
                raise SettingsError(f"unknown setting {key!r} in {origin}; known: {', '.join(sorted(_FIELDS))}")
            values[key], origins[key] = _convert(key, value, origin), origin
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "CRM_SETTINGS":
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key in _FIELDS:
            origin = f"environment variable {name}"
            values[key], origins[key] = _convert(key, value, origin), origin
    missing = sorted(set(_FIELDS) - set(values))
    if missing:
        raise SettingsError(f"settings missing from {DEFAULTS_FILE}: {', '.join(missing)}")
    _check_together(values, origins)
    return Settings(**values)


# "auto" gives the engine a sixth of the machine's memory: 4 GiB of 24. The engine's limit covers its buffers
# (tables, hash tables, sorts), which spill to disk beyond it; the night's Python steps and the engine's own
# bookkeeping come on top, so the whole run stays well inside the machine.
AUTO_MEMORY_SHARE = 6


def engine_config(settings: Settings) -> dict[str, object]:
    """DuckDB's ``memory_limit`` and ``threads`` for every connection a run opens (warehouse, dbt, in-memory
    model steps), from the ``engine_memory_limit`` and ``engine_threads`` settings with "auto" and 0 resolved."""
    memory = settings.engine_memory_limit.replace(" ", "")
    if memory == "auto":
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        memory = f"{max(total // AUTO_MEMORY_SHARE, 2**30) // 2**20}MiB"
    return {"memory_limit": memory, "threads": settings.engine_threads or os.cpu_count() or 1}
