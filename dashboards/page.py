"""What every page does first: check who is signed in, find the published snapshot, title the page.

A page file is::

    PAGE = {"title": "Loyalty", "icon": ":material/loyalty:", "order": 10, "roles": ("executive", "admin")}
    page = start(PAGE)
    figures = page.query(SOME_SQL, (page.as_of,))

:func:`start` stops the page (with a message saying what to do) when the user's role may not open it or when
nothing is published yet, so the rest of a page file can assume both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd
import streamlit as st

from dashboards import data
from dashboards.auth import User, signed_in
from dashboards.theme import Formats
from pipelines.settings import Settings, load_settings

NOTHING_PUBLISHED = (
    "Nothing is published yet. Run `make run` (demo data) or `crm run` (your exports), then reload this page."
)


@dataclass(frozen=True)
class Page:
    """A page's view of the current snapshot, for the signed-in user."""

    user: User
    snapshot: dict
    settings: Settings
    formats: Formats

    @property
    def path(self) -> str:
        return self.snapshot["path"]

    @property
    def as_of(self) -> date:
        return date.fromisoformat(self.snapshot["as_of"])

    def query(self, sql: str, parameters: tuple = ()) -> pd.DataFrame:
        return data.query(self.path, sql, tuple(parameters))

    def connection(self):
        """A cursor on the snapshot's read-only connection, for code that takes a connection (campaign planning)."""
        return data.connection(self.path).cursor()

    def has(self, *qualified_tables: str) -> bool:
        """Whether the snapshot holds every one of ``schema.table``."""
        return set(qualified_tables) <= data.tables(self.path)


def start(declaration: dict) -> Page:
    """Check the user may open the page declared by ``declaration``, title it, and return its view of the
    snapshot; stop the page with a message when it cannot be shown."""
    user = signed_in()
    if user is None:
        st.stop()
    if user.role not in declaration["roles"]:
        st.error(f"Your role ({user.role}) does not open the page {declaration['title']}. Ask an admin.")
        st.stop()
    st.title(declaration["title"])
    snapshot = data.published()
    if snapshot is None:
        st.info(NOTHING_PUBLISHED)
        st.stop()
    settings = load_settings()
    st.caption(
        f"As of {snapshot['as_of']} · published {snapshot['published_at'][:16].replace('T', ' ')} · "
        f"run {snapshot['run_id'][:8]}"
    )
    return Page(user, snapshot, settings, Formats(settings.currency, settings.display_locale))
