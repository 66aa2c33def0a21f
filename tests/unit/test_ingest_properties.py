"""Properties: whatever mix of good, unreadable, missing, duplicated and malformed rows a file holds,
rows read = rows loaded + rows quarantined, and each quarantined row names its row and reason; and whatever a
file's corruption (stray quotes, a cut, NUL bytes, mixed line ends, blank lines), rows read is its physical data
lines, counted here on the text the test wrote."""

import re

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.ingest.contracts import load_contract
from pipelines.ingest.loader import load_table

CONTRACT = """
files: shop/*.csv
format: csv
csv: {delimiter: ";", decimal_separator: ","}
primary_key: [order_no]
refuse_above_bad_share: 1.0
columns:
  - {name: order_no, type: varchar, required: true}
  - {name: ordered_on, type: date, format: "%d/%m/%Y", required: true}
  - {name: amount, type: "decimal(18,2)"}
"""

good = st.builds(
    lambda key, day, cents: f"K{key};{day:02d}/01/2025;{cents // 100},{cents % 100:02d}",
    st.integers(0, 30), st.integers(1, 28), st.integers(0, 10**7),
)  # fmt: skip
bad = st.sampled_from(
    [
        "K1;31/02/2025;1,00",  # impossible date
        ";01/01/2025;1,00",  # required key missing
        "K2;;1,00",  # required date missing
        "K3;01/01/2025;abc",  # unreadable amount
        "K4;01/01/2025",  # a field too few
        "K5;01/01/2025;1,00;extra",  # a field too many
        'K6;"01/01/2025;1,00',  # unbalanced quote swallowing the rest
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.one_of(good, bad), max_size=40))
def test_rows_read_equals_loaded_plus_quarantined(tmp_path_factory, rows: list[str]):
    root = tmp_path_factory.mktemp("property")
    (root / "contracts" / "shop").mkdir(parents=True)
    (root / "landing" / "shop").mkdir(parents=True)
    (root / "contracts" / "shop" / "orders.yaml").write_text(CONTRACT, encoding="utf-8")
    (root / "landing" / "shop" / "orders.csv").write_text(
        "order_no;ordered_on;amount\n" + "".join(row + "\n" for row in rows), encoding="utf-8"
    )
    contract = load_contract(root / "contracts" / "shop" / "orders.yaml")
    connection = duckdb.connect()
    [load] = load_table(connection, contract, root / "landing", "property")
    assert load.rows_read == load.rows_loaded + load.rows_quarantined
    assert load.rows_read == len(rows), "every line written is a row read, even after an unbalanced quote"
    loaded = connection.execute("select count(*) from raw.shop__orders").fetchone()[0]
    quarantined = connection.execute("select count(distinct row_number) from meta.quarantine").fetchone()[0]
    if load.status == "loaded":
        assert loaded == load.rows_loaded
        assert quarantined == load.rows_quarantined
        unnamed = connection.execute("select count(*) from meta.quarantine where reason is null or row_number is null")
        assert unnamed.fetchone()[0] == 0
    else:
        assert loaded == 0 and load.rows_loaded == 0


def physical_data_lines(text: str) -> tuple[int, int]:
    """The test's own count of the lines after the header, any of the three line ends ending a line: the
    non-empty ones (the records) and all of them (the highest line a quarantined row can name)."""
    lines = re.split(r"\r\n|\r|\n", text)
    if lines[-1] == "":
        lines.pop()
    return sum(1 for line in lines[1:] if line), len(lines) - 1


@st.composite
def corrupted_files(draw) -> str:
    """A file of good rows, then corrupted: stray quotes (opening a value, or inside one, never closing one), NUL
    bytes, blank lines, each line end drawn from \\n, \\r\\n and \\r, and perhaps cut short anywhere."""
    rows = draw(st.lists(good, min_size=1, max_size=30))
    corrupted = []
    for row in rows:
        kind = draw(st.sampled_from(["none", "none", "opening quote", "inner quote", "nul", "blank line"]))
        fields = row.split(";")
        if kind == "opening quote":
            at = draw(st.integers(0, len(fields) - 1))
            fields[at] = '"' + fields[at]
        elif kind == "inner quote":
            at = draw(st.integers(0, len(fields) - 1))
            cut = draw(st.integers(1, max(len(fields[at]) - 1, 1)))
            fields[at] = fields[at][:cut] + '"' + fields[at][cut:] + "x"  # text follows: the quote closes nothing
        elif kind == "nul":
            at = draw(st.integers(0, len(fields) - 1))
            fields[at] += "\x00"
        corrupted.append(";".join(fields))
        if kind == "blank line":
            corrupted.append("")
    text = "order_no;ordered_on;amount\n"
    for line in corrupted:
        text += line + draw(st.sampled_from(["\n", "\r\n", "\r"]))
    if draw(st.booleans()):  # cut short, perhaps in the middle of a quoted value; a cut after a quote closes it
        text = text[: draw(st.integers(len("order_no;ordered_on;amount\n"), len(text)))].rstrip('"')
    return text


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=corrupted_files())
def test_no_corruption_changes_the_physical_records_accounted_for(tmp_path_factory, text: str):
    root = tmp_path_factory.mktemp("corrupted")
    (root / "contracts" / "shop").mkdir(parents=True)
    (root / "landing" / "shop").mkdir(parents=True)
    (root / "contracts" / "shop" / "orders.yaml").write_text(CONTRACT, encoding="utf-8")
    (root / "landing" / "shop" / "orders.csv").write_bytes(text.encode("utf-8"))
    contract = load_contract(root / "contracts" / "shop" / "orders.yaml")
    connection = duckdb.connect()
    [load] = load_table(connection, contract, root / "landing", "property")
    expected, data_lines = physical_data_lines(text)
    assert load.status == "loaded", load.message
    assert load.rows_read == expected == load.rows_loaded + load.rows_quarantined + load.rows_filtered
    assert connection.execute("select count(*) from raw.shop__orders").fetchone()[0] == load.rows_loaded
    rows = connection.execute("select distinct row_number from meta.quarantine").fetchall()
    assert len(rows) == load.rows_quarantined
    assert all(1 <= row <= data_lines for (row,) in rows)
    ledger = connection.execute(
        "select rows_read, rows_loaded + rows_quarantined + rows_filtered from meta.load_ledger"
    )
    assert ledger.fetchall() == [(expected, expected)]
