import json
from datetime import date

import pytest

from pipelines.ingest.contracts import canonical_tables, load_contracts
from pipelines.settings import load_settings
from pipelines.transform.assets import CrmDbtTranslator, dbt_build_args
from pipelines.transform.project import dbt_project, prepare_manifest


def test_the_dbt_command_carries_the_cutoff_and_the_business_settings():
    settings = load_settings({"CRM_CURRENCY": "GBP", "CRM_TIER_GOLD_MIN_SPEND": "1500"})
    command, *options, flag, variables = dbt_build_args(settings, date(2026, 6, 30))
    assert (command, flag) == ("build", "--vars")
    # the night builds and runs the data tests; dbt's unit tests check the code, in `make test`
    assert options == ["--exclude-resource-type", "unit_test"]
    variables = json.loads(variables)
    assert variables["as_of"] == "2026-06-30"
    assert variables["reporting_currency"] == "GBP"
    assert variables["tier_gold_min_spend"] == 1500


def test_every_canonical_table_is_a_dbt_source_with_the_key_of_its_contracts_asset():
    prepare_manifest()
    manifest = json.loads(dbt_project.manifest_path.read_text())
    translator = CrmDbtTranslator()
    raw_sources = [source for source in manifest["sources"].values() if source["schema"] == "raw"]
    source_keys = {translator.get_asset_key(source).to_user_string() for source in raw_sources}
    assert source_keys == {f"raw/{table.label}" for table in canonical_tables().values()}
    # every source is written by the ingest asset of the contract named like it (which waits for the others)
    assert source_keys <= {f"raw/{contract.source}/{contract.table}" for contract in load_contracts()}
    identifiers = {source["identifier"] for source in raw_sources}
    assert identifiers == set(canonical_tables()) == {t for contract in load_contracts() for t in contract.tables}


def test_score_sources_take_the_keys_of_the_ml_assets_that_write_them():
    from pipelines.definitions import build_definitions

    prepare_manifest()
    manifest = json.loads(dbt_project.manifest_path.read_text())
    translator = CrmDbtTranslator()
    # ml.model_runs is the record every ML asset writes (like the meta tables), not one asset's output
    score_keys = {
        translator.get_asset_key(source)
        for source in manifest["sources"].values()
        if source["schema"] == "ml" and source["name"] != "model_runs"
    }
    assert score_keys, "the scores marts read the ML tables as dbt sources"
    materialisable = build_definitions(load_settings()).resolve_asset_graph().materializable_asset_keys
    assert score_keys <= materialisable, "every score source is written by an ML asset of the graph"


def test_every_source_table_has_a_staging_model():
    prepare_manifest()
    manifest = json.loads(dbt_project.manifest_path.read_text())
    staged = {node["name"] for node in manifest["nodes"].values() if node["resource_type"] == "model"}
    for table in canonical_tables():
        assert f"stg_{table}" in staged


def test_the_dbt_resource_neither_asks_dbt_its_version_nor_loads_a_database_handle(monkeypatch):
    import functools
    import importlib.metadata
    import inspect

    import dagster_dbt.core.resource
    from dagster_dbt import DbtCliResource
    from packaging.version import Version

    from pipelines.transform.project import DBT_EXECUTABLE, CrmDbtCliResource, dbt_resource

    # what dagster-dbt does before each dbt command, under the names ours replaces: an upgrade that renames them
    # fails here instead of quietly paying them again
    command = inspect.getsource(DbtCliResource.cli)
    assert "self._cli_version" in command and "self._initialize_dbt_core_adapter(args)" in command
    assert isinstance(DbtCliResource.__dict__["_cli_version"], functools.cached_property)

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"a subprocess was started: {args}")

    monkeypatch.setattr(dagster_dbt.core.resource, "check_output", no_subprocess)
    with pytest.raises(AssertionError, match="a subprocess was started"):
        _ = DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)._cli_version
    resource = dbt_resource()
    assert isinstance(resource, CrmDbtCliResource)
    assert resource._cli_version == Version(importlib.metadata.version("dbt-core"))
    assert resource._initialize_dbt_core_adapter(["build"]) is None
