"""Property: whatever mix of good, unreadable, missing, duplicated and malformed rows a file holds,
rows read = rows loaded + rows quarantined, and each quarantined row names its row and reason."""

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
    if not any('"' in row for row in rows):  # an unbalanced quote makes one record of several lines
        assert load.rows_read == len(rows), "every line written is a row read"
    loaded = connection.execute("select count(*) from raw.shop__orders").fetchone()[0]
    quarantined = connection.execute("select count(distinct row_number) from meta.quarantine").fetchone()[0]
    if load.status == "loaded":
        assert loaded == load.rows_loaded
        assert quarantined == load.rows_quarantined
        unnamed = connection.execute("select count(*) from meta.quarantine where reason is null or row_number is null")
        assert unnamed.fetchone()[0] == 0
    else:
        assert loaded == 0 and load.rows_loaded == 0
