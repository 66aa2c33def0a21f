"""dbt models and tests as Dagster assets and checks, through dagster-dbt: one lineage graph with the ingest."""

import json
import math
import os
import re
from collections.abc import Mapping
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from pipelines.ingest.assets import raw_asset_key
from pipelines.publish.health import record_dbt_tests
from pipelines.resources import Warehouse, as_of_date
from pipelines.settings import Settings
from pipelines.transform.project import dbt_environment, dbt_project, keep_partial_parse, project_checksum

SCORES_SELECTION = "tag:scores"
# The night's two dbt steps and their selections: the warehouse, then the marts over the models' scores.
DBT_STEPS = {"dbt_models": {"exclude": SCORES_SELECTION}, "dbt_score_models": {"select": SCORES_SELECTION}}


class CrmDbtTranslator(DagsterDbtTranslator):
    """dbt sources take the keys of the assets that write them: the ingest asset of a raw table, or the key in the
    source's ``meta.dagster.asset_key`` (the ML assets' score tables). Models are grouped by their layer."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            declared = dbt_resource_props.get("meta", {}).get("dagster", {}).get("asset_key")
            if declared:
                return dg.AssetKey(declared)
            return raw_asset_key(dbt_resource_props["source_name"], dbt_resource_props["name"])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        folders = dbt_resource_props.get("fqn", [])[1:-1]
        return folders[0] if folders else "transform"


class DbtVarError(ValueError):
    """A setting cannot be passed to dbt as it is: the message names the setting and the shape it must have."""


def _checked_code(setting: str, value: object, length: int, example: str, standard: str) -> str:
    text = str(value).strip().upper() if isinstance(value, str) else ""
    if not re.fullmatch(f"[A-Z]{{{length}}}", text):
        raise DbtVarError(
            f"setting {setting!r} is {value!r}: it must be an {standard} code of {length} letters, such as "
            f"{example}; correct it in the settings file or the CRM_{setting.upper()} environment variable"
        )
    return text


def _checked_timezone(setting: str, value: object) -> str:
    try:
        if not isinstance(value, str) or not value or "\x00" in value:
            raise ValueError(value)
        ZoneInfo(value)
    except (ValueError, KeyError, ZoneInfoNotFoundError) as error:
        raise DbtVarError(
            f"setting {setting!r} is {value!r}: it must be an IANA timezone name such as Europe/Madrid; correct it "
            f"in the settings file or the CRM_{setting.upper()} environment variable"
        ) from error
    return value


def _checked_number(setting: str, value: object, *, whole: bool = False, minimum: float | None = None) -> float | int:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not is_number or not math.isfinite(value) or (whole and value != int(value)):
        kind = "a whole number" if whole else "a finite number"
        raise DbtVarError(
            f"setting {setting!r} is {value!r}: it must be {kind}; correct it in the settings file or the "
            f"CRM_{setting.upper()} environment variable"
        )
    if minimum is not None and value < minimum:
        raise DbtVarError(f"setting {setting!r} is {value!r}: it must be at least {minimum:g}")
    return int(value) if whole else value


def _checked_date(setting: str, value: object) -> str:
    if not isinstance(value, date):
        raise DbtVarError(f"the run's {setting} is {value!r}: it must be a date (YYYY-MM-DD)")
    return value.isoformat()


def dbt_vars(settings: Settings, as_of: date) -> dict[str, object]:
    """The dbt variables of a run: its cutoff and the business settings the models use, each checked for the shape
    it must have (a date, an ISO code, a known timezone, a finite number) before it reaches dbt, with an error
    naming the setting otherwise. The models quote them again (dbt_project/macros/literals.sql). With them, the
    checksum of the dbt project's code, which the models built incrementally compare with their last build's."""
    return {
        "project_checksum": project_checksum(),
        "as_of": _checked_date("as_of", as_of),
        "reporting_currency": _checked_code("currency", settings.currency, 3, "EUR", "ISO 4217 currency"),
        "timezone": _checked_timezone("timezone", settings.timezone),
        "default_country": _checked_code("default_country", settings.default_country, 2, "ES", "ISO 3166 country"),
        "rfm_window_days": _checked_number("rfm_window_days", settings.rfm_window_days, whole=True, minimum=1),
        "tier_silver_min_spend": _checked_number("tier_silver_min_spend", settings.tier_silver_min_spend),
        "tier_gold_min_spend": _checked_number("tier_gold_min_spend", settings.tier_gold_min_spend),
        "tier_platinum_min_spend": _checked_number("tier_platinum_min_spend", settings.tier_platinum_min_spend),
        "campaign_attribution_days": _checked_number(
            "campaign_attribution_days", settings.campaign_attribution_days, whole=True, minimum=0
        ),
        "outlier_date_span_years": _checked_number(
            "outlier_date_span_years", settings.outlier_date_span_years, whole=True, minimum=1
        ),
        "channel_min_contacts": _checked_number(
            "channel_min_contacts", settings.channel_min_contacts, whole=True, minimum=1
        ),
    }


def dbt_vars_args(settings: Settings, as_of: date) -> list[str]:
    """``--vars`` and the run's :func:`dbt_vars`, as every dbt command of the night's project takes them."""
    return ["--vars", json.dumps(dbt_vars(settings, as_of), sort_keys=True)]


# dbt's unit tests check the models' code on fixed rows, not the night's data: `make test` runs them
# (tests/integration/test_dbt_unit_tests.py), the night does not (they cost its first dbt step 2-4 s at any size).
NIGHT_EXCLUDED_RESOURCES = ("unit_test",)


def dbt_build_args(settings: Settings, as_of: date) -> list[str]:
    """The dbt command of a run: build (models, snapshots, data tests) as of the run's cutoff."""
    excluded = [argument for kind in NIGHT_EXCLUDED_RESOURCES for argument in ("--exclude-resource-type", kind)]
    return ["build", *excluded, *dbt_vars_args(settings, as_of)]


def night_parse_inputs(settings: Settings, as_of: date) -> dict[str, Any]:
    """A night's dbt ``--vars`` and profile environment, for ``prepare_manifest`` before the run: the run's dbt
    steps see the same and so reuse that parse. A setting dbt cannot take is left to the first dbt step, which
    fails naming it."""
    try:
        args = dbt_vars_args(settings, as_of)
    except DbtVarError:
        args = []
    return {"args": args, "environment": dbt_environment(Warehouse.from_settings(settings))}


def build_dbt_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """Two steps of one dbt project: the warehouse (everything but the ``scores`` tag), then, once the Python
    models have written their scores, the marts and the history snapshot over them."""
    # several sources may name one asset: an ML asset writes its scores and tables beside them (clv_matrices)
    translator = CrmDbtTranslator(
        settings=DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_duplicate_source_asset_keys=True)
    )
    # Read the manifest here rather than pass its path: dagster-dbt caches manifests by path for the life of the
    # process, so definitions built after `prepare_manifest(force=True)` would still see the parse before it.
    manifest = json.loads(dbt_project.manifest_path.read_text())

    def dbt_step(name: str, **selection: str) -> dg.AssetsDefinition:
        @dbt_assets(manifest=manifest, project=dbt_project, name=name, dagster_dbt_translator=translator, **selection)
        def step(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse):
            # dbt runs in a subprocess that inherits this environment; profiles.yml reads the path from it.
            os.environ.update(dbt_environment(warehouse))
            warehouse.wait_until_free(on_wait=context.log.warning)
            args = dbt_build_args(settings, as_of_date(context, settings.today()))
            invocation = dbt.cli(args, context=context, raise_on_error=False)
            yield from invocation.stream()
            keep_partial_parse(invocation.target_path)
            # the tests' results are kept for the Data health page, a failed build's above all; then it fails
            record_dbt_tests(warehouse, context.run.run_id, name, invocation.target_path)
            error = invocation.get_error()
            if error is not None:
                raise error

        return step

    return [dbt_step(name, **selection) for name, selection in DBT_STEPS.items()]
