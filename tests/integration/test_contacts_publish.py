"""Contact details are published apart, on a real night: a private file of their own named in current.json, the
general snapshot holds no email, phone or name, the search keys in Python are the warehouse's, and the file goes
wherever its snapshot goes (held, accepted, rolled back, pruned)."""

import re
import shutil
import stat
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines.identity_keys import email_key, name_key, phone_key
from pipelines.ingest import ledger
from pipelines.publish.contacts import current_contacts
from pipelines.publish.guard import accept_held, read_held, rollback
from pipelines.publish.release import publish
from pipelines.publish.snapshot import PUBLISHED_SCHEMAS, current_snapshot
from pipelines.resources import marts_path_of
from pipelines.settings import load_settings
from tests.conftest import AS_OF, open_warehouse

pytestmark = pytest.mark.integration

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# A phone as people write it (+34 600 11 22 33, 0176/92348397, (212) 555-0142, 607968706), 9 digits or more, standing
# on its own: not inside an id, a hash, a date-time or a decimal number (call ids such as 1656584561.0 are numbers).
PHONE = re.compile(r"(?<![\w.:/-])(?:\+|\()?\d[\d ()./-]{7,}\d(?![\w.:/-]*\d)")
DECIMAL = re.compile(r"-?\d+\.\d+")
DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")


def phones_in(text: str) -> list[str]:
    if DECIMAL.fullmatch(text.strip()):
        return []
    text = DATE_TIME.sub(" ", text)  # "2026-06-30 (1,460 days" holds no phone
    return [match.group() for match in PHONE.finditer(text) if len(re.sub(r"\D", "", match.group())) >= 9]


def _published(world) -> tuple[Path, dict]:
    published_dir = world.root / "published"
    return published_dir, current_snapshot(published_dir)


def _contact_rows(path: Path) -> list[tuple]:
    with open_warehouse(path) as contacts:
        return contacts.execute(
            "select customer_id, full_name, email, phone, email_key, phone_key, name_key "
            "from contacts.customer_contacts order by customer_id"
        ).fetchall()


def _texts(connection: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(schema.table.column, value) of every distinct value of every text column of every table, lists of text
    (such as a customer's churn reasons) included, as text."""
    columns = connection.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_catalog = current_database() and data_type in ('VARCHAR', 'VARCHAR[]') order by all"
    ).fetchall()
    found = []
    for schema, table, column in columns:
        quoted = f'"{schema}"."{table}"'  # names DuckDB listed itself
        query = f'select distinct cast("{column}" as varchar) from {quoted} where "{column}" is not null'
        for (value,) in connection.execute(query).fetchall():
            found.append((f"{schema}.{table}.{column}", value))
    return found


def test_the_contacts_file_is_private_named_in_current_json_and_holds_only_contact_details(pipeline_run):
    world, result = pipeline_run
    assert result.success
    published_dir, pointer = _published(world)
    path = current_contacts(published_dir)
    assert pointer["contacts"] == f"contacts_{AS_OF.isoformat()}_{pointer['run_id'][:8]}.duckdb"
    assert path == published_dir / pointer["contacts"] and path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with open_warehouse(path) as contacts:
        tables = contacts.execute("select schema_name, table_name from duckdb_tables()").fetchall()
    assert tables == [("contacts", "customer_contacts")]
    assert not list(published_dir.glob(".contacts-*")), "the staging folder was left behind"


def test_every_customer_with_contact_details_is_in_the_contacts_file_once(pipeline_run):
    world, _ = pipeline_run
    published_dir, pointer = _published(world)
    rows = _contact_rows(current_contacts(published_dir))
    ids = [row[0] for row in rows]
    assert len(ids) == len(set(ids))
    with duckdb.connect(pointer["path"], read_only=True) as snapshot:
        # the demo data gives every ERP customer of the export and every prospect (a CRM contact) a name
        expected = {
            customer_id
            for (customer_id,) in snapshot.execute(
                "select customer_id from marts.dim_customers where has_customer_record or customer_type = 'prospect'"
            ).fetchall()
        }
        known = {row[0] for row in snapshot.execute("select customer_id from marts.dim_customers").fetchall()}
    assert expected and expected <= set(ids) <= known
    assert all(row[1] for row in rows if row[0] in expected)


def test_the_contact_details_are_the_exports(pipeline_run):
    """Each ERP customer's email and phone in the file are those of their row in the customers export."""
    world, _ = pipeline_run
    published_dir, _ = _published(world)
    by_id = {row[0]: row for row in _contact_rows(current_contacts(published_dir))}
    export = duckdb.sql(
        "select customer_no, first_name, last_name, email, phone from read_csv(?, delim = ';', all_varchar = true)",
        params=[str(world.landing / "erp" / "customers.csv")],
    ).fetchall()
    compared = 0
    for customer_no, first_name, last_name, email, phone in export:
        if customer_no not in by_id:
            continue
        _, full_name, published_email, published_phone, *_ = by_id[customer_no]
        assert email_key(published_email) == email_key(email), customer_no
        assert re.sub(r"\D", "", published_phone or "") == re.sub(r"\D", "", phone or ""), customer_no
        assert full_name == " ".join(part.strip() for part in (first_name, last_name) if part and part.strip())
        compared += 1
    assert compared >= 0.9 * len(export)


def test_the_general_snapshot_holds_no_email_phone_or_name(pipeline_run):
    world, _ = pipeline_run
    published_dir, pointer = _published(world)
    assert "contacts" not in PUBLISHED_SCHEMAS
    rows = _contact_rows(current_contacts(published_dir))
    emails = {row[2] for row in rows if row[2]}
    # the patterns find what they look for: every email, and the phones of 9 digits or more, of the contacts file
    assert all(EMAIL.search(email) for email in emails if email_key(email))
    assert all(phones_in(row[3]) for row in rows if row[3] and len(re.sub(r"\D", "", row[3])) >= 9)
    phones = {re.sub(r"\D", "", row[3]) for row in rows if row[3] and len(re.sub(r"\D", "", row[3])) >= 9}
    names = {row[1] for row in rows if row[1] and " " in row[1]}
    assert emails and phones and names
    with duckdb.connect(pointer["path"], read_only=True) as snapshot:
        schemas = {row[0] for row in snapshot.execute("select schema_name from duckdb_schemas()").fetchall()}
        assert "contacts" not in schemas
        texts = _texts(snapshot)
    assert len(texts) > 1000  # the scan saw the snapshot's text
    email_like = [(column, value) for column, value in texts if EMAIL.search(value)]
    assert email_like == [], email_like[:5]
    # a phone of the contacts file, in any writing (its last 9 digits inside a run of digits); any 9 digits in a row
    # would also flag a random hexadecimal identifier such as a web session's
    national = {phone[-9:] for phone in phones}
    phone_like = [
        (column, value)
        for column, value in texts
        if any(number in re.sub(r"\D", "", run) for run in phones_in(value) for number in national)
    ]
    assert phone_like == [], phone_like[:5]
    known = [
        (column, value)
        for column, value in texts
        if value in emails or value in names or (len(digits := re.sub(r"\D", "", value)) >= 9 and digits in phones)
    ]
    assert known == [], known[:5]


def test_the_search_keys_in_python_are_the_warehouses(pipeline_run):
    world, _ = pipeline_run
    published_dir, pointer = _published(world)
    default_country = load_settings(world.environ).default_country
    rows = _contact_rows(current_contacts(published_dir))
    with duckdb.connect(pointer["path"], read_only=True) as snapshot:
        countries = dict(snapshot.execute("select customer_id, country_code from marts.dim_customers").fetchall())
    assert sum(1 for row in rows if row[4]) > 0.9 * len(rows) and sum(1 for row in rows if row[5]) > 0.5 * len(rows)
    for customer_id, full_name, email, phone, stored_email_key, stored_phone_key, stored_name_key in rows:
        assert email_key(email) == stored_email_key, (customer_id, email)
        assert phone_key(phone, default_country, countries[customer_id]) == stored_phone_key, (customer_id, phone)
        assert name_key(full_name) == stored_name_key, (customer_id, full_name)


def test_the_keys_are_those_identity_resolution_matched_on(pipeline_run):
    """An ERP customer's keys in the contacts file are their record's keys in int_identity_records_normalised."""
    world, _ = pipeline_run
    with open_warehouse(world.root / "warehouse" / "crm.duckdb") as warehouse:
        differing = warehouse.execute(
            """select contacts.customer_id, contacts.email_key, records.email_key, contacts.phone_key,
                records.phone_key, contacts.name_key, records.name_key
            from contacts.customer_contacts as contacts
            inner join intermediate.int_identity_records_normalised as records
                on records.source_system = 'erp' and records.source_record_id = contacts.customer_id
            where contacts.email_key is distinct from records.email_key
                or contacts.phone_key is distinct from records.phone_key
                or contacts.name_key is distinct from records.name_key"""
        ).fetchall()
        matched = warehouse.execute(
            "select count(*) from contacts.customer_contacts as contacts "
            "inner join intermediate.int_identity_records_normalised as records "
            "on records.source_system = 'erp' and records.source_record_id = contacts.customer_id"
        ).fetchone()[0]
    assert matched > 0
    assert differing == []


def test_the_contacts_file_goes_wherever_its_snapshot_goes(pipeline_run, tmp_path):
    """Published, rolled back, held back by the guard, accepted, pruned: current.json always names the contacts
    file of its own snapshot, and a pruned snapshot's contacts file goes with it."""
    world, _ = pipeline_run
    warehouse = tmp_path / "crm.duckdb"
    shutil.copyfile(world.root / "warehouse" / "crm.duckdb", warehouse)
    shutil.copyfile(world.root / "warehouse" / "crm_marts.duckdb", marts_path_of(warehouse))
    published_dir = tmp_path / "published"
    runs = ["aaaaaaaa-1", "bbbbbbbb-2", "cccccccc-3", "dddddddd-4"]

    def contacts_of(run_id: str) -> Path:
        return published_dir / f"contacts_{AS_OF.isoformat()}_{run_id[:8]}.duckdb"

    def current() -> tuple[str, Path | None]:
        return current_snapshot(published_dir)["run_id"], current_contacts(published_dir)

    with open_warehouse(warehouse, read_only=False) as connection:
        expected_rows = connection.execute("select count(*) from contacts.customer_contacts").fetchone()[0]
        for run_id in runs[:2]:
            release = publish(connection, published_dir, as_of=AS_OF, run_id=run_id)
            assert release.held is None and release.contacts == contacts_of(run_id)
            assert release.contacts_rows == expected_rows
        assert current() == (runs[1], contacts_of(runs[1]))
        rollback(published_dir)
        assert current() == (runs[0], contacts_of(runs[0]))
        # nine orders in ten gone: the guard holds the snapshot back, with its contacts file
        connection.execute("delete from marts.fct_orders where hash(order_id) % 10 != 0")
        release = publish(connection, published_dir, as_of=AS_OF, run_id=runs[2])
        assert release.held is not None
        assert read_held(published_dir)["contacts"] == contacts_of(runs[2]).name and contacts_of(runs[2]).exists()
        assert current() == (runs[0], contacts_of(runs[0]))
        accept_held(published_dir, runs[2][:8])
        assert current() == (runs[2], contacts_of(runs[2]))
        release = publish(connection, published_dir, as_of=AS_OF, run_id=runs[3], keep_snapshots=1)
    assert release.held is None
    assert current() == (runs[3], contacts_of(runs[3]))
    snapshots = {path.name.removeprefix("crm_") for path in published_dir.glob("crm_*.duckdb")}
    contacts = {path.name.removeprefix("contacts_") for path in published_dir.glob("contacts_*.duckdb")}
    assert contacts == snapshots
    assert contacts_of(runs[0]) in release.removed and not contacts_of(runs[0]).exists()
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in published_dir.glob("contacts_*.duckdb"))
    assert _contact_rows(contacts_of(runs[3])) == _contact_rows(contacts_of(runs[2]))


def test_a_warehouse_without_contact_details_publishes_no_contacts_file(tmp_path):
    """A warehouse built before contact details were published apart: the snapshot is published, current.json
    names no contacts file, and the dashboards find none."""
    warehouse = tmp_path / "crm.duckdb"
    with open_warehouse(warehouse, read_only=False) as connection:
        ledger.ensure_tables(connection)
        connection.execute("create table marts.fct_order_lines (source_file varchar, source_row_number bigint, "
                           "order_line_id varchar, quantity int, net_revenue decimal(18, 2))")  # fmt: skip
        release = publish(connection, tmp_path / "published", as_of=date(2026, 6, 30), run_id="eeeeeeee-5")
    assert release.contacts is None and release.held is None
    assert current_snapshot(tmp_path / "published")["contacts"] is None
    assert current_contacts(tmp_path / "published") is None
    assert not list((tmp_path / "published").glob("contacts_*"))
