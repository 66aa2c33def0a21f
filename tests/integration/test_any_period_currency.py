"""Any company's sales export builds the warehouse: an American shop's invoices from 1997, in dollars, with no
customers, products, returns or exchange-rate files and no CRM, marketing or web data.

The nightly job runs for real. Its ML step is another matter on four customers, so the assertions read the dbt
marts in the warehouse file rather than the published snapshot.
"""

import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tests.conftest import open_warehouse, run_nightly, world_environ

pytestmark = pytest.mark.integration

AS_OF = date(1999, 1, 1)
BACK_DATED = date(1998, 1, 1)
# The ERP contract's format (pipelines/ingest/contracts/erp/): ';' delimited, decimal commas. O5 is in yen, for
# which nobody supplies a rate.
ORDERS = """order_no;customer_no;ordered_at;sales_channel;store_code;currency_code;order_status
O1;C1;1997-03-01 10:00:00;web;;USD;invoiced
O2;C2;1997-06-15 12:30:00;web;;USD;invoiced
O3;C1;1998-02-01 09:15:00;store;NYC01;USD;invoiced
O4;C3;1998-05-05 16:45:00;phone;;USD;invoiced
O5;C4;1998-07-07 11:00:00;web;;JPY;invoiced
"""
ORDER_LINES = """order_no;line_no;sku;quantity;unit_price;line_amount
O1;1;SKU-A;2;10,00;20,00
O1;2;SKU-B;1;5,50;5,50
O2;1;SKU-A;1;10,00;10,00
O3;1;SKU-C;3;4,00;12,00
O4;1;SKU-B;2;5,50;11,00
O5;1;SKU-A;1;1500,00;1500,00
"""


def dollar_environ(root: Path) -> dict[str, str]:
    return world_environ(root) | {"CRM_CURRENCY": "USD"}


def failed_steps(result) -> list[str]:
    return [event.step_key for event in result.all_events if event.event_type_value == "STEP_FAILURE"]


def warehouse(root: Path) -> duckdb.DuckDBPyConnection:
    return open_warehouse(root / "warehouse" / "crm.duckdb")


@pytest.fixture(scope="module")
def dollar_shop(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("dollar_shop")
    (root / "landing" / "erp").mkdir(parents=True)
    (root / "landing" / "erp" / "orders.csv").write_text(ORDERS, encoding="utf-8")
    (root / "landing" / "erp" / "order_lines.csv").write_text(ORDER_LINES, encoding="utf-8")
    return root, run_nightly(dollar_environ(root), AS_OF)


@pytest.fixture(scope="module")
def back_dated_shop(dollar_shop, tmp_path_factory: pytest.TempPathFactory):
    """The same shop run again as of January 1, 1998, on a copy of its landing zone and warehouse."""
    first_root, _ = dollar_shop
    root = tmp_path_factory.mktemp("dollar_shop_back_dated")
    for folder in ("landing", "warehouse"):
        shutil.copytree(first_root / folder, root / folder)
    return root, run_nightly(dollar_environ(root), BACK_DATED)


def test_the_marts_build_from_two_sales_files(dollar_shop):
    _, result = dollar_shop
    assert "dbt_models" not in failed_steps(result), failed_steps(result)
    materialised = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    assert {"marts/dim_customers", "marts/fct_orders", "marts/fct_order_lines", "marts/dim_date"} <= materialised


def test_orders_from_1997_fit_the_calendar(dollar_shop):
    root, _ = dollar_shop
    with warehouse(root) as connection:
        first_day, outside = connection.execute(
            """select
                (select min(date_day) from marts.dim_date),
                (select count(*) from marts.fct_order_lines
                 where order_date not in (select date_day from marts.dim_date))"""
        ).fetchone()
    assert first_day == date(1997, 1, 1)
    assert outside == 0


def test_dollar_sales_need_no_exchange_rates(dollar_shop):
    root, _ = dollar_shop
    with warehouse(root) as connection:
        orders = connection.execute(
            "select order_id, net_revenue, reporting_currency_code from marts.fct_orders order by order_id"
        ).fetchall()
        rates = connection.execute("select distinct rate_to_reporting from marts.fct_order_lines").fetchall()
    assert orders == [
        ("O1", Decimal("25.50"), "USD"),
        ("O2", Decimal("10.00"), "USD"),
        ("O3", Decimal("12.00"), "USD"),
        ("O4", Decimal("11.00"), "USD"),
    ]
    assert rates == [(Decimal(1),)]


def test_products_without_a_catalogue_are_unclassified_and_their_margin_unknown(dollar_shop):
    root, _ = dollar_shop
    with warehouse(root) as connection:
        products = connection.execute(
            """select product_id, product_name, department_name, category_name, subcategory_name
            from marts.dim_products order by product_id"""
        ).fetchall()
        margins = connection.execute(
            """select
                (select count(*) from marts.fct_order_lines where margin is not null),
                (select count(*) from marts.fct_orders where margin is not null or cost_of_goods is not null)"""
        ).fetchone()
    assert products == [
        (sku, sku, "Unclassified", "Unclassified", "Unclassified") for sku in ("SKU-A", "SKU-B", "SKU-C")
    ]
    assert margins == (0, 0)


def test_customers_are_known_from_their_orders(dollar_shop):
    root, _ = dollar_shop
    with warehouse(root) as connection:
        customers = connection.execute(
            """select customer_id, customer_type, country_code, created_date, lifetime_orders
            from marts.dim_customers order by customer_id"""
        ).fetchall()
    assert customers == [
        ("C1", "customer", "ZZ", date(1997, 3, 1), 2),
        ("C2", "customer", "ZZ", date(1997, 6, 15), 1),
        ("C3", "customer", "ZZ", date(1998, 5, 5), 1),
        # the yen order is excluded, the customer who placed it is still known
        ("C4", "customer", "ZZ", date(1998, 7, 7), 0),
    ]


def test_a_line_in_a_currency_without_a_rate_is_excluded_with_its_reason(dollar_shop):
    root, _ = dollar_shop
    with warehouse(root) as connection:
        excluded = connection.execute(
            """select source_table, source_file, source_row_number, source_key, exclusion_reason_code, exclusion_reason
            from marts.fct_row_exclusions order by source_table"""
        ).fetchall()
        reconciliation = connection.execute(
            """select source_table, rows_loaded, rows_in_marts, rows_excluded from marts.mart_source_reconciliation
            where source_table in ('erp__orders', 'erp__order_lines') order by source_table"""
        ).fetchall()
    reason = "no exchange rate from JPY to USD for 1998-07-01 or an earlier month"
    assert excluded == [
        ("erp__order_lines", "erp/order_lines.csv", 6, "O5-1", "rate_missing", reason),
        ("erp__orders", "erp/orders.csv", 5, "O5", "rate_missing", reason),
    ]
    assert reconciliation == [("erp__order_lines", 6, 5, 1), ("erp__orders", 5, 4, 1)]


def test_a_back_dated_run_lists_no_customer_who_came_after_it(back_dated_shop):
    root, result = back_dated_shop
    assert "dbt_models" not in failed_steps(result), failed_steps(result)
    with warehouse(root) as connection:
        customers = connection.execute(
            "select customer_id, created_date from marts.dim_customers order by customer_id"
        ).fetchall()
        orders = connection.execute("select order_id from marts.fct_orders order by order_id").fetchall()
        later = connection.execute(
            """select source_key from marts.fct_row_exclusions
            where source_table = 'erp__orders' and exclusion_reason_code = 'after_as_of' order by source_key"""
        ).fetchall()
        last_day = connection.execute("select max(date_day) from marts.dim_date").fetchone()[0]
    assert customers == [("C1", date(1997, 3, 1)), ("C2", date(1997, 6, 15))]
    assert orders == [("O1",), ("O2",)]
    assert later == [("O3",), ("O4",), ("O5",)]
    assert last_day == date(2001, 1, 1)
