from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.ingest.contracts import ContractError, load_contract, load_contracts
from pipelines.ingest.loader import load_table

CONTRACT = """
description: test orders
files: shop/orders*.csv
format: csv
csv: {delimiter: ";", decimal_separator: ","}
primary_key: [order_no]
columns:
  - {name: order_no, header: Order No, type: varchar, required: true}
  - {name: ordered_on, header: Date, type: date, format: "%d/%m/%Y", required: true}
  - {name: amount, header: Amount, type: "decimal(18,2)", required: true}
  - {name: note, header: Note, type: varchar}
"""


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    (tmp_path / "contracts" / "shop").mkdir(parents=True)
    (tmp_path / "contracts" / "shop" / "orders.yaml").write_text(CONTRACT, encoding="utf-8")
    (tmp_path / "landing" / "shop").mkdir(parents=True)
    return tmp_path


def write(landing: Path, name: str, text: str, encoding: str = "utf-8") -> None:
    (landing / "landing" / "shop" / name).write_bytes(text.encode(encoding))


def load(landing: Path):
    contract = load_contract(landing / "contracts" / "shop" / "orders.yaml")
    connection = duckdb.connect()
    loads = load_table(connection, contract, landing / "landing", run_id="test-run")
    return connection, loads


def test_good_rows_load_typed_and_bad_rows_are_quarantined_with_file_row_column_and_reason(landing: Path):
    write(
        landing,
        "orders_1.csv",
        "Order No;Date;Amount;Note\n"
        "A1;31/01/2025;1234,50;first\n"
        "A2;2025-02-01;10,00;iso date where day-first is declared\n"
        "A3;01/02/2025;;no amount\n"
        "A4;01/02/2025;12,5;\n",
    )
    connection, loads = load(landing)
    assert [(load.rows_read, load.rows_loaded, load.rows_quarantined) for load in loads] == [(4, 2, 2)]
    rows = connection.execute(
        "select order_no, ordered_on::varchar, amount::varchar from raw.shop__orders order by 1"
    ).fetchall()
    assert rows == [("A1", "2025-01-31", "1234.50"), ("A4", "2025-02-01", "12.50")]
    quarantined = connection.execute(
        "select file, row_number, column_name, reason from meta.quarantine order by row_number"
    ).fetchall()
    assert quarantined == [
        ("shop/orders_1.csv", 2, "ordered_on", "cannot read '2025-02-01' as date in format %d/%m/%Y"),
        ("shop/orders_1.csv", 3, "amount", "required value missing"),
    ]


def test_every_file_reconciles_rows_read_with_loaded_plus_quarantined(landing: Path):
    write(landing, "orders_1.csv", "Order No;Date;Amount;Note\nA1;31/01/2025;1,00;\n")
    write(landing, "orders_2.csv", "Order No;Date;Amount;Note\nB1;xx;1,00;\nB2;01/01/2025;2,00;\n")
    connection, _ = load(landing)
    ledger = connection.execute(
        "select file, rows_read, rows_loaded, rows_quarantined from meta.load_ledger order by file"
    ).fetchall()
    assert ledger == [("shop/orders_1.csv", 1, 1, 0), ("shop/orders_2.csv", 2, 1, 1)]
    assert connection.execute("select count(*) from raw.shop__orders").fetchone()[0] == 2


def test_a_file_without_a_required_column_is_refused_naming_file_and_column(landing: Path):
    write(landing, "orders_1.csv", "Order No;Amount;Note\nA1;1,00;\n")
    connection, loads = load(landing)
    assert loads[0].status == "refused"
    assert "shop/orders_1.csv: required column 'ordered_on' (header 'Date') missing" in loads[0].message
    assert (loads[0].rows_read, loads[0].rows_loaded, loads[0].rows_quarantined) == (1, 0, 1)
    assert connection.execute("select count(*) from raw.shop__orders").fetchone()[0] == 0


def test_an_optional_column_missing_from_the_file_loads_as_null_and_extra_columns_are_reported(landing: Path):
    write(landing, "orders_1.csv", "Order No;Date;Amount;Channel\nA1;31/01/2025;1,00;web\n")
    connection, loads = load(landing)
    assert loads[0].unknown_columns == ("Channel",)
    assert connection.execute("select note from raw.shop__orders").fetchall() == [(None,)]


def test_latin1_text_round_trips(landing: Path):
    contract = CONTRACT.replace('decimal_separator: ","}', 'decimal_separator: ",", encoding: latin-1}')
    (landing / "contracts" / "shop" / "orders.yaml").write_text(contract, encoding="utf-8")
    write(landing, "orders_1.csv", "Order No;Date;Amount;Note\nA1;31/01/2025;1,00;Muñoz Pérez\n", encoding="latin-1")
    connection, _ = load(landing)
    assert connection.execute("select note from raw.shop__orders").fetchone()[0] == "Muñoz Pérez"


def test_a_headerless_file_is_read_by_column_position(tmp_path: Path):
    folder = tmp_path / "contracts" / "pbx"
    folder.mkdir(parents=True)
    (folder / "calls.yaml").write_text(
        "files: pbx/Master.csv\nformat: csv\ncsv: {header: false}\ncolumns:\n"
        "  - {name: caller, type: varchar}\n  - {name: seconds, type: integer, required: true}\n",
        encoding="utf-8",
    )
    (tmp_path / "landing" / "pbx").mkdir(parents=True)
    (tmp_path / "landing" / "pbx" / "Master.csv").write_text('"+34600111222",35\n"",7\n', encoding="utf-8")
    connection = duckdb.connect()
    loads = load_table(connection, load_contract(folder / "calls.yaml"), tmp_path / "landing", "run")
    assert loads[0].rows_loaded == 2
    assert connection.execute("select caller, seconds from raw.pbx__calls order by seconds").fetchall() == [
        (None, 7),
        ("+34600111222", 35),
    ]


def test_parquet_files_load_through_the_same_contract_mechanism(tmp_path: Path):
    folder = tmp_path / "contracts" / "site"  # a table of its own (web/events is canonical, with other columns)
    folder.mkdir(parents=True)
    (folder / "events.yaml").write_text(
        "files: web/*.parquet\nformat: parquet\ncolumns:\n"
        "  - {name: event_id, type: varchar, required: true}\n  - {name: clicks, type: integer}\n",
        encoding="utf-8",
    )
    (tmp_path / "landing" / "web").mkdir(parents=True)
    pl.DataFrame({"event_id": ["e1", None], "clicks": [3, 4]}).write_parquet(tmp_path / "landing" / "web" / "a.parquet")
    connection = duckdb.connect()
    loads = load_table(connection, load_contract(folder / "events.yaml"), tmp_path / "landing", "run")
    assert (loads[0].rows_loaded, loads[0].rows_quarantined) == (1, 1)


@pytest.mark.parametrize("own_row_column", [False, True], ids=["numbered by the reader", "a column of that name"])
def test_parquet_rows_are_numbered_from_one_in_file_order(tmp_path: Path, own_row_column: bool):
    folder = tmp_path / "contracts" / "site"
    folder.mkdir(parents=True)
    (folder / "events.yaml").write_text(
        "files: web/*.parquet\nformat: parquet\ncolumns:\n  - {name: event_id, type: varchar, required: true}\n",
        encoding="utf-8",
    )
    (tmp_path / "landing" / "web").mkdir(parents=True)
    events = pl.DataFrame({"event_id": [f"e{i}" if i % 3 else None for i in range(1, 200_001)]})
    if own_row_column:  # a file's own column of the reader's name is the file's, kept among the unknown columns
        events = events.with_columns(file_row_number=pl.lit("mine"))
    events.write_parquet(tmp_path / "landing" / "web" / "a.parquet", row_group_size=7_000)
    connection = duckdb.connect(config={"threads": 2})
    [load] = load_table(connection, load_contract(folder / "events.yaml"), tmp_path / "landing", "run")
    assert (load.rows_loaded, load.rows_quarantined) == (133_334, 66_666)
    numbers = connection.execute("select _row_number, event_id from raw.site__events").fetchall()
    assert all(event_id == f"e{number}" for number, event_id in numbers)
    quarantined = connection.execute("select row_number, record from meta.quarantine order by row_number").fetchall()
    assert [number for number, _ in quarantined[:3]] == [3, 6, 9]
    assert ("file_row_number" in quarantined[0][1]) is own_row_column, "the reader's numbering is not the row's"


def test_a_contract_with_an_unknown_type_names_the_file_and_column(tmp_path: Path):
    path = tmp_path / "shop" / "orders.yaml"
    path.parent.mkdir()
    path.write_text("files: x\nformat: csv\ncolumns:\n  - {name: amount, type: money}\n", encoding="utf-8")
    with pytest.raises(ContractError, match=r"orders.yaml: column amount: unknown type 'money'"):
        load_contract(path)


def test_the_built_in_contracts_all_parse_and_name_their_raw_tables():
    contracts = load_contracts()
    assert len(contracts) == 17
    assert {"erp__orders", "crm__contacts", "callcenter__calls", "web__events", "sales__invoice_lines"} <= {
        c.name for c in contracts
    }
