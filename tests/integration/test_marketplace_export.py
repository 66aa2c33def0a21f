"""A real-world multi-file export: a customer key new with every order, the person in another column of another
file, cancelled orders filtered out at the door, products without a category. Contracts from the docs alone."""

import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tests.conftest import open_warehouse, run_nightly, world_environ

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "marketplace"


@pytest.fixture(scope="module")
def marketplace_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("marketplace")
    shutil.copytree(FIXTURE / "landing", root / "landing")
    environ = {**world_environ(root), "CRM_CONTRACTS_DIR": str(FIXTURE / "contracts"), "CRM_CURRENCY": "BRL"}
    result = run_nightly(environ, as_of=date(2018, 1, 1))
    failures = [event.step_key for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    assert result.success, f"failed steps: {failures}"
    return root


def warehouse(root: Path) -> duckdb.DuckDBPyConnection:
    return open_warehouse(root / "warehouse" / "crm.duckdb")


def test_customer_keys_of_one_person_are_one_customer(marketplace_run: Path):
    with warehouse(marketplace_run) as connection:
        people = connection.execute(
            "select lifetime_orders from marts.dim_customers where customer_type = 'customer' "
            "order by lifetime_orders desc"
        ).fetchall()
        keys = connection.execute("select count(distinct customer_id) from marts.fct_orders").fetchone()[0]
    # ana (3 orders under 3 keys), bruno (2 under 2), davi (1); carla's only order was cancelled
    assert people == [(3,), (2,), (1,), (0,)]
    assert keys == 3


def test_cancelled_orders_are_filtered_at_the_door_and_their_lines_excluded_with_a_reason(marketplace_run: Path):
    with warehouse(marketplace_run) as connection:
        filtered = connection.execute(
            "select rows_filtered, filtered_reasons::varchar from meta.load_ledger "
            "where source_table = 'marketplace__orders'"
        ).fetchone()
        lines, revenue = connection.execute("select count(*), sum(net_revenue) from marts.fct_order_lines").fetchone()
        raw_lines = connection.execute("select count(*) from raw.erp__order_lines").fetchone()[0]
    assert filtered[0] == 1 and "order canceled or unavailable" in filtered[1]
    assert (raw_lines, lines) == (9, 8)
    assert revenue == Decimal("1248.49")


def test_a_product_without_a_category_is_unclassified(marketplace_run: Path):
    with warehouse(marketplace_run) as connection:
        categories = dict(connection.execute("select product_id, category_name from marts.dim_products").fetchall())
    assert categories["prodC"] == "Unclassified" and categories["prodA"] == "perfumaria"
