"""One bad row never stops the night: each export problem that used to fail the whole dbt build (and with it every
score and the publish) is now a row excluded with its recorded reason, or a warning, and the night publishes.

One landing zone carries every problem at once: an order dated 1900, customer keys with a zero-width space, the
largest amount decimal(18,2) holds and a quantity of 2,147,483,647 (loaded because outliers only warn here), and
an empty (0-byte) export. A second run re-delivers the orders and campaigns shortened: the lines, returns and
campaign members that refer to what is gone are excluded with their reason, never a failed relationship test.
"""

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from tests.conftest import LandedRun, open_warehouse, run_landed
from tests.integration.test_row_accounting import assert_every_row_accounted_for

pytestmark = pytest.mark.integration

AS_OF = date(2026, 6, 30)
CONTRACTS = Path(__file__).resolve().parents[2] / "pipelines" / "ingest" / "contracts"
ZERO_WIDTH_SPACE = "\u200b"
LARGEST_AMOUNT = "99999999999999,99"  # the largest value decimal(18,2) holds, with the ERP's decimal comma
LARGEST_QUANTITY = "2147483647"  # the largest 32-bit integer
SETTINGS = {"CRM_OUTLIER_SEVERITY": "warn"}
DROPPED_ORDERS = 40
EMPTY_EXPORT = "crm/cases.csv"


def explanation(run: LandedRun) -> str:
    """What the run said about its failures: each failed step with its error message, for the assertion."""
    lines = []
    for event in run.result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.event_specific_data.error
            lines.append(f"{event.step_key}: {error.message.strip() if error else 'no message'}")
        if event.event_type_value == "ASSET_CHECK_EVALUATION" and not event.event_specific_data.passed:
            check = event.event_specific_data
            lines.append(f"check {check.asset_key.to_user_string()}:{check.check_name} failed ({check.severity})")
    return "\n".join(lines) or "no failed step"


def failed_steps(run: LandedRun) -> list[str]:
    return [event.step_key for event in run.result.all_events if event.event_type_value == "STEP_FAILURE"]


def failed_error_checks(run: LandedRun) -> list[str]:
    return [
        event.event_specific_data.check_name
        for event in run.result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
        and not event.event_specific_data.passed
        and event.event_specific_data.severity.value == "ERROR"
    ]


def rewrite(path: Path, edit) -> None:
    """Apply ``edit(header, rows)`` to a ';'-delimited export (lists of fields) and write it back."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(";")
    rows = [line.split(";") for line in lines[1:]]
    rows = edit(header, rows)
    path.write_text("\n".join(";".join(row) for row in [header, *rows]) + "\n", encoding="utf-8")


def warehouse(run: LandedRun) -> duckdb.DuckDBPyConnection:
    return open_warehouse(run.warehouse)


def plant_problems(landing: Path) -> dict[str, str]:
    """Write every row-level problem into a generated landing zone; returns the keys of the rows planted."""
    planted: dict[str, str] = {}

    foreign: list[str] = []  # orders in a currency other than the reporting currency: their amounts are converted

    def orders(header, rows):
        # the first order dated 1900; the second order's customer key ends with a zero-width space
        at, customer = header.index("ordered_at"), header.index("customer_no")
        currency = header.index("currency_code")
        foreign.extend(row[0] for row in rows[2:] if row[currency] != "EUR")
        planted["old_order"] = rows[0][0]
        rows[0][at] = "1900-01-01 10:00:00"
        planted["spaced_order"], planted["spaced_customer"] = rows[1][0], rows[1][customer]
        rows[1][customer] = rows[1][customer] + ZERO_WIDTH_SPACE
        return rows

    def order_lines(header, rows):
        amount, quantity = header.index("line_amount"), header.index("quantity")
        unit_price = header.index("unit_price")
        # lines of converted orders: the amount times the exchange rate must not overflow either
        big_amount, big_quantity = [row for row in rows if row[0] in foreign[:2]][:2]
        planted["big_amount_line"] = f"{big_amount[0]}-{big_amount[1]}"
        big_amount[amount] = big_amount[unit_price] = LARGEST_AMOUNT
        planted["big_quantity_line"] = f"{big_quantity[0]}-{big_quantity[1]}"
        big_quantity[quantity] = LARGEST_QUANTITY
        return rows

    def customers(header, rows):
        # a customer's own key with a zero-width space in front: the same customer as its orders' key
        planted["spaced_account"] = rows[2][0]
        rows[2][0] = ZERO_WIDTH_SPACE + rows[2][0]
        return rows

    rewrite(landing / "erp" / "orders.csv", orders)
    rewrite(landing / "erp" / "order_lines.csv", order_lines)
    rewrite(landing / "erp" / "customers.csv", customers)
    return planted


@pytest.fixture(scope="module")
def bad_night(tmp_path_factory: pytest.TempPathFactory):
    """A small world with every problem at once, run for real; returns its root, run and what was planted."""
    from pipelines.demo_data import generate

    root = tmp_path_factory.mktemp("bad_night")
    generate(customers=300, seed=11, as_of=AS_OF, out=root / "landing", truth=root / "truth")
    planted = plant_problems(root / "landing")
    (root / "landing" / EMPTY_EXPORT).write_bytes(b"")
    return root, run_landed(root, CONTRACTS, AS_OF, **SETTINGS), planted


@pytest.fixture(scope="module")
def shortened_night(bad_night, tmp_path_factory: pytest.TempPathFactory):
    """The same landing zone and warehouse, run again after the orders and campaigns were re-delivered with their
    last rows missing: lines, returns and campaign members now refer to orders and campaigns that are gone."""
    first_root, _, _ = bad_night
    root = tmp_path_factory.mktemp("shortened_night")
    for folder in ("landing", "warehouse", "published"):
        if (first_root / folder).exists():
            shutil.copytree(first_root / folder, root / folder)
    dropped: dict[str, list[str]] = {}

    def shorten(header, rows):
        dropped["orders"] = [row[0] for row in rows[-DROPPED_ORDERS:]]
        return rows[:-DROPPED_ORDERS]

    rewrite(root / "landing" / "erp" / "orders.csv", shorten)
    campaigns = root / "landing" / "marketing" / "campaigns.csv"
    lines = campaigns.read_text(encoding="utf-8").splitlines()
    # the last three campaigns with members (the newsletters at the end of the file have none)
    members = (root / "landing" / "marketing" / "campaign_members.csv").read_text(encoding="utf-8").splitlines()
    with_members = {line.split(",")[0] for line in members[1:]}
    dropped["campaigns"] = [line.split(",")[0] for line in lines[1:] if line.split(",")[0] in with_members][-3:]
    kept = [line for line in lines if line.split(",")[0] not in dropped["campaigns"]]
    campaigns.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return run_landed(root, CONTRACTS, AS_OF, **SETTINGS), dropped


def test_a_night_with_every_problem_at_once_builds_and_publishes(bad_night):
    _, run, _ = bad_night
    assert not {"dbt_models", "dbt_score_models"} & set(failed_steps(run)), explanation(run)
    assert not failed_error_checks(run), explanation(run)
    assert run.snapshot is not None, explanation(run)


def test_an_order_dated_1900_is_excluded_as_implausible_and_the_calendar_stays_small(bad_night):
    _, run, planted = bad_night
    with warehouse(run) as connection:
        excluded = connection.execute(
            """select source_table, exclusion_reason_code, exclusion_reason from marts.fct_row_exclusions
            where source_table in ('erp__orders', 'erp__order_lines')
            and (source_key = ? or source_key like ? || '-%')""",
            [planted["old_order"], planted["old_order"]],
        ).fetchall()
        first_day = connection.execute("select min(date_day) from marts.dim_date").fetchone()[0]
    assert excluded, f"order {planted['old_order']} dated 1900 is not among the exclusions"
    assert {code for _, code, _ in excluded} == {"implausible_date"}, excluded
    assert all("1900-01-01" in reason for _, _, reason in excluded), excluded
    assert first_day.year >= 2000, f"the calendar starts on {first_day}: one order of 1900 stretched it"


def test_a_zero_width_space_in_a_customer_key_is_ignored(bad_night):
    _, run, planted = bad_night
    with warehouse(run) as connection:
        order_customer = connection.execute(
            "select customer_id from marts.fct_orders where order_id = ?", [planted["spaced_order"]]
        ).fetchone()
        spaced_keys = connection.execute(
            "select count(*) from marts.dim_customers where customer_id like '%' || chr(8203) || '%'"
        ).fetchone()[0]
        account = connection.execute(
            "select count(*) from marts.dim_customers where customer_id = ? and has_customer_record",
            [planted["spaced_account"]],
        ).fetchone()[0]
    assert order_customer == (planted["spaced_customer"],)
    assert spaced_keys == 0
    assert account == 1


def test_the_largest_amounts_and_quantities_sum_without_overflow(bad_night):
    _, run, planted = bad_night
    with warehouse(run) as connection:
        line = connection.execute(
            "select gross_amount, rate_to_reporting, gross_revenue from marts.fct_order_lines where order_line_id = ?",
            [planted["big_amount_line"]],
        ).fetchone()
        quantity = connection.execute(
            "select quantity from marts.fct_order_lines where order_line_id = ?", [planted["big_quantity_line"]]
        ).fetchone()
        total_revenue = connection.execute("select sum(net_revenue) from marts.fct_orders").fetchone()[0]
    assert line is not None, explanation(run)
    amount, rate, revenue = line
    assert float(amount) == pytest.approx(99999999999999.99)
    assert rate != 1 and float(revenue) == pytest.approx(99999999999999.99 * float(rate))
    assert quantity == (2147483647,)
    assert total_revenue > revenue


def test_an_empty_export_leaves_its_table_empty_and_blocks_nothing(bad_night):
    _, run, _ = bad_night
    with warehouse(run) as connection:
        cases = connection.execute("select count(*) from marts.fct_support_cases").fetchone()[0]
    assert cases == 0


def test_a_shortened_re_delivery_excludes_what_refers_to_the_missing_rows(bad_night, shortened_night):
    _, first, _ = bad_night
    run, dropped = shortened_night
    assert not {"dbt_models", "dbt_score_models"} & set(failed_steps(run)), explanation(run)
    assert not failed_error_checks(run), explanation(run)
    assert run.snapshot is not None and run.snapshot.name != first.snapshot.name, explanation(run)
    with warehouse(run) as connection:
        assert_every_row_accounted_for(connection)
        sends_without_campaign = connection.execute(
            """select count(*) from marts.fct_interactions
            where interaction_type = 'send' and source_record_id in (
                select cast(send_id as varchar) from raw.marketing__sends where list_contains(?, campaign_id)
            ) and campaign_id is null""",
            [dropped["campaigns"]],
        ).fetchone()[0]
        reasons = connection.execute(
            """select source_table, exclusion_reason_code, count(*) from marts.fct_row_exclusions
            where exclusion_reason_code in ('order_missing', 'campaign_missing') group by all order by all"""
        ).fetchall()
        lines_in_facts = connection.execute(
            "select count(*) from marts.fct_order_lines where list_contains(?, order_id)", [dropped["orders"]]
        ).fetchone()[0]
    tables = {table for table, _, _ in reasons}
    assert {"erp__order_lines", "marketing__campaign_members"} <= tables, reasons
    assert lines_in_facts == 0
    assert sends_without_campaign > 0, "the sends of a campaign no longer delivered must stay, without a campaign"
