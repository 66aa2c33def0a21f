"""The order facts and the interactions built incrementally (int_orders_classified, int_order_lines_classified,
fct_order_lines, fct_orders, fct_interactions: only the orders and interactions whose fate or facts can have moved,
dbt_project/macros/rebuild_plan.sql) equal a full rebuild of the same raw rows, through changes of every kind the
plan must notice, on a copy of the session's warehouse, with real dbt: new files with new orders, an order and a
line copied in files that sort first (the copies now kept), a line key two orders share, a file taken back, an
exchange rate corrected and one withdrawn, two customer keys found to be one person, the cutoff moved back and
forth, a return taken back, a refund corrected, a product's unit cost changed; new files of sessions (a visitor's
first login, a session's second copy), sends and responses, then taken back; a contact now naming another
customer, a campaign gone from the campaigns export, a support case moved to another contact; the identity
records normalised again (int_identity_records_normalised) through a contact's phone and an ERP customer's
country corrected in place, a contact gone, and a contact of a country no record was of (every caller number in
national form is read in it too). The night's whole equivalence is tests/integration/test_incremental_night.py."""

import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from pipelines.resources import marts_path_of
from pipelines.settings import load_settings
from pipelines.sql import string
from pipelines.transform.assets import dbt_vars
from pipelines.transform.project import DBT_PROJECT_DIR
from tests.conftest import AS_OF, open_warehouse

pytestmark = pytest.mark.integration

# (file, schema, table) of every table built incrementally: the chain in the warehouse, the facts in the marts'
BUILT = (
    ("warehouse", "intermediate", "int_identity_records_normalised"),
    ("warehouse", "intermediate", "int_orders_classified"),
    ("warehouse", "intermediate", "int_order_lines_classified"),
    ("marts", "marts", "fct_order_lines"),
    ("marts", "marts", "fct_orders"),
    ("marts", "marts", "fct_interactions"),
)
SELECTION = "+int_sales_build_state"


def _dbt(warehouse: Path, as_of: date, *args: str) -> None:
    """Run dbt on ``warehouse`` (its own target folder beside it) with the night's vars for ``as_of``."""
    dbt = Path(sys.executable).with_name("dbt")
    folder = warehouse.parent / f"{warehouse.stem}_dbt"
    environ = {**os.environ, "CRM_WAREHOUSE_PATH": str(warehouse), "CRM_MARTS_PATH": str(marts_path_of(warehouse))}
    completed = subprocess.run(
        [str(dbt), *args, "--vars", json.dumps(dbt_vars(load_settings({}), as_of)),
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(folder / "target"), "--log-path", str(folder / "logs")],
        capture_output=True, text=True, env=environ, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-4000:]


def _plan(warehouse: Path) -> tuple[str, int, int, int, int, int]:
    """(build mode, orders whose fate was rebuilt, orders whose facts were, orders, interactions rebuilt,
    interactions) of the last build."""
    with open_warehouse(warehouse) as connection:
        return connection.execute(
            "select (select build_mode from intermediate.int_sales_rebuild_plan), "
            "(select count(*) from intermediate.int_sales_touched_orders), "
            "(select count(distinct order_id) from intermediate.int_sales_touched_facts), "
            "(select count(distinct order_id) from intermediate.int_orders_classified), "
            "(select count(*) from intermediate.int_interactions_touched), "
            "(select count(*) from marts.fct_interactions)"
        ).fetchone()


def _copy(warehouse: Path, to: Path) -> None:
    """Copy a warehouse and its marts file."""
    shutil.copyfile(warehouse, to)
    shutil.copyfile(marts_path_of(warehouse), marts_path_of(to))


def _assert_equals_a_full_rebuild(warehouse: Path, as_of: date) -> None:
    full = warehouse.with_name("full.duckdb")
    _copy(warehouse, full)
    _dbt(full, as_of, "run", "--select", SELECTION, "--full-refresh")
    with duckdb.connect() as connection:
        for side, path in (("incremental", warehouse), ("full", full)):
            connection.execute(f"attach {string(str(path))} as {side}_warehouse (read_only)")
            connection.execute(f"attach {string(str(marts_path_of(path)))} as {side}_marts (read_only)")
        for file, schema, table in BUILT:
            for one, other in (("incremental", "full"), ("full", "incremental")):
                differing = connection.execute(
                    f"select count(*) from (select * from {one}_{file}.{schema}.{table} "
                    f"except all select * from {other}_{file}.{schema}.{table})"
                ).fetchone()
                assert differing == (0,), f"{table}: {differing[0]} rows of the {one} build are not in the {other}"


def _change_raw(warehouse: Path, statements: list[str]) -> None:
    with open_warehouse(warehouse, read_only=False) as connection:
        for statement in statements:
            connection.execute(statement)


def test_order_facts_built_incrementally_equal_a_full_rebuild(pipeline_run, tmp_path):
    world, night = pipeline_run
    assert night.success
    warehouse = tmp_path / "crm.duckdb"
    _copy(world.root / "warehouse" / "crm.duckdb", warehouse)
    with open_warehouse(warehouse) as connection:
        assert connection.execute("select build_mode from intermediate.int_sales_rebuild_plan").fetchone() == (
            "full",
        ), "the session's night built the warehouse from nothing"
        # orders of each currency, the first and second lines of an order, two customers with orders
        gbp_order, usd_order, eur_order = (
            connection.execute(
                "select min(order_no) from raw.erp__orders where currency_code = ? and ordered_at < ?",
                [currency, AS_OF - timedelta(days=90)],
            ).fetchone()[0]
            for currency in ("GBP", "USD", "EUR")
        )
        first_customer, second_customer = (
            row[0]
            for row in connection.execute(
                "select customer_no from raw.erp__orders group by 1 order by count(*) desc, 1 limit 2"
            ).fetchall()
        )
        # a visitor who never logged in (with several sessions long before the cutoff), a session with a login,
        # a send answered long before, a contact with sends and not yet an ERP customer's, a campaign with sends
        anonymous_session, logged_in_session = connection.execute(
            """select
                (select min(session_id) from raw.web__sessions where visitor_id = (
                    select min(visitor_id) from raw.web__sessions group by visitor_id
                    having count(customer_no) = 0 and count(*) > 1 and max(started_at) < ? limit 1)),
                (select min(session_id) from raw.web__sessions where customer_no is not null and started_at < ?)""",
            [AS_OF - timedelta(days=90)] * 2,
        ).fetchone()
        contact_with_sends = connection.execute(
            "select min(contact_id) from raw.marketing__sends where contact_id in "
            "(select contact_id from raw.crm__contacts where erp_customer_no is null)"
        ).fetchone()[0]
        # a campaign whose sends were all long before either cutoff (known at both)
        campaign_with_sends = connection.execute(
            "select min(campaign_id) from (select campaign_id from raw.marketing__sends group by campaign_id "
            "having max(sent_at) < ?)",
            [AS_OF - timedelta(days=90)],
        ).fetchone()[0]
        # each change apart from the others (a mutation of one branch of the plan must fail the test): the answered
        # send is of another campaign and of a long-known contact of another ERP customer, whose customer no other
        # change moves
        early_send, early_response = connection.execute(
            "select responses.send_id, responses.response_id from raw.marketing__responses as responses "
            "inner join raw.marketing__sends as sends on responses.send_id = sends.send_id "
            "inner join raw.crm__contacts as contacts on sends.contact_id = contacts.contact_id "
            "where responses.responded_at < ? and sends.campaign_id <> ? and contacts.created_at < ? "
            "and contacts.erp_customer_no not in (?, ?) order by responses.response_id limit 1",
            [AS_OF - timedelta(days=90), campaign_with_sends, AS_OF - timedelta(days=365), first_customer,
             second_customer],
        ).fetchone()  # fmt: skip
        early_call = connection.execute(
            "select min(unique_id) from raw.callcenter__calls where started_at < ?", [AS_OF - timedelta(days=90)]
        ).fetchone()[0]
    eur, gbp, usd = string(eur_order), string(gbp_order), string(usd_order)
    customers, run = f"{string(first_customer)}, {string(second_customer)}", string("test-run-2")
    # a delivery the night before: a send of a long-known campaign and contact, and a response to a send long ago,
    # both on a day between the two cutoffs below (the cutoff's move alone takes them out, then brings them back)
    window_day, late_run = string(str(AS_OF - timedelta(days=10))), string("test-run-1")
    _change_raw(warehouse, [
        f"""insert into raw.marketing__sends select * replace (-5 as send_id, cast({window_day} as timestamp)
            as sent_at, 'marketing/sends_late.csv' as _file, {late_run} as _run_id) from raw.marketing__sends
            where send_id = {early_send}""",
        f"""insert into raw.marketing__responses select * replace (-5 as response_id, cast({window_day} as timestamp)
            as responded_at, 'marketing/responses_late.csv' as _file, {late_run} as _run_id)
            from raw.marketing__responses where response_id = {early_response}""",
    ])  # fmt: skip
    _dbt(warehouse, AS_OF, "run", "--select", SELECTION)
    assert _plan(warehouse)[0] == "incremental"
    _change_raw(warehouse, [
        # a new order with its lines, in files of their own
        f"""insert into raw.erp__orders select * replace ('NEW-1' as order_no, 'erp/orders_new.csv' as _file,
            {run} as _run_id) from raw.erp__orders where order_no = {eur}""",
        f"""insert into raw.erp__order_lines select * replace ('NEW-1' as order_no,
            'erp/order_lines_new.csv' as _file, {run} as _run_id) from raw.erp__order_lines where order_no = {eur}""",
        # a copy of an order and of a line in files that sort before the first delivery's: now the kept copies
        f"""insert into raw.erp__orders select * replace ('kiosk' as sales_channel, 'erp/a_orders.csv' as _file,
            {run} as _run_id) from raw.erp__orders where order_no = {gbp}""",
        f"""insert into raw.erp__order_lines select * replace (quantity + 5 as quantity, line_amount * 3 as line_amount,
            'erp/a_order_lines.csv' as _file, {run} as _run_id)
            from raw.erp__order_lines where order_no = {usd} and line_no = 1""",
        # a line whose key is another order's line's: order 'X-' line 2 and order 'X' line -2 are both 'X--2'
        f"""insert into raw.erp__orders select * replace ('X-' as order_no, 'erp/orders_new.csv' as _file,
            {run} as _run_id, _row_number + 1000000 as _row_number) from raw.erp__orders where order_no = {eur}""",
        f"""insert into raw.erp__orders select * replace ('X' as order_no, 'erp/orders_new.csv' as _file,
            {run} as _run_id, _row_number + 2000000 as _row_number) from raw.erp__orders where order_no = {eur}""",
        f"""insert into raw.erp__order_lines select * replace ('X-' as order_no, 2 as line_no,
            'erp/order_lines_new.csv' as _file, {run} as _run_id, _row_number + 1000000 as _row_number)
            from raw.erp__order_lines where order_no = {eur} and line_no = 1""",
        f"""insert into raw.erp__order_lines select * replace ('X' as order_no, -2 as line_no,
            'erp/order_lines_new.csv' as _file, {run} as _run_id, _row_number + 2000000 as _row_number)
            from raw.erp__order_lines where order_no = {eur} and line_no = 1""",
        # a pound rate corrected and a dollar rate withdrawn (the month before takes over)
        f"""update raw.erp__exchange_rates set eur_per_unit = eur_per_unit * 1.25 where currency_code = 'GBP'
            and rate_month = date_trunc('month', cast({string(AS_OF.isoformat())} as date) - interval 400 day)""",
        f"""delete from raw.erp__exchange_rates where currency_code = 'USD'
            and rate_month = date_trunc('month', cast({string(AS_OF.isoformat())} as date) - interval 200 day)""",
        # two customer keys one person's (in place: the same file and run, only the customer changes)
        f"update raw.erp__customers set person_no = 'P-1' where customer_no in ({customers})",
        # a return gone, a refund corrected, and the unit cost of the cheapest-numbered product sold doubled
        "delete from raw.erp__returns where return_no = (select min(return_no) from raw.erp__returns)",
        "update raw.erp__returns set refund_amount = refund_amount + 1 where return_no = "
        "(select max(return_no) from raw.erp__returns)",
        "update raw.erp__products set unit_cost = unit_cost * 2 where sku = "
        "(select min(sku) from raw.erp__order_lines)",
        # a visitor who never logged in logs in (a new sessions file): the visitor's earlier sessions are the
        # customer's now; and a second copy of a session, in a file that sorts first
        f"""insert into raw.web__sessions select * replace ('NEW-S1' as session_id, {string(first_customer)} as
            customer_no, 'web/sessions_new.csv' as _file, {run} as _run_id) from raw.web__sessions
            where session_id = {string(anonymous_session)}""",
        f"""insert into raw.web__sessions select * replace (ended_at + interval 1 hour as ended_at,
            'web/a_sessions.csv' as _file, {run} as _run_id) from raw.web__sessions
            where session_id = {string(logged_in_session)}""",
        # a second, longer, copy of an earlier call (a new calls file): its caller and customer unchanged
        f"""insert into raw.callcenter__calls select * replace (duration_seconds + 60 as duration_seconds,
            'callcenter/calls_new.csv' as _file, {run} as _run_id) from raw.callcenter__calls
            where unique_id = {string(early_call)}""",
        # a new send to a contact the CRM does not know (a new sends file) with a response, and a new response to
        # an earlier send
        f"""insert into raw.marketing__sends select * replace (-1 as send_id, 'NEW-CONTACT' as contact_id,
            'marketing/sends_new.csv' as _file, {run} as _run_id) from raw.marketing__sends
            where send_id = {early_send}""",
        f"""insert into raw.marketing__responses select * replace (-1 as response_id, -1 as send_id,
            'marketing/responses_new.csv' as _file, {run} as _run_id) from raw.marketing__responses
            where response_id = {early_response}""",
        f"""insert into raw.marketing__responses select * replace (-2 as response_id,
            'marketing/responses_new.csv' as _file, {run} as _run_id, _row_number + 1 as _row_number)
            from raw.marketing__responses where response_id = {early_response}""",
        # in place: a session of each of the two customers (whose keys are now one customer's) without its
        # cookie, so that only its login says whose it is; a contact with sends now names another customer, a
        # campaign with sends is gone from the campaigns export, a support case moves to another contact
        f"""update raw.web__sessions set visitor_id = null where session_id in (select min(session_id)
            from raw.web__sessions where customer_no in ({customers}) group by customer_no)""",
        f"""update raw.crm__contacts set erp_customer_no = {string(second_customer)}
            where contact_id = {string(contact_with_sends)}""",
        f"delete from raw.marketing__campaigns where campaign_id = {string(campaign_with_sends)}",
        f"""update raw.crm__cases set contact_id = {string(contact_with_sends)}
            where case_id = (select min(case_id) from raw.crm__cases
                where contact_id <> {string(contact_with_sends)})""",
        # in place, no file changing: a contact's mobile phone and an ERP customer's country (its national phone
        # read with another calling code, the trunk prefix 0 in both) corrected; a contact gone
        f"""update raw.crm__contacts set mobile_phone = '0612 345 678' where contact_id = (select max(contact_id)
            from raw.crm__contacts where created_at < {string(str(AS_OF - timedelta(days=365)))})""",
        """update raw.erp__customers set country_code = 'FR' where customer_no = (select min(customer_no)
            from raw.erp__customers where country_code in ('DE', 'GB') and phone not like '+%'
            and phone not like '00%')""",
        f"""delete from raw.crm__contacts where contact_id = (select min(contact_id) from raw.crm__contacts
            where contact_id <> {string(contact_with_sends)})""",
    ])  # fmt: skip

    earlier = AS_OF - timedelta(days=45)
    _dbt(warehouse, earlier, "run", "--select", SELECTION)
    mode, touched, touched_facts, orders, touched_interactions, interactions = _plan(warehouse)
    assert mode == "incremental"
    assert 0 < touched < orders / 2 and 0 < touched_facts < orders / 2, "only the orders that could have moved"
    assert 0 < touched_interactions < interactions / 2, "only the interactions that could have moved"
    with open_warehouse(warehouse) as connection:
        touched_records, records = connection.execute(
            "select (select count(*) from intermediate.int_identity_records_touched), "
            "(select count(*) from intermediate.int_identity_records_normalised)"
        ).fetchone()
    assert 0 < touched_records < records / 2, "only the identity records whose fields changed"
    _assert_equals_a_full_rebuild(warehouse, earlier)
    with open_warehouse(warehouse) as connection:
        # the changes did reach the facts: the copy sorted first is the order kept, the shared key is one line
        assert connection.execute(
            "select sales_channel from intermediate.int_orders_classified where order_id = ? and is_first_copy",
            [gbp_order],
        ).fetchone() == ("kiosk",)
        assert connection.execute(
            "select count(*) filter (where is_first_copy) from intermediate.int_order_lines_classified "
            "where order_line_id = 'X--2'"
        ).fetchone() == (1,)
        assert connection.execute(
            "select count(distinct erp_customer_id) from intermediate.int_orders_classified "
            "where erp_customer_id in (?, ?)",
            [first_customer, second_customer],
        ).fetchone() == (1,)
        # and the interactions: the visitor's earlier session is a customer's, the new send and responses are
        # there, the contact's sends are its new customer's and the gone campaign's sends have no campaign
        assert connection.execute(
            "select customer_id is not null from marts.fct_interactions where interaction_id = ?",
            [f"web_session:{anonymous_session}"],
        ).fetchone() == (True,)
        assert connection.execute(
            "select count(distinct interaction_id) from marts.fct_interactions where interaction_id in "
            "('send:-1', 'response:-1', 'response:-2', ?)",
            [f"call:{early_call}"],
        ).fetchone() == (4,)
        assert connection.execute(
            "select count(*) from marts.fct_interactions where interaction_type = 'send' and campaign_id = ?",
            [campaign_with_sends],
        ).fetchone() == (0,)

    # the early copies and the new sessions, sends and responses taken back (their files unloaded), and the cutoff
    # moved past the first one
    _change_raw(warehouse, [
        "delete from raw.erp__orders where _file = 'erp/a_orders.csv'",
        "delete from raw.erp__order_lines where _file = 'erp/a_order_lines.csv'",
        "delete from raw.web__sessions where _file in ('web/sessions_new.csv', 'web/a_sessions.csv')",
        "delete from raw.marketing__sends where _file = 'marketing/sends_new.csv'",
        "delete from raw.callcenter__calls where _file = 'callcenter/calls_new.csv'",
        "delete from raw.marketing__responses where _file = 'marketing/responses_new.csv'",
        # a contact of a country no customer or contact was of, in a new contacts file
        f"""insert into raw.crm__contacts select * replace ('NEW-C1' as contact_id, null as erp_customer_no,
            'Japan' as country, 'crm/contacts_new.csv' as _file, {run} as _run_id) from raw.crm__contacts
            where contact_id = (select min(contact_id) from raw.crm__contacts
                where created_at < {string(str(AS_OF - timedelta(days=365)))})""",
    ])  # fmt: skip
    later = AS_OF + timedelta(days=5)
    _dbt(warehouse, later, "run", "--select", SELECTION)
    assert _plan(warehouse)[0] == "incremental"
    _assert_equals_a_full_rebuild(warehouse, later)
    with open_warehouse(warehouse) as connection:
        # the new country's readings reached the calls in national form, and only them
        calls_read_in_japan = connection.execute(
            "select count(*) filter (where source_system = 'callcenter'), count(*) "
            "from intermediate.int_identity_records_normalised "
            "where len(list_filter(phone_candidates, lambda reading: reading like '+81%')) > 0"
        ).fetchone()
        assert calls_read_in_japan[0] > 0 and calls_read_in_japan[0] == calls_read_in_japan[1]

    # a night whose chain stopped half-way leaves no record of a build: the next plan rebuilds every order
    _change_raw(warehouse, ["delete from intermediate.int_sales_build_state where kind = 'build'"])
    _dbt(warehouse, later, "run", "--select", "int_sales_rebuild_plan")
    with open_warehouse(warehouse) as connection:
        assert connection.execute("select build_mode, reason from intermediate.int_sales_rebuild_plan").fetchone() == (
            "full",
            "the last build of the order facts did not finish: every order is rebuilt",
        )
