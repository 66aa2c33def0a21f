"""Contracts that shape a real export: derived columns, filters, several canonical tables from one file."""

from pathlib import Path

import duckdb
import pytest

from pipelines.ingest.contracts import BUILT_IN_DIR, ContractError, canonical_tables, load_contract, load_contracts
from pipelines.ingest.expressions import ExpressionError, parse
from pipelines.ingest.loader import load_table
from pipelines.ingest.reference import markdown
from pipelines.settings import PROJECT_ROOT

LINES = """\
Factura;Fecha;Cliente;Artículo;Descripción;Cantidad;Precio unitario;País
F-1;03/02/2014 10:15;C-17;A-100;Café molido;2;4,50;España
F-1;03/02/2014 10:15;C-17;A-200;Taza;1;7,95;España
F-2;15/03/2014 18:40;C-23;A-100;Café molido;6;4,50;Portugal
F-3;20/03/2014 09:05;;A-300;Tetera;1;19,90;España
A-1;22/03/2014 12:00;C-23;A-100;Café molido;-2;4,50;Portugal
F-4;31/13/2014 11:30;C-31;A-300;Tetera;1;19,90;Francia
"""

CONTRACT = """\
files: ventas/lineas*.csv
format: csv
csv: {delimiter: ";", encoding: cp1252, decimal_separator: ","}
columns:
  - {name: invoice, header: Factura, type: varchar, required: true}
  - {name: invoiced_at, header: Fecha, type: timestamp, format: "%d/%m/%Y %H:%M", required: true}
  - {name: customer, header: Cliente, type: varchar}
  - {name: sku, header: Artículo, type: varchar, required: true}
  - {name: description, header: Descripción, type: varchar}
  - {name: quantity, header: Cantidad, type: integer, required: true}
  - {name: unit_price, header: Precio unitario, type: "decimal(18,4)", required: true}
  - {name: country, header: País, type: varchar}
derive:
  is_credit_note: "starts_with(invoice, 'A-') or quantity < 0"
filter:
  - {keep: "customer is not null", reason: "counter sale without a customer"}
feeds:
  erp/orders:
    where: not is_credit_note
    one_row_per: [order_no]
    columns: {order_no: invoice, customer_no: customer, ordered_at: invoiced_at, sales_channel: {value: store}}
  erp/order_lines:
    where: not is_credit_note
    columns: {order_no: invoice, line_no: _row_number, line_amount: quantity * unit_price}
  erp/returns:
    where: is_credit_note
    columns:
      return_no: "invoice || '-' || _row_number"
      customer_no: customer
      returned_on: invoiced_at
      quantity: abs(quantity)
      refund_amount: abs(quantity * unit_price)
  erp/customers:
    one_row_per: [customer_no]
    columns: {customer_no: customer, country_code: {expression: country, default: ZZ}}
"""


def setup(tmp_path: Path, contract: str = CONTRACT, lines: str = LINES):
    path = tmp_path / "contracts" / "ventas" / "lineas.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(contract, encoding="utf-8")
    landing = tmp_path / "landing"
    (landing / "ventas").mkdir(parents=True, exist_ok=True)
    (landing / "ventas" / "lineas_2014.csv").write_bytes(lines.replace("\n", "\r\n").encode("cp1252"))
    return load_contract(path), landing


def test_one_invoice_line_file_feeds_orders_lines_returns_and_customers(tmp_path: Path):
    contract, landing = setup(tmp_path)
    connection = duckdb.connect()
    [load] = load_table(connection, contract, landing, "run-1")
    assert (load.rows_read, load.rows_loaded, load.rows_quarantined, load.rows_filtered) == (6, 4, 1, 1)
    assert load.filtered == (("counter sale without a customer", 1),)
    assert dict(load.tables) == {"erp__orders": 2, "erp__order_lines": 3, "erp__returns": 1, "erp__customers": 2}
    orders = connection.execute(
        "select order_no, customer_no, ordered_at::varchar, sales_channel from raw.erp__orders order by 1"
    ).fetchall()
    assert orders == [("F-1", "C-17", "2014-02-03 10:15:00", "store"), ("F-2", "C-23", "2014-03-15 18:40:00", "store")]
    lines = connection.execute(
        "select order_no, line_no, sku, quantity, line_amount::varchar from raw.erp__order_lines order by line_no"
    ).fetchall()
    assert lines == [("F-1", 1, "A-100", 2, "9.00"), ("F-1", 2, "A-200", 1, "7.95"), ("F-2", 3, "A-100", 6, "27.00")]
    returns = connection.execute(
        "select return_no, order_no, customer_no, returned_on::varchar, quantity, refund_amount::varchar "
        "from raw.erp__returns"
    ).fetchall()
    assert returns == [("A-1-5", None, "C-23", "2014-03-22", 2, "9.00")]
    customers = connection.execute("select customer_no, country_code from raw.erp__customers order by 1").fetchall()
    assert customers == [("C-17", "España"), ("C-23", "Portugal")]
    [(row, column, reason)] = connection.execute(
        "select row_number, column_name, reason from meta.quarantine"
    ).fetchall()
    assert (row, column) == (6, "invoiced_at") and "31/13/2014" in reason
    ledger = connection.execute(
        "select rows_read, rows_loaded + rows_quarantined + rows_filtered, filtered_reasons::varchar, tables_fed "
        "from meta.load_ledger"
    ).fetchone()
    assert ledger[0] == ledger[1] == 6
    assert "counter sale without a customer" in ledger[2]
    assert sorted(ledger[3]) == sorted(dict(load.tables))


def test_every_raw_row_names_its_file_record_and_contract(tmp_path: Path):
    contract, landing = setup(tmp_path)
    connection = duckdb.connect()
    load_table(connection, contract, landing, "run-1")
    lineage = connection.execute(
        "select distinct _file, _contract from raw.erp__orders union select distinct _file, _contract "
        "from raw.erp__returns"
    ).fetchall()
    assert lineage == [("ventas/lineas_2014.csv", "ventas__lineas")]


def test_a_changed_contract_reloads_its_files_and_replaces_their_rows(tmp_path: Path):
    contract, landing = setup(tmp_path)
    connection = duckdb.connect()
    load_table(connection, contract, landing, "run-1")
    [unchanged] = load_table(connection, contract, landing, "run-2")
    assert unchanged.status == "unchanged"
    path = contract.path
    path.write_text(CONTRACT.replace("{value: store}", "{value: web}"), encoding="utf-8")
    [again] = load_table(connection, load_contract(path), landing, "run-3")
    assert again.status == "loaded" and again.rows_replaced > 0
    assert connection.execute("select distinct sales_channel from raw.erp__orders").fetchall() == [("web",)]
    assert connection.execute("select count(*) from raw.erp__order_lines").fetchone()[0] == 3
    statuses = connection.execute("select status from meta.load_ledger order by loaded_at").fetchall()
    assert statuses == [("replaced",), ("loaded",)]


def test_a_value_the_table_cannot_hold_quarantines_the_row_naming_table_and_column(tmp_path: Path):
    contract, landing = setup(tmp_path, CONTRACT.replace("line_no: _row_number", "line_no: \"'L' || _row_number\""))
    connection = duckdb.connect()
    [load] = load_table(connection, contract, landing, "run-1")
    assert load.rows_quarantined == 1 + 3  # the bad date, and the three lines whose line_no is not a number
    reasons = connection.execute("select reason from meta.quarantine where column_name = 'line_no'").fetchall()
    assert len(reasons) == 3 and all("feeds erp/order_lines: cannot use 'L" in reason for (reason,) in reasons)
    # a quarantined record feeds no table: no order is left, the credit note still loads
    assert connection.execute("select count(*) from raw.erp__orders").fetchone()[0] == 0
    assert connection.execute("select count(*) from raw.erp__returns").fetchone()[0] == 1


def test_duplicate_keys_in_a_feed_that_does_not_collapse_are_quarantined(tmp_path: Path):
    contract, landing = setup(tmp_path, CONTRACT.replace("line_no: _row_number", "line_no: 1"))
    connection = duckdb.connect()
    [load] = load_table(connection, contract, landing, "run-1")
    reasons = [
        r for (r,) in connection.execute("select reason from meta.quarantine where column_name = 'order_no'").fetchall()
    ]
    assert len(reasons) == 1 and "duplicate primary key (erp/order_lines) (order_no=F-1, line_no=1)" in reasons[0]
    assert load.rows_read == load.rows_loaded + load.rows_quarantined + load.rows_filtered


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("erp/customers:", "'erp/clients' is not a canonical table"),
        ("customer_no: customer, ordered_at", "required column 'customer_no' has no value"),
        ('is_credit_note: "starts_with', "function 'read_text' is not one a row expression may use"),
        ("line_no: _row_number", "no column 'nope' in this row"),
        ("one_row_per: [order_no]", "one_row_per must be the table's key"),
    ],
)
def test_a_contract_that_cannot_work_is_refused_when_read_with_the_reason(tmp_path: Path, change: str, message: str):
    broken = {
        "erp/customers:": CONTRACT.replace("erp/customers:", "erp/clients:"),
        "customer_no: customer, ordered_at": CONTRACT.replace("customer_no: customer, ordered_at", "ordered_at"),
        'is_credit_note: "starts_with': CONTRACT.replace(
            "\"starts_with(invoice, 'A-') or quantity < 0\"", "\"read_text('/etc/passwd') is not null\""
        ),
        "line_no: _row_number": CONTRACT.replace("line_no: _row_number", "line_no: nope"),
        "one_row_per: [order_no]": CONTRACT.replace("one_row_per: [order_no]", "one_row_per: [customer_no]"),
    }[change]
    with pytest.raises(ContractError, match=message):
        setup(tmp_path, broken)


@pytest.mark.parametrize(
    "hostile",
    [
        "(select count(*) from raw.erp__orders)",
        "read_csv('/etc/passwd')",
        "getenv('HOME')",
        "quantity; drop table raw.erp__orders",
        "1) or (1=1",
        "sum(quantity)",
        "row_number() over ()",
        "current_setting('threads')",
        "raw.erp__orders.quantity",
        "?",
        "list_transform([1], lambda v: v)",
        "quantity::json",
    ],
)
def test_an_expression_that_reaches_beyond_its_row_is_refused(hostile: str):
    with pytest.raises(ExpressionError):
        parse(hostile, ["quantity", "invoice"])


def test_an_expression_runs_as_the_tree_that_was_checked():
    expression = parse('"order" * 2 + abs(quantity)', ["order", "quantity"])
    assert expression.columns == ("order", "quantity")
    query = f'select {expression.sql()} from (select 3 as "order", -4 as quantity)'
    assert duckdb.connect().execute(query).fetchall() == [(10,)]


def test_built_in_contracts_feed_canonical_tables_with_their_types():
    tables = canonical_tables()
    for contract in load_contracts(BUILT_IN_DIR):
        for feed in contract.feeds:
            assert feed.table in tables, contract.name
            canonical = {column.name: column.type for column in tables[feed.table].columns}
            own = {column.name: column.type for column in contract.columns if column.name in canonical}
            assert own == {name: canonical[name] for name in own}, contract.name


def test_the_canonical_tables_reference_is_generated_from_the_registry():
    assert (PROJECT_ROOT / "docs" / "canonical_tables.md").read_text(encoding="utf-8") == markdown()


def test_every_canonical_table_feeds_capabilities_the_doctor_knows():
    from pipelines.readiness import CAPABILITIES

    known = {capability.key for capability in CAPABILITIES}
    for table in canonical_tables().values():
        assert table.capabilities and set(table.capabilities) <= known, table.label
    assert known == {name for table in canonical_tables().values() for name in table.capabilities}
