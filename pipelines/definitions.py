"""The Dagster code location: assembles the ingest, transform, ML and publish assets, the job and the schedule."""

from __future__ import annotations

import dagster as dg

from models_ml import engine
from pipelines.ingest.assets import build_ingest_asset, feeding_contracts
from pipelines.ingest.contracts import BUILT_IN_DIR, load_contracts
from pipelines.ingest.sensors import build_landing_sensor
from pipelines.ml.assets import build_ml_assets
from pipelines.ml.marketing_assets import build_marketing_assets
from pipelines.privacy import apply_umask
from pipelines.publish.assets import build_publish_asset
from pipelines.publish.schedules import build_nightly_schedule
from pipelines.resources import Warehouse
from pipelines.runs import NIGHTLY_JOB
from pipelines.settings import Settings, engine_config, load_settings
from pipelines.transform.assets import build_dbt_assets
from pipelines.transform.project import dbt_resource, prepare_manifest


def build_definitions(settings: Settings, loggers: dict[str, dg.LoggerDefinition] | None = None) -> dg.Definitions:
    prepare_manifest()
    # the model steps' in-memory engines get the run's memory and threads, as the warehouse and dbt do
    engine.configure(**engine_config(settings), temp_directory=str(settings.warehouse_path.parent / "models.tmp"))
    contracts = load_contracts(BUILT_IN_DIR, settings.contracts_dir)
    fed_by = feeding_contracts(contracts)
    ingest = [build_ingest_asset(contract, fed_by[contract.name], settings) for contract in contracts]
    dbt_models = build_dbt_assets(settings)
    ml = [*build_ml_assets(settings), *build_marketing_assets(settings)]
    publish = build_publish_asset([*ingest, *dbt_models, *ml], settings)
    nightly = dg.define_asset_job(NIGHTLY_JOB, selection=dg.AssetSelection.all(), description="The whole graph.")
    return dg.Definitions(
        assets=[*ingest, *dbt_models, *ml, publish],
        jobs=[nightly],
        schedules=[build_nightly_schedule(nightly, settings.nightly_cron, settings.timezone)],
        sensors=[
            build_landing_sensor(
                nightly, contracts, settings.landing_dir, settings.sensor_interval_seconds, settings.today
            )
        ],
        resources={
            "warehouse": Warehouse.from_settings(settings),
            "dbt": dbt_resource(),
        },
        # DuckDB allows one writer: the steps of a run go one after another in one process.
        executor=dg.in_process_executor,
        loggers=loggers,
    )


_settings = load_settings()
apply_umask(_settings)
defs = build_definitions(_settings)
