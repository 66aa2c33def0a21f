"""dbt models and tests as Dagster assets and checks, through dagster-dbt: one lineage graph with the ingest."""

import json
import os
from collections.abc import Mapping
from datetime import date
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from pipelines.ingest.assets import raw_asset_key
from pipelines.resources import Warehouse, as_of_date
from pipelines.settings import Settings
from pipelines.transform.project import dbt_project

SCORES_SELECTION = "tag:scores"


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


def dbt_vars(settings: Settings, as_of: date) -> dict[str, object]:
    """The dbt variables of a run: its cutoff and the business settings the models use."""
    return {
        "as_of": as_of.isoformat(),
        "reporting_currency": settings.currency,
        "timezone": settings.timezone,
        "default_country": settings.default_country,
        "rfm_window_days": settings.rfm_window_days,
        "tier_silver_min_spend": settings.tier_silver_min_spend,
        "tier_gold_min_spend": settings.tier_gold_min_spend,
        "tier_platinum_min_spend": settings.tier_platinum_min_spend,
        "campaign_attribution_days": settings.campaign_attribution_days,
    }


def dbt_build_args(settings: Settings, as_of: date) -> list[str]:
    """The dbt command of a run: build (models, snapshots, tests) as of the run's cutoff."""
    return ["build", "--vars", json.dumps(dbt_vars(settings, as_of), sort_keys=True)]


def build_dbt_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """Two steps of one dbt project: the warehouse (everything but the ``scores`` tag), then, once the Python
    models have written their scores, the marts and the history snapshot over them."""
    translator = CrmDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
    # Read the manifest here rather than pass its path: dagster-dbt caches manifests by path for the life of the
    # process, so definitions built after `prepare_manifest(force=True)` would still see the parse before it.
    manifest = json.loads(dbt_project.manifest_path.read_text())

    def dbt_step(name: str, **selection: str) -> dg.AssetsDefinition:
        @dbt_assets(manifest=manifest, project=dbt_project, name=name, dagster_dbt_translator=translator, **selection)
        def step(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse):
            # dbt runs in a subprocess that inherits this environment; profiles.yml reads the path from it.
            os.environ["CRM_WAREHOUSE_PATH"] = warehouse.path
            args = dbt_build_args(settings, as_of_date(context, settings.today()))
            yield from dbt.cli(args, context=context).stream()

        return step

    return [dbt_step("dbt_models", exclude=SCORES_SELECTION), dbt_step("dbt_score_models", select=SCORES_SELECTION)]
