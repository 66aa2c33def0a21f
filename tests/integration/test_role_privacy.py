"""No page shows a role without contact details any customer's name, email or phone: every page each such role may
open, rendered by AppTest on the real pipeline's snapshot (the lookup opened on a customer who has all three),
with everything the page sends to the browser (tables' data, which the browser draws on a canvas, included)
searched for the exact details of the contacts file. The same search finds them where a role may see them."""

import duckdb
import pytest

from dashboards.auth import User
from dashboards.registry import pages_for
from pipelines.publish.contacts import current_contacts
from pipelines.users import ROLES
from tests.integration.pages import open_page, page_text, point_at

pytestmark = pytest.mark.integration


def render(spec, role: str, customer: str) -> str:
    app = open_page(str(spec.path), User(username=role, name=role, role=role, contacts=ROLES[role].contacts), 120)
    if spec.page_id == "lookup":
        app.text_input[0].input(customer).run()
    assert not app.exception, (role, spec.page_id, app.exception)
    assert not app.error, (role, spec.page_id, [element.value for element in app.error])
    return page_text(app)


@pytest.fixture(scope="module")
def published(pipeline_run):
    world, result = pipeline_run
    assert result.success
    with duckdb.connect(str(current_contacts(world.root / "published")), read_only=True) as connection:
        customer, *details = connection.execute(
            "select customer_id, full_name, email, phone from contacts.customer_contacts "
            "where full_name is not null and email is not null and phone is not null order by customer_id limit 1"
        ).fetchone()
    return world, customer, details


@pytest.mark.parametrize("role", [role for role, spec in ROLES.items() if not spec.contacts])
def test_a_role_without_contact_details_sees_none_on_any_page(published, monkeypatch, role):
    world, customer, details = published
    point_at(world, monkeypatch)
    assert pages_for(role)
    for spec in pages_for(role):
        text = render(spec, role, customer)
        for detail in details:
            assert detail not in text, (role, spec.page_id, detail)


def test_the_same_search_finds_the_details_where_the_role_may_see_them(published, monkeypatch):
    world, customer, details = published
    point_at(world, monkeypatch)
    (lookup,) = [spec for spec in pages_for("service") if spec.page_id == "lookup"]
    text = render(lookup, "service", customer)
    assert all(detail in text for detail in details), details
