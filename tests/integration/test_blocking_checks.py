"""A refused file fails its source's blocking check in a real Dagster run: downstream models and the publish
do not run, and the run log says which file and column."""

import shutil

import pytest

from tests.conftest import run_nightly, world_environ

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def run_with_a_refused_file(small_world, tmp_path_factory):
    root = tmp_path_factory.mktemp("refused")
    shutil.copytree(small_world.landing, root / "landing")
    # An extra ERP orders file whose export lost the sales channel column.
    (root / "landing" / "erp" / "orders_late.csv").write_text(
        "order_no;customer_no;ordered_at;store_code;currency_code;order_status\n"
        "SO99999999;C0000001;2026-06-29 10:00:00;;EUR;invoiced\n",
        encoding="utf-8",
    )
    result = run_nightly(world_environ(root))
    return root, result


def test_the_refused_file_fails_the_blocking_check_naming_file_and_column(run_with_a_refused_file):
    _, result = run_with_a_refused_file
    evaluations = {
        (event.event_specific_data.asset_key.to_user_string(), event.event_specific_data.check_name): event
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    failed = evaluations[("raw/erp/orders", "files_accepted")].event_specific_data
    assert not failed.passed
    assert "erp/orders_late.csv: required column 'sales_channel'" in failed.description
    assert evaluations[("raw/erp/customers", "files_accepted")].event_specific_data.passed


def test_downstream_models_and_the_publish_do_not_run(run_with_a_refused_file):
    root, result = run_with_a_refused_file
    materialized = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    assert "raw/erp/orders" in materialized and "raw/erp/customers" in materialized
    assert "marts/fct_order_lines" not in materialized
    assert "published_snapshot" not in materialized
    assert not (root / "published" / "current.json").exists()
    assert not result.success
