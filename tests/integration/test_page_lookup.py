"""The Customer lookup page run by Streamlit's AppTest on the snapshot the real pipeline published, as a role with
contact details (service) and as one without (analyst)."""

import re
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from dashboards.auth import User
from dashboards.theme import Formats
from pipelines import sql
from pipelines.publish.contacts import current_contacts
from pipelines.publish.snapshot import current_snapshot
from pipelines.settings import PROJECT_ROOT, load_settings
from tests.integration.pages import open_page, page_text, point_at

pytestmark = pytest.mark.integration
LOOKUP = str(PROJECT_ROOT / "dashboards" / "views" / "lookup.py")
SERVICE = User(username="sam", name="Sam", role="service", contacts=True)
ANALYST = User(username="ana", name="Ana", role="analyst", contacts=False)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


@pytest.fixture
def published(pipeline_run, monkeypatch) -> Path:
    world, _ = pipeline_run
    point_at(world, monkeypatch)
    return world.root / "published"


def open_lookup(user: User) -> AppTest:
    return open_page(LOOKUP, user)


def search(app: AppTest, text: str) -> AppTest:
    app.text_input[0].set_value(text)
    return app.run()


def assert_clean(app: AppTest) -> None:
    assert not app.exception, app.exception
    assert not app.error, [element.value for element in app.error]


def assert_card(app: AppTest, snapshot: Path, customer_id: str) -> None:
    """The card's figures equal the base facts and scores (not customer_360, which the page reads)."""
    settings = load_settings()
    formats = Formats(settings.currency, settings.display_locale)
    with duckdb.connect(str(snapshot), read_only=True) as connection:
        orders, revenue = connection.execute(
            "select count(*), sum(net_revenue) from marts.fct_orders where customer_id = ?", [customer_id]
        ).fetchone()
        (tier,) = connection.execute(
            "select loyalty_tier from marts.dim_customers where customer_id = ?", [customer_id]
        ).fetchone()
        (clv,) = connection.execute(
            "select clv from ml.clv_scores where customer_id = ? and as_of = (select max(as_of) from ml.clv_scores)",
            [customer_id],
        ).fetchone() or (None,)
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Orders (lifetime)"] == formats.count(orders)
    assert metrics["Net revenue (lifetime)"] == formats.money(revenue)
    assert metrics["Lifetime value (CLV)"] == formats.money(clv)
    badge = f"{tier.capitalize()} tier" if tier else "No tier"
    assert any(badge in element.value for element in app.markdown)


def test_service_finds_a_customer_by_a_phone_written_differently_and_sees_the_card(published):
    contacts_file = current_contacts(published)
    snapshot = Path(current_snapshot(published)["path"])
    with duckdb.connect(str(contacts_file), read_only=True) as connection:
        connection.execute(f"attach {sql.string(str(snapshot))} as published (read_only)")
        # a customer with orders, a name and an email, whose phone and email no one else shares
        customer_id, name, email, phone, phone_key = connection.execute(
            "select customer_id, full_name, email, phone, phone_key from contacts.customer_contacts "
            "where phone_key in (select phone_key from contacts.customer_contacts group by all having count(*) = 1) "
            "and email_key in (select email_key from contacts.customer_contacts group by all having count(*) = 1) "
            "and full_name is not null "
            "and customer_id in (select customer_id from published.marts.fct_orders) order by customer_id limit 1"
        ).fetchone()
    digits = phone_key.removeprefix("+")
    typed = f"00 {digits[:2]} {digits[2:5]}-{digits[5:8]} {digits[8:]}"  # international prefix, spaces, a dash
    assert typed != phone

    app = search(open_lookup(SERVICE), typed)

    assert_clean(app)
    assert app.subheader[0].value == name
    text = page_text(app)
    assert email in text and phone in text
    assert_card(app, snapshot, customer_id)

    # the same customer by their email in capitals and padded
    app = search(app, f"  {email.upper()} ")
    assert_clean(app)
    assert app.subheader[0].value == name


def test_an_analyst_finds_a_customer_by_id_and_sees_no_contact_detail_anywhere(published):
    contacts_file = current_contacts(published)
    snapshot = Path(current_snapshot(published)["path"])
    with duckdb.connect(str(snapshot), read_only=True) as connection:
        connection.execute(f"attach {sql.string(str(contacts_file))} as contacts_file (read_only)")
        # a customer with an open case and touchpoints (every section of the page is drawn) and contact details
        customer_id, name, email, phone, phone_key = connection.execute(
            "select customer_id, full_name, email, phone, phone_key from contacts_file.contacts.customer_contacts "
            "where customer_id in (select customer_id from marts.fct_support_cases where is_open) "
            "and email is not null order by phone is null, customer_id limit 1"
        ).fetchone()
        touchpoints = connection.execute(
            "select count(*) from marts.fct_interactions where customer_id = ?", [customer_id]
        ).fetchone()[0]
        open_cases = connection.execute(
            "select count(*) from marts.fct_support_cases where customer_id = ? and is_open", [customer_id]
        ).fetchone()[0]

    app = search(open_lookup(ANALYST), customer_id)

    assert_clean(app)
    assert "Search by customer id (your role does not see contact details)." in [c.value for c in app.caption]
    assert app.subheader[0].value == f"Customer {customer_id}"
    assert_card(app, snapshot, customer_id)
    latest, cases = app.dataframe[0].value, app.dataframe[1].value
    assert len(latest) == min(touchpoints, 50)
    assert len(cases) == open_cases > 0
    text = page_text(app)
    for detail in (name, email, phone, phone_key, (phone_key or "").removeprefix("+")):
        assert not detail or detail not in text, "a contact detail reached an analyst's page"
    assert not EMAIL.search(text)


def test_a_customer_the_churn_model_did_not_score_shows_a_card_that_says_so(published):
    snapshot = Path(current_snapshot(published)["path"])
    with duckdb.connect(str(snapshot), read_only=True) as connection:
        unscored = connection.execute(
            "select min(customer_id) from marts.customer_360 where churn_reasons is null and churn_risk_band is null"
        ).fetchone()[0]
    assert unscored is not None  # prospects: CRM contacts who never bought
    app = search(open_lookup(ANALYST), unscored)
    assert_clean(app)
    assert any("Not scored" in element.value for element in app.markdown), [e.value for e in app.markdown]


def test_the_card_lists_the_customers_next_best_offers_in_rank_order_and_their_channel_evidence(published):
    snapshot = Path(current_snapshot(published)["path"])
    with duckdb.connect(str(snapshot), read_only=True) as connection:
        # a customer with offers and some campaign evidence
        customer_id, note = connection.execute(
            "select customer_id, evidence_note from marts.customer_channel_preference "
            "where customer_id in (select customer_id from ml.next_best_offers) "
            "and evidence_status <> 'never contacted' "
            "order by customer_id limit 1"
        ).fetchone()
        offers = connection.execute(
            "select item_name from ml.next_best_offers where customer_id = ? "
            "and as_of = (select max(as_of) from ml.next_best_offers) order by offer_rank",
            [customer_id],
        ).fetchall()
    app = search(open_lookup(ANALYST), customer_id)
    assert_clean(app)
    markdown = [element.value for element in app.markdown]
    [listed] = [value for value in markdown if value.startswith("1. **")]
    names = [line.split("**")[1].replace("\\", "") for line in listed.splitlines()]
    assert names == [name for (name,) in offers]
    assert note in page_text(app)


def test_an_unknown_id_says_so(published):
    app = search(open_lookup(ANALYST), "C123")
    assert_clean(app)
    as_of = current_snapshot(published)["as_of"]
    assert f"No customer C123 in the snapshot of {as_of}" in app.info[0].value


def test_the_page_says_what_to_do_when_nothing_is_published(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_PUBLISHED_DIR", str(tmp_path / "nothing"))
    app = open_lookup(SERVICE)
    assert not app.exception
    assert "Nothing is published yet" in app.info[0].value
