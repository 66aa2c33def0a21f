"""Identity resolution against the generator's truth: precision, recall, and the ceiling of what is linkable.

A record is correct when the customer it was resolved to is its true person (an ERP-anchored customer's person,
or the person of the contact that names a prospect). Some records carry nothing that links them to their person
in any export (a call from a number recorded nowhere, an anonymous session from a cookie that never logged in):
no rule can find them, so recall for calls and sessions is measured against the records that are linkable at all.
"""

import pytest

from tests.conftest import open_warehouse

pytestmark = pytest.mark.integration

SCORED = """
with truth as (select * from read_parquet('{truth}/identity.parquet')),
people as (select * from read_parquet('{truth}/people.parquet')),
records as (
    select
        resolved.source_system,
        resolved.source_record_id,
        resolved.matched_by,
        resolved.customer_id,
        normalised.phone_key,
        normalised.phone_candidates,
        null as visitor_id,
        normalised.known_erp_customer_id
    from intermediate.int_identity_records_resolved as resolved
    inner join intermediate.int_identity_records_normalised as normalised using (source_system, source_record_id)
    union all
    select 'web', session_id, matched_by, customer_id, null, null, visitor_id, erp_customer_id
    from intermediate.int_web_sessions_resolved
)
select
    records.source_system,
    records.matched_by,
    records.customer_id,
    truth.person_id as true_person,
    coalesce(anchor.person_id, prospect.person_id) as resolved_person,
    records.phone_key,
    records.phone_candidates,
    records.visitor_id,
    records.known_erp_customer_id
from records
left join truth using (source_system, source_record_id)
left join people as anchor on records.customer_id = anchor.erp_customer_no
left join truth as prospect
    on prospect.source_system = 'crm' and concat('L', prospect.source_record_id) = records.customer_id
"""

LINKABLE = """
with person_phones as (
    select distinct true_person, phone
    from scored, unnest([phone_key]) as listed (phone)
    where source_system in ('erp', 'crm') and phone is not null
    union
    select distinct scored.true_person, normalised.second_phone_key
    from scored inner join intermediate.int_identity_records_normalised as normalised
        on scored.source_system = 'crm' and scored.customer_id is not null and normalised.second_phone_key is not null
),
logged_in_visitors as (
    select distinct true_person, visitor_id from scored
    where source_system = 'web' and known_erp_customer_id is not null
)
select *, case
    when source_system in ('erp', 'crm') then true
    when source_system = 'callcenter' then exists (
        select 1 from person_phones
        where person_phones.true_person = scored.true_person
          and (person_phones.phone = scored.phone_key or list_contains(scored.phone_candidates, person_phones.phone)))
    else known_erp_customer_id is not null or exists (
        select 1 from logged_in_visitors
        where logged_in_visitors.true_person = scored.true_person and logged_in_visitors.visitor_id = scored.visitor_id)
end as is_linkable
from scored
where true_person is not null
"""


@pytest.fixture(scope="module")
def scored(pipeline_run):
    world, result = pipeline_run
    assert result.success
    connection = open_warehouse(world.root / "warehouse" / "crm.duckdb")
    connection.execute(f"create temp table scored as {SCORED.format(truth=world.truth)}")
    connection.execute(f"create temp table linkable as {LINKABLE}")
    yield connection
    connection.close()


def figures(connection, where: str = "true") -> tuple[float, float, float]:
    assigned, correct, truth, linkable, correct_linkable = connection.execute(
        f"""select
            (select count(*) from scored where customer_id is not null and {where}),
            (select count(*) from scored where customer_id is not null and resolved_person = true_person and {where}),
            (select count(*) from linkable where {where}),
            (select count(*) from linkable where is_linkable and {where}),
            (select count(*) from linkable where is_linkable and customer_id is not null
                and resolved_person = true_person and {where})"""
    ).fetchone()
    return correct / assigned, correct / truth, correct_linkable / linkable


def test_precision_is_at_least_99_percent_overall(scored):
    precision, recall, _ = figures(scored)
    print(f"identity resolution: precision {precision:.4f}, recall over every truth record {recall:.4f}")
    assert precision >= 0.99


def test_customer_records_are_found_with_recall_of_at_least_95_percent(scored):
    precision, recall, _ = figures(scored, "source_system in ('erp', 'crm')")
    assert precision >= 0.99
    assert recall >= 0.95


@pytest.mark.parametrize("system", ["callcenter", "web"])
def test_calls_and_sessions_are_found_whenever_anything_links_them(scored, system):
    precision, recall, linkable_recall = figures(scored, f"source_system = '{system}'")
    print(f"{system}: precision {precision:.4f}, recall {recall:.4f}, recall of linkable records {linkable_recall:.4f}")
    assert precision >= 0.99
    assert linkable_recall >= 0.95


def test_no_record_is_resolved_to_two_customers_and_every_rule_is_named(scored):
    unnamed = scored.execute("select count(*) from scored where customer_id is not null and matched_by is null")
    assert unnamed.fetchone()[0] == 0
