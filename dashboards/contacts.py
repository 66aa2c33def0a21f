"""Contact details (name, email, phone) for the roles allowed to see them, read from the contacts file.

The general snapshot holds no name, email or phone: the publish step writes them to a file of their own, named in
current.json (pipelines/publish/contacts.py). Only the Customer lookup and the Campaigns page (a saved campaign's
target list, through pipelines/campaigns/export.py) open it, and only for a role with contacts (pipelines/users.py),
read-only. What the user types is normalised as identity resolution normalises
(pipelines/identity_keys), so "+34 600 11 22 33" or "0034600112233" finds the phone stored as "600 112 233".

Only the connection is cached (one per file: a new publish is a new file). Search results are not: they are
personal data, and a point lookup on one small table is fast.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd
import streamlit as st

from pipelines.identity_keys import email_key, name_key, phone_key
from pipelines.publish.contacts import current_contacts

MATCH_LIMIT = 20
_COLUMNS = "customer_id, full_name, email, phone from contacts.customer_contacts"
BY_EMAIL_SQL = f"select {_COLUMNS} where email_key = ? order by customer_id limit ?"
BY_PHONE_SQL = f"select {_COLUMNS} where phone_key = ? order by customer_id limit ?"
# Part of a name ("garcia") finds "María García López": both sides normalised as the macro name_key does.
BY_NAME_SQL = f"select {_COLUMNS} where contains(name_key, ?) order by full_name, customer_id limit ?"
OF_CUSTOMER_SQL = f"select {_COLUMNS} where customer_id = ?"
# What a typed phone looks like: digits with the usual separators (phone_key wants at least 7 digits).
_PHONE_LIKE = re.compile(r"[0-9+()\s./-]+")


def contacts_file(published_dir: Path) -> Path | None:
    """The current contacts file, or None when the publish wrote none (no contact data, or an older release)."""
    path = current_contacts(Path(published_dir))
    return path if path is not None and Path(path).exists() else None


@st.cache_resource(show_spinner=False)
def _connection(path: str) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(path, read_only=True)


def _rows(path: Path, sql: str, parameters: list) -> pd.DataFrame:
    return _connection(str(path)).cursor().execute(sql, parameters).df()


def search(path: Path, text: str, default_country: str) -> pd.DataFrame:
    """Customers whose email, phone or name matches ``text`` (at most MATCH_LIMIT + 1, so the caller can tell
    there were more): an email when it holds "@", a phone when it is digits and separators, part of a name when
    it has no digit (text with digits that is no phone, such as a mistyped id, matches nobody)."""
    text = text.strip()
    if "@" in text:
        key = email_key(text)
        sql = BY_EMAIL_SQL
    elif _PHONE_LIKE.fullmatch(text):
        key = phone_key(text, default_country)
        sql = BY_PHONE_SQL
    elif not any(character.isdigit() for character in text):
        key = name_key(text)
        key = key if key and len(key) >= 2 else None
        sql = BY_NAME_SQL
    else:
        key = None
    return _rows(path, sql, [key, MATCH_LIMIT + 1]) if key else _empty()


def of_customer(path: Path, customer_id: str) -> dict | None:
    """The customer's name, email and phone, or None when the file holds none for them."""
    rows = _rows(path, OF_CUSTOMER_SQL, [customer_id])
    return None if rows.empty else rows.iloc[0].to_dict()


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=["customer_id", "full_name", "email", "phone"])
