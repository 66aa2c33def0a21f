"""Formula injection (OWASP CSV injection): every text cell that a spreadsheet would run is written as text."""

import csv
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pytest
from openpyxl import load_workbook

from pipelines.exports import formula_payloads, is_formula_like, neutralise, write_csv, write_excel

PAYLOADS = ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
NUMBERS = ["-12.5", "+3", "-7", "1e5", "-0,5", "42"]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_formula_gets_a_leading_quote(payload: str):
    assert is_formula_like(payload)
    assert neutralise(payload) == "'" + payload


@pytest.mark.parametrize("value", [*NUMBERS, "Ana Silva", "a-b", "", "x=1"])
def test_numbers_and_plain_text_stay_as_they_are(value: str):
    assert not is_formula_like(value)
    assert neutralise(value) == value


def test_values_that_are_not_text_are_untouched():
    assert [neutralise(value) for value in (-12.5, 3, None, True)] == [-12.5, 3, None, True]


def frame() -> pl.DataFrame:
    texts = [*PAYLOADS, *NUMBERS]
    return pl.DataFrame({"name": texts, "amount": [-float(index) for index in range(len(texts))]})


def test_the_csv_holds_every_formula_as_quoted_text_and_numbers_as_numbers(tmp_path: Path):
    path = write_csv(frame(), tmp_path / "out" / "list.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    names = [row["name"] for row in rows]
    assert names == ["'" + payload for payload in PAYLOADS] + NUMBERS
    assert [float(row["amount"]) for row in rows] == frame()["amount"].to_list()


def test_a_pandas_frame_is_neutralised_too(tmp_path: Path):
    path = write_csv(pd.DataFrame({"name": ["@SUM(A1)", "Ana"]}), tmp_path / "pandas.csv")
    assert path.read_text(encoding="utf-8").splitlines() == ["name", "'@SUM(A1)", "Ana"]


def test_the_excel_sheet_holds_no_formula_and_keeps_numbers_numeric(tmp_path: Path):
    path = write_excel(frame(), tmp_path / "list.xlsx")
    sheet = load_workbook(path).active
    rows = list(sheet.iter_rows(min_row=2))
    # XML reads a carriage return back as a line feed; the leading quote is what matters
    expected = ["'" + payload.replace("\r", "\n") for payload in PAYLOADS] + NUMBERS
    assert [row[0].value for row in rows] == expected
    assert all(row[0].data_type == "s" for row in rows), "no cell is stored as a formula"
    assert [row[1].value for row in rows] == frame()["amount"].to_list()
    assert all(row[1].data_type == "n" for row in rows)


def test_formula_like_values_are_counted_per_table_and_column():
    connection = duckdb.connect()
    connection.execute("create schema marts")
    connection.execute(
        "create table marts.people as select * from (values (?, ?), (?, ?), (?, ?)) as rows(name, city)",
        [PAYLOADS[0], "-12.5", PAYLOADS[3], "Lisboa", "Ana", "+351"],
    )
    connection.execute("create table marts.lonely as select 'fine' as note")
    assert formula_payloads(connection, "memory", ("marts",)) == [("marts.people", "name", 2)]


def test_the_publish_count_agrees_with_the_export_rule_on_every_start():
    # the snapshot's count (SQL) and the exports' neutralising (Python) must call the same values formulas; rows
    # enough for several row groups, so that the ones whose text statistics rule every start out are skipped
    starts = ["=", "+", "-", "@", "\t", "\r"]
    odd = ["", " =1", "\n=1", "'=1", "-", "+", "-1.5e3", "+1,5", ".5", "-.5e", "é=", "ー=", "=", "@", "--1", "1-2"]
    values = [f"{start}{tail}" for start in starts for tail in ("1+1", "12", "SUM(A1)", "")] + odd + NUMBERS
    connection = duckdb.connect()
    connection.execute("create schema marts")
    connection.execute("create table marts.words (word varchar)")
    connection.execute("insert into marts.words select 'plain ' || range from range(300000)")
    connection.executemany("insert into marts.words values (?)", [[value] for value in values])
    connection.execute("insert into marts.words select 'zz ' || range from range(300000)")
    expected = sum(is_formula_like(value) for value in values)
    assert expected > len(starts), "the values hold formulas of every start"
    assert formula_payloads(connection, "memory", ("marts",)) == [("marts.words", "word", expected)]


def test_every_text_column_of_a_table_is_counted_whatever_its_name():
    connection = duckdb.connect()
    connection.execute("create schema marts")
    connection.execute(
        "create table marts.notes as select * from (values (?, ?, ?, 1), (?, ?, ?, 2), (?, ?, ?, 3)) "
        'as rows("z note", "a ""quoted"" name", plain, amount)',
        [PAYLOADS[1], PAYLOADS[2], "ok", "x", PAYLOADS[4], PAYLOADS[5], PAYLOADS[0], "-7", None],
    )
    connection.execute("create table marts.empty (note varchar)")
    assert formula_payloads(connection, "memory", ("marts",)) == [
        ("marts.notes", 'a "quoted" name', 2),
        ("marts.notes", "plain", 1),
        ("marts.notes", "z note", 2),
    ]
