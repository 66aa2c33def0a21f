"""What the page tests share: pointing the settings at a world's published snapshot, opening a page as a user
with Streamlit's AppTest, and reading everything a page sends to the browser."""

import pytest
from streamlit.testing.v1 import AppTest

from dashboards.auth import User


def point_at(world, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the settings (CRM_* variables) at ``world``'s landing zone, warehouse and published snapshot."""
    for name, value in world.environ.items():
        monkeypatch.setenv(name, value)


def open_page(path: str, user: User, timeout: int = 60) -> AppTest:
    """The page at ``path`` rendered once for ``user`` (as the app puts the signed-in user in the session)."""
    app = AppTest.from_file(path, default_timeout=timeout)
    app.session_state["crm_user"] = user
    return app.run()


def page_text(app: AppTest) -> str:
    """Everything the page sends to the browser: every element's message, tables' data included."""
    return "\n".join(str(node.proto) for node in app._tree if getattr(node, "proto", None) is not None)
