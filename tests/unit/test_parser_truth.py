"""Rows read are counted on the file's bytes, not taken from the CSV parser: every physical data line ends loaded,
quarantined (with its line) or filtered, whatever a stray quote, a NUL, a cut or mixed line ends do to the parser.
Also: gzip files, UTF-16/UTF-32 byte-order marks, and invisible characters in text cells."""

import codecs
import gzip
from pathlib import Path

import duckdb
import pytest

from pipelines.ingest.contracts import load_contract
from pipelines.ingest.loader import load_table
from pipelines.ingest.readers import count_lines, scan_file

CONTRACT = """
files: shop/orders*.csv*
format: csv
csv: {{delimiter: ",", encoding: {encoding}}}
primary_key: [id]
columns:
  - {{name: id, type: integer, required: true}}
  - {{name: name, type: varchar}}
  - {{name: amount, type: "decimal(18,2)"}}
"""


def numbered_lines(count: int = 6000) -> list[str]:
    """The operator's file: a header and ``count`` clean records, record i on physical line i + 1."""
    return ["id,name,amount"] + [f"{i},name{i},{i}.5" for i in range(1, count + 1)]


def ingest(tmp_path: Path, name: str, content: bytes, encoding: str = "utf-8"):
    (tmp_path / "contracts" / "shop").mkdir(parents=True, exist_ok=True)
    (tmp_path / "landing" / "shop").mkdir(parents=True, exist_ok=True)
    contract_file = tmp_path / "contracts" / "shop" / "orders.yaml"
    contract_file.write_text(CONTRACT.format(encoding=encoding), encoding="utf-8")
    (tmp_path / "landing" / "shop" / name).write_bytes(content)
    connection = duckdb.connect()
    [load] = load_table(connection, load_contract(contract_file), tmp_path / "landing", "truth")
    return connection, load


def quarantined(connection) -> list[tuple]:
    return connection.execute(
        "select row_number, reason_code, reason from meta.quarantine order by row_number nulls first"
    ).fetchall()


def loaded_ids(connection) -> list[int]:
    return [row[0] for row in connection.execute("select id from raw.shop__orders order by id").fetchall()]


def assert_reconciles(connection, load) -> None:
    """The ledger's figures add up and match the tables."""
    assert load.rows_read == load.rows_loaded + load.rows_quarantined + load.rows_filtered
    assert connection.execute("select count(*) from raw.shop__orders").fetchone()[0] == load.rows_loaded
    distinct = connection.execute("select count(distinct row_number) from meta.quarantine").fetchone()[0]
    assert distinct == load.rows_quarantined
    ledger = connection.execute("select rows_read, rows_loaded, rows_quarantined, blank_lines from meta.load_ledger")
    assert ledger.fetchall() == [(load.rows_read, load.rows_loaded, load.rows_quarantined, load.blank_lines)]


def test_a_stray_quote_quarantines_its_line_and_loses_no_line_after_it(tmp_path: Path):
    lines = numbered_lines()
    lines[3000] = '3000,"bad name,3000.5'
    connection, load = ingest(tmp_path, "orders.csv", ("\n".join(lines) + "\n").encode())
    assert (load.status, load.rows_read, load.rows_loaded, load.rows_quarantined) == ("loaded", 6000, 5999, 1)
    assert quarantined(connection) == [
        (3000, "malformed", "malformed record: line 3,001: a quote opens a value that the line does not close")
    ]
    assert loaded_ids(connection) == [i for i in range(1, 6001) if i != 3000]
    assert "read line by line" in load.message
    assert_reconciles(connection, load)


def test_a_stray_quote_closed_by_a_later_one_swallows_no_record(tmp_path: Path):
    # The parser reads lines 2 to 4 as one record whose name holds two whole records; the line count adds up.
    content = b'id,name,amount\n1,"abc,5\n2,def,6\n3,ghi",7\n4,x,8\n'
    connection, load = ingest(tmp_path, "orders.csv", content)
    assert (load.rows_read, load.rows_loaded, load.rows_quarantined) == (4, 2, 2)
    assert loaded_ids(connection) == [2, 4]
    assert [(row, code) for row, code, _ in quarantined(connection)] == [(1, "malformed"), (3, "malformed")]
    assert "hold whole lines of records" in load.message
    assert_reconciles(connection, load)


def test_a_quote_inside_a_value_neither_loses_nor_double_counts_a_line(tmp_path: Path):
    lines = numbered_lines()
    lines[3000] = '3000,ba"d name,3000.5'
    connection, load = ingest(tmp_path, "orders.csv", ("\n".join(lines) + "\n").encode())
    assert load.rows_read == 6000
    assert load.rows_loaded + load.rows_quarantined == 6000
    assert set(range(1, 6001)) - set(loaded_ids(connection)) == {row for row, *_ in quarantined(connection)}
    assert_reconciles(connection, load)


def test_a_closed_quote_followed_by_text_is_one_malformed_record(tmp_path: Path):
    lines = numbered_lines(50)
    lines[20] = '20,"bad" name,20.5'
    connection, load = ingest(tmp_path, "orders.csv", ("\n".join(lines) + "\n").encode())
    assert (load.rows_read, load.rows_loaded, load.rows_quarantined) == (50, 49, 1)
    assert [(row, code) for row, code, _ in quarantined(connection)] == [(20, "malformed")]
    assert_reconciles(connection, load)


def test_quoted_line_breaks_stay_one_record_and_blank_lines_are_counted_apart(tmp_path: Path):
    content = b'id,name,amount\n1,"two\nlines",1.5\n\n2,"with\n\nblank line inside",2.5\n\n3,c,3.5\n'
    connection, load = ingest(tmp_path, "orders.csv", content)
    assert (load.rows_read, load.rows_loaded, load.blank_lines, load.message) == (3, 3, 2, "")
    names = connection.execute("select name from raw.shop__orders order by id").fetchall()
    assert names == [("two\nlines",), ("with\n\nblank line inside",), ("c",)]
    assert_reconciles(connection, load)


def test_a_file_cut_in_the_middle_of_a_quoted_value_accounts_for_every_line(tmp_path: Path):
    content = b'id,name,amount\n1,a,1.5\n2,b,2.5\n3,"the note was cut\nhere'
    connection, load = ingest(tmp_path, "orders.csv", content)
    assert load.status == "loaded", load.message
    assert (load.rows_read, load.rows_loaded, load.rows_quarantined) == (4, 2, 2)
    rows = quarantined(connection)
    assert [(row, code) for row, code, _ in rows] == [(3, "malformed"), (4, "malformed")]
    assert "line 4: a quote opens a value that the line does not close" in rows[0][2]
    assert loaded_ids(connection) == [1, 2]
    assert_reconciles(connection, load)


def test_nul_bytes_neither_hide_nor_add_lines(tmp_path: Path):
    content = b"id,name,amount\n1,a\x00b,1.5\n\x00\x00\x00\n2,b,2.5\n3,\x00,3.5\n"
    connection, load = ingest(tmp_path, "orders.csv", content)
    assert (load.rows_read, load.rows_loaded, load.rows_quarantined) == (4, 3, 1)
    assert [(row, code) for row, code, _ in quarantined(connection)] == [(2, "malformed")]
    assert loaded_ids(connection) == [1, 2, 3]
    names = connection.execute("select name from raw.shop__orders order by id").fetchall()
    assert names == [("ab",), ("b",), (None,)], "a NUL is dropped from a text cell: no table holds one"
    assert_reconciles(connection, load)


def test_mixed_line_ends_each_end_a_line(tmp_path: Path):
    content = b"id,name,amount\r\n1,a,1.5\n2,b,2.5\r3,c,3.5\r\n4,d,4.5"
    connection, load = ingest(tmp_path, "orders.csv", content)
    assert (load.rows_read, load.rows_loaded, load.rows_quarantined) == (4, 4, 0), load.message
    assert loaded_ids(connection) == [1, 2, 3, 4]
    assert_reconciles(connection, load)


def test_a_gzip_file_loads_and_its_lines_are_counted_through_gzip(tmp_path: Path):
    lines = numbered_lines(500)
    lines[100] = '100,"bad name,100.5'
    content = gzip.compress(("\n".join(lines) + "\n").encode())
    connection, load = ingest(tmp_path, "orders.csv.gz", content)
    assert (load.rows_read, load.rows_loaded, load.rows_quarantined) == (500, 499, 1)
    assert [(row, code) for row, code, _ in quarantined(connection)] == [(100, "malformed")]
    assert load.sha256 == scan_file(tmp_path / "landing" / "shop" / "orders.csv.gz").sha256
    assert_reconciles(connection, load)


def test_gzip_is_recognised_by_its_magic_bytes_not_its_name(tmp_path: Path):
    content = gzip.compress(b"id,name,amount\n1,a,1.5\n2,b,2.5\n")
    _, load = ingest(tmp_path, "orders.csv", content)
    assert (load.status, load.rows_read, load.rows_loaded) == ("loaded", 2, 2)
    assert scan_file(tmp_path / "landing" / "shop" / "orders.csv").gzip


def test_a_gzip_file_cut_short_is_refused_saying_so(tmp_path: Path):
    content = gzip.compress(("\n".join(numbered_lines(2000)) + "\n").encode())
    connection, load = ingest(tmp_path, "orders.csv.gz", content[: len(content) // 2])
    assert load.status == "refused"
    assert "ends in the middle of its gzip stream" in load.message
    assert quarantined(connection)[0][1] == "refused"


@pytest.mark.parametrize(
    ("codec", "family", "order"),
    [("utf-16-le", "utf-16", "little"), ("utf-16-be", "utf-16", "big"),
     ("utf-32-le", "utf-32", "little"), ("utf-32-be", "utf-32", "big")],
)  # fmt: skip
def test_a_utf16_or_utf32_file_is_refused_naming_its_byte_order_mark_unless_declared(tmp_path, codec, family, order):
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE,
           "utf-32-le": codecs.BOM_UTF32_LE, "utf-32-be": codecs.BOM_UTF32_BE}[codec]  # fmt: skip
    content = bom + "id,name,amount\n1,Muñoz,1.5\n2,Ωmega,2.5\n".encode(codec)
    connection, load = ingest(tmp_path / "undeclared", "orders.csv", content)
    assert load.status == "refused"
    assert (
        f"shop/orders.csv: file is {family.upper()} ({order}-endian byte-order mark), the contract says utf-8; "
        f"declare csv: {{encoding: {family}}}"
    ) in load.message
    assert (load.rows_read, load.rows_quarantined) == (2, 2)
    assert quarantined(connection)[0][1] == "refused"

    connection, load = ingest(tmp_path / "declared", "orders.csv", content, encoding=family)
    assert (load.status, load.rows_read, load.rows_loaded) == ("loaded", 2, 2), load.message
    names = connection.execute("select name from raw.shop__orders order by id").fetchall()
    assert names == [("Muñoz",), ("Ωmega",)]


def test_invisible_characters_and_unicode_spaces_leave_text_cells_before_they_are_cast(tmp_path: Path):
    content = "id,name,amount\n\u200b1\u200b,\u00a0Ana\u2060 Pérez\u3000,\ufeff1.5\u00a0\n2 ,\u200cEva\u200d, 2.5\n"
    connection, load = ingest(tmp_path, "orders.csv", content.encode())
    assert (load.rows_read, load.rows_loaded, load.rows_quarantined) == (2, 2, 0)
    rows = connection.execute("select id, name, amount::varchar from raw.shop__orders order by id").fetchall()
    assert rows == [(1, "Ana Pérez", "1.50"), (2, "Eva", "2.50")]
    joined = connection.execute("select count(*) from raw.shop__orders join (values (1), (2)) as keys(k) on id = k")
    assert joined.fetchone()[0] == 2


def test_a_zero_width_space_in_a_text_key_joins_like_the_bare_key(tmp_path: Path):
    contract = CONTRACT.format(encoding="utf-8").replace("type: integer", "type: varchar")
    (tmp_path / "contracts" / "shop").mkdir(parents=True)
    (tmp_path / "landing" / "shop").mkdir(parents=True)
    (tmp_path / "contracts" / "shop" / "orders.yaml").write_text(contract, encoding="utf-8")
    (tmp_path / "landing" / "shop" / "orders.csv").write_text("id,name,amount\nC\u200b42,x,1\n", encoding="utf-8")
    connection = duckdb.connect()
    [load] = load_table(connection, load_contract(tmp_path / "contracts" / "shop" / "orders.yaml"),
                        tmp_path / "landing", "truth")  # fmt: skip
    assert load.rows_loaded == 1
    assert connection.execute("select count(*) from raw.shop__orders where id = 'C42'").fetchone()[0] == 1


def test_the_line_count_sees_every_kind_of_line_end():
    assert count_lines([b"a\nb\r\nc\rd"]) == count_lines([b"a\n", b"b\r", b"\nc\r", b"d"])
    counted = count_lines([b"a\r", b"\n\r", b"\n", b"b\n\n"], quote='"')
    assert (counted.lines, counted.blank, counted.has_quote) == (4, 2, False)


def load_calls(tmp_path: Path, csv_options: str, content: bytes):
    """A call-center export: caller and seconds, with the given csv options."""
    (tmp_path / "contracts" / "pbx").mkdir(parents=True)
    (tmp_path / "landing" / "pbx").mkdir(parents=True)
    (tmp_path / "contracts" / "pbx" / "calls.yaml").write_text(
        f"files: pbx/Master.csv\nformat: csv\ncsv: {csv_options}\ncolumns:\n"
        "  - {name: caller, type: varchar}\n  - {name: seconds, type: integer, required: true}\n",
        encoding="utf-8",
    )
    (tmp_path / "landing" / "pbx" / "Master.csv").write_bytes(content)
    connection = duckdb.connect()
    [load] = load_table(connection, load_contract(tmp_path / "contracts" / "pbx" / "calls.yaml"),
                        tmp_path / "landing", "truth")  # fmt: skip
    rows = connection.execute("select _row_number, caller, seconds from raw.pbx__calls order by 1").fetchall()
    return load, rows, quarantined(connection)


def test_line_mode_reads_a_headerless_file_by_position(tmp_path: Path):
    load, rows, bad = load_calls(tmp_path, "{header: false}", b'"+34600111222",35\n"+34",7\n"cut,8\n"x",9\n')
    assert (load.rows_read, load.rows_loaded, load.rows_quarantined) == (4, 3, 1)
    assert rows == [(1, "+34600111222", 35), (2, "+34", 7), (4, "x", 9)]
    assert [(row, code) for row, code, _ in bad] == [(3, "malformed")]
    assert "line 3: a quote opens a value" in bad[0][2]


def test_line_mode_numbers_lines_of_a_transcoded_file_with_title_rows(tmp_path: Path):
    content = 'Report\nof calls\ncaller,seconds\n"Muñoz",35\n"cut,8\n\n"x",9\n'.encode("cp1252")
    load, rows, bad = load_calls(tmp_path, "{skip_rows: 2, encoding: cp1252}", content)
    assert (load.rows_read, load.rows_loaded, load.rows_quarantined, load.blank_lines) == (3, 2, 1, 1)
    assert rows == [(1, "Muñoz", 35), (4, "x", 9)]  # data line 4 (after a blank one) is physical line 7
    assert [(row, code) for row, code, _ in bad] == [(2, "malformed")]
    assert "line 5: a quote opens a value" in bad[0][2]
