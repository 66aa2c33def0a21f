"""Microsoft's AdventureWorksLT, a real ERP's bulk-load files, through user-written contracts and the nightly job.

The files (tests/fixtures/adventureworks_lt/README.md) are what SQL Server's BULK INSERT reads: Windows-1252,
TAB-separated, no header, no quoting, money as `.0000`, datetimes as `2008-06-01 00:00:00.000`. The contracts
(tests/fixtures/adventureworks_lt/contracts/adventureworks_lt/) are written from docs/contracts.md alone: customers,
orders, order lines and products, one file each. The 32 orders were all placed on one day, so the models that learn
from time (lifetime value, churn) cannot be fitted: the run must still publish, and say why.

Expected figures are computed here from the files with plain Python, not read back from the pipeline.
"""

import csv
import shutil
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import pytest

from pipelines.ingest.contracts import load_contract
from pipelines.ingest.loader import load_table
from tests.conftest import LandedRun, open_warehouse, run_landed

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "adventureworks_lt"
CONTRACTS = FIXTURES / "contracts"
LANDED = {  # file -> the contract that reads it
    "Customer.csv": "adventureworks_lt__customers",
    "SalesOrderHeader.csv": "adventureworks_lt__orders",
    "SalesOrderDetail.csv": "adventureworks_lt__order_lines",
    "Product.csv": "adventureworks_lt__products",
}
AS_OF = date(2008, 6, 2)  # the day after the orders
CENT = Decimal("0.01")


def read_table(name: str) -> list[list[str]]:
    """A bulk-load file as SQL Server reads it: cp1252, TAB between fields, one row a line, no quoting."""
    with (FIXTURES / name).open(encoding="cp1252", newline="") as handle:
        return list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


AdventureWorksRun = LandedRun


@pytest.fixture(scope="module")
def adventureworks_run(tmp_path_factory: pytest.TempPathFactory) -> AdventureWorksRun:
    root = tmp_path_factory.mktemp("adventureworks_lt")
    landing = root / "landing" / "adventureworks_lt"
    landing.mkdir(parents=True)
    for name in LANDED:
        shutil.copyfile(FIXTURES / name, landing / name)
    return run_landed(root, CONTRACTS, AS_OF, CRM_CURRENCY="USD")


def test_the_nightly_run_succeeds_and_publishes(adventureworks_run: AdventureWorksRun):
    events = adventureworks_run.result.all_events
    failures = [event.step_key for event in events if event.event_type_value == "STEP_FAILURE"]
    assert adventureworks_run.result.success, f"failed steps: {failures}"
    assert adventureworks_run.snapshot is not None


def test_every_row_of_every_file_is_loaded(adventureworks_run: AdventureWorksRun):
    with adventureworks_run.published() as connection:
        ledger = {
            source: (status, read, loaded, quarantined, filtered)
            for source, status, read, loaded, quarantined, filtered in connection.execute(
                """select source_table, status, rows_read, rows_loaded, rows_quarantined, rows_filtered
                from meta.load_ledger where source_table like 'adventureworks_lt__%'"""
            ).fetchall()
        }
    rows = {contract: len(read_table(name)) for name, contract in LANDED.items()}
    assert ledger == {contract: ("loaded", count, count, 0, 0) for contract, count in rows.items()}
    assert list(rows.values()) == [847, 32, 542, 295]


def test_the_published_orders_lines_and_customers_reconcile_with_the_files(adventureworks_run: AdventureWorksRun):
    headers, details = read_table("SalesOrderHeader.csv"), read_table("SalesOrderDetail.csv")
    line_totals = [Decimal(detail[6]) for detail in details]
    with adventureworks_run.published() as connection:
        orders, buyers, channels = connection.execute(
            "select count(*), count(distinct customer_id), list(distinct sales_channel) from marts.fct_orders"
        ).fetchone()
        lines, units, revenue = connection.execute(
            "select count(*), sum(quantity), sum(net_revenue) from marts.fct_order_lines"
        ).fetchone()
        customers, purchased = connection.execute(
            "select count(*), count(*) filter (where has_purchased) from marts.dim_customers "
            "where customer_type = 'customer'"
        ).fetchone()
    assert orders == len(headers) == 32
    assert buyers == len({header[10] for header in headers})
    assert channels == ["unknown"]  # every order was placed by a sales person (OnlineOrderFlag 0)
    assert lines == len(details) == 542
    assert units == sum(int(detail[2]) for detail in details)
    # Each line's LineTotal (six decimals) rounded to the cent, as the contract's decimal(18,2) line amount keeps it.
    assert revenue == sum(total.quantize(CENT, ROUND_HALF_UP) for total in line_totals)
    assert abs(revenue - sum(line_totals)) <= Decimal("0.005") * len(details)
    assert customers == len(read_table("Customer.csv")) == 847
    assert purchased == buyers


def test_windows_1252_names_and_emails_load_as_written(adventureworks_run: AdventureWorksRun):
    written = {row[0]: (row[3], row[5], row[9]) for row in read_table("Customer.csv")}
    with open_warehouse(adventureworks_run.warehouse) as connection:
        loaded = {
            customer: (first, last, email)
            for customer, first, last, email in connection.execute(
                "select customer_no, first_name, last_name, email from raw.erp__customers"
            ).fetchall()
        }
    assert loaded == written
    assert loaded["506"] == ("François", "Ferrier", "françois1@adventure-works.com")


def test_a_double_quote_in_a_value_is_text_not_a_quote(tmp_path: Path):
    """BULK INSERT files have no quoting: '"' is an ordinary character (AdventureWorks' XML columns are full of
    them). The contracts' quote character is one the files never hold, so such a value loads as it is."""
    rows = read_table("SalesOrderHeader.csv")
    rows[0][19] = 'Deliver to "Dock 3", not the shop'  # Comment
    landed = tmp_path / "adventureworks_lt" / "SalesOrderHeader.csv"
    landed.parent.mkdir()
    landed.write_bytes("".join("\t".join(row) + "\n" for row in rows).encode("cp1252"))
    contract = load_contract(CONTRACTS / "adventureworks_lt" / "orders.yaml")
    [load] = load_table(duckdb.connect(), contract, tmp_path, "quote-check")
    assert (load.status, load.rows_read, load.rows_loaded, load.rows_quarantined) == ("loaded", 32, 32, 0)


def category_tree() -> dict[str, tuple[str, str]]:
    """Leaf category id -> (top-level name, leaf name), from ProductCategory.csv."""
    rows = read_table("ProductCategory.csv")
    names = {row[0]: row[2] for row in rows}
    return {row[0]: (names[row[1]], row[2]) for row in rows if row[1]}


def test_the_products_contract_names_every_category_of_product_category_csv():
    contract = load_contract(CONTRACTS / "adventureworks_lt" / "products.yaml")
    mapped = dict(contract.column("product_category_id").values)
    assert mapped == {leaf: f"{top} / {name}" for leaf, (top, name) in category_tree().items()}


def test_products_are_published_with_their_department_and_category(adventureworks_run: AdventureWorksRun):
    tree = category_tree()
    # ProductID -> Name, the names of the category ProductCategoryID, ListPrice to the cent (decimal(18,2) rounds
    # half away from zero)
    expected = {
        row[0]: (row[1], *tree[row[8]], Decimal(row[5]).quantize(CENT, ROUND_HALF_UP))
        for row in read_table("Product.csv")
    }
    with adventureworks_run.published() as connection:
        published = {
            product: (name, department, category, list_price)
            for product, name, department, category, list_price in connection.execute(
                "select product_id, product_name, department_name, category_name, list_price from marts.dim_products"
            ).fetchall()
        }
        unknown = connection.execute(
            "select count(*) from marts.fct_order_lines as lines "
            "join marts.dim_products as products using (product_id) where not products.has_product_record"
        ).fetchone()[0]
    assert published == expected
    assert unknown == 0


def test_models_that_cannot_learn_from_one_day_of_orders_say_why(adventureworks_run: AdventureWorksRun):
    with adventureworks_run.published() as connection:
        runs = {
            model: (score_source, notes)
            for model, score_source, notes in connection.execute(
                "select model, score_source, notes from ml.model_runs"
            ).fetchall()
        }
        clv_sources = connection.execute("select list(distinct score_source), count(*) from ml.clv_scores").fetchone()
        churn_scored = connection.execute(
            "select count(churn_probability) from ml.churn_scores where score_source <> 'none'"
        ).fetchone()[0]
    assert {"rfm", "clv", "churn", "tier_movement", "behaviour_segments"} <= set(runs)
    # Lifetime value: no order before the calibration cutoff, so the model cannot be checked; the baseline publishes.
    assert runs["clv"][0] == "baseline"
    assert "calibration cutoff" in runs["clv"][1], runs["clv"][1]
    assert clv_sources == (["baseline"], 32)
    # Churn: no customer at the training or test cutoff, so nothing is scored.
    assert runs["churn"][0] == "none"
    assert "history is shorter" in runs["churn"][1], runs["churn"][1]
    assert churn_scored == 0
    assert runs["rfm"][0] == "model"
