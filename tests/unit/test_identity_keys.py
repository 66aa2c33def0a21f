"""The search keys in Python (pipelines/identity_keys.py) are the warehouse's: the macros of
dbt_project/macros/identity.sql, rendered and run in DuckDB, give the same key for tricky inputs and random text."""

from functools import cache

import duckdb
import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.identity_keys import COUNTRIES_SEED, email_key, name_key, phone_key
from pipelines.settings import PROJECT_ROOT

MACROS = PROJECT_ROOT / "dbt_project" / "macros" / "identity.sql"


@cache
def _macros():
    """The identity macros as plain Jinja (they use nothing of dbt's context)."""
    return jinja2.Environment().from_string(MACROS.read_text(encoding="utf-8")).module


@cache
def _connection() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute(
        "create table countries as select * from read_csv(?, all_varchar = true, header = true)",
        [str(COUNTRIES_SEED)],
    )
    return connection


def sql_email_key(text: str | None) -> str | None:
    return _connection().execute(f"select {_macros().normalise_email('$text')}", {"text": text}).fetchone()[0]


def sql_phone_key(text: str | None, default_country: str, country: str | None) -> str | None:
    # the codes of the record's country, each falling back to the default country's (int_identity_records_normalised)
    expression = _macros().phone_e164("$text", "calling_code", "trunk_prefix")
    query = f"""select {expression} from (
        select
            coalesce(record.calling_code, fallback.calling_code) as calling_code,
            coalesce(record.trunk_prefix, fallback.trunk_prefix) as trunk_prefix
        from (select * from countries where country_code = $default_country) as fallback
        left join (select * from countries where country_code = $country) as record on true)"""
    parameters = {"text": text, "default_country": default_country, "country": country}
    return _connection().execute(query, parameters).fetchone()[0]


def sql_name_key(first_name: str | None, last_name: str | None) -> str | None:
    expression = _macros().name_key("$first_name", "$last_name")
    return (
        _connection().execute(f"select {expression}", {"first_name": first_name, "last_name": last_name}).fetchone()[0]
    )


EMAILS = [
    (" Ana.Garcia@Shop.COM ", "ana.garcia@shop.com"),
    ("first.last@gmail.com", "first.last@gmail.com"),  # the macro keeps gmail's dots
    ("first.last+news@gmail.com", "first.last+news@gmail.com"),
    ("\u00a0ana@shop.es\u3000", "ana@shop.es"),  # space separators are trimmed
    ("\tana@shop.es", None),  # a tab is not: it is whitespace inside the address
    ("ana@shop.es\n", None),
    ("İnci@shop.com.tr", "inci@shop.com.tr"),
    ("noreply@shop.es", None),
    ("No-Email@shop.es", None),
    ("xxx@shop.es", None),
    ("sin-correo@shop.es", None),
    ("ana@example.com", None),
    ("a@b.c", None),
    ("a b@c.es", None),
    ("a@b@c.es", None),
    ("ana@shop.es2", None),
    ("", None),
    (None, None),
]

PHONES = [  # text, default country, record's country, key
    ("+34 600 11 22 33", "ES", None, "+34600112233"),
    ("0034 600 11 22 33", "ES", None, "+34600112233"),
    ("600 11 22 33", "ES", None, "+34600112233"),
    ("600 11 22 33", "ES", "ZZ", "+34600112233"),  # an unknown country reads in the default one
    ("(600) 112-233", "ES", None, "+34600112233"),
    ("06 12 34 56 78", "ES", "FR", "+33612345678"),
    ("06 12 34 56 78", "FR", None, "+33612345678"),
    ("06 30 123 4567", "ES", "HU", "+36301234567"),
    ("8 912 345 67 89", "ES", "RU", "+79123456789"),
    ("(212) 555-0142", "ES", "US", "+12125550142"),
    ("06 1234 5678", "FR", "IT", "+39612345678"),  # Italy has no trunk prefix: France's is used
    ("600 11 22 33", "ES", "AQ", "+34600112233"),  # no calling code: the default country's
    ("\u00a0+44 20 7946 0958", "ES", None, "+442079460958"),
    ("\t+44 20 7946 0958", "ES", None, "+34442079460958"),  # a tab is not trimmed: read as national
    ("000 000 000", "ES", None, None),
    ("12 34 56", "ES", None, None),
    ("", "ES", None, None),
    (None, "ES", None, None),
]

NAMES = [
    ("José", "Muñoz-Pérez", "jose munozperez"),
    ("  José ", " García", "jose   garcia"),
    ("ÉLODIE", None, "elodie"),
    (None, "O'Brien", "obrien"),
    ("Łukasz", "Żółć", "ukasz zoc"),
    ("İlker", "Straße", "ilker strae"),
    ("123", "!!", None),
    (None, None, None),
]


@pytest.mark.parametrize(("text", "key"), EMAILS)
def test_email_key_is_the_macros(text, key):
    assert email_key(text) == key
    assert sql_email_key(text) == key


@pytest.mark.parametrize(("text", "default_country", "country", "key"), PHONES)
def test_phone_key_is_the_macros(text, default_country, country, key):
    assert phone_key(text, default_country, country) == key
    assert sql_phone_key(text, default_country, country) == key


@pytest.mark.parametrize(("first_name", "last_name", "key"), NAMES)
def test_name_key_is_the_macros(first_name, last_name, key):
    assert name_key(first_name, last_name) == key
    assert sql_name_key(first_name, last_name) == key


TRICKY = "aAzZ09.+-_@ ()\t\n\x00\u00a0\u3000İıßøéÉ\u0301ΣςЖ٣"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), st.text(alphabet=TRICKY, max_size=24), st.emails()))
def test_email_key_agrees_with_the_macro_on_random_text(text):
    assert email_key(text) == sql_email_key(text)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.none(), st.text(alphabet=TRICKY + "0123456789" * 4, max_size=24)),
    st.sampled_from(["ES", "FR", "HU", "GB", "AQ"]),
    st.sampled_from([None, "ZZ", "ES", "FR", "HU", "RU", "US", "IT", "AQ"]),
)
def test_phone_key_agrees_with_the_macro_on_random_text(text, default_country, country):
    assert phone_key(text, default_country, country) == sql_phone_key(text, default_country, country)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=16)), st.one_of(st.none(), st.text(alphabet=TRICKY, max_size=16)))
def test_name_key_agrees_with_the_macro_on_random_text(first_name, last_name):
    assert name_key(first_name, last_name) == sql_name_key(first_name, last_name)
