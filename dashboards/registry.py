"""The pages of the dashboards: every file in dashboards/views/ that declares a ``PAGE`` dictionary.

Adding a page is adding one file. A page file starts with its declaration, read here without running the file::

    PAGE = {"title": "Loyalty", "icon": ":material/loyalty:", "order": 10,
            "roles": ("executive", "analyst", "marketing", "admin")}

``roles`` lists who may open the page (pipelines/users.py names the roles); the app shows each user only their
pages, and the page itself refuses anyone else (:func:`dashboards.page.start`), so a page reached by its address
is checked too.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

# Not "pages/": Streamlit would also serve a folder of that name beside app.py as pages of its own, by address,
# outside app.py (no sign-in form, no navigation of the user's pages).
PAGES_DIR = Path(__file__).resolve().parent / "views"


@dataclass(frozen=True)
class PageSpec:
    path: Path
    title: str
    icon: str | None
    order: int
    roles: tuple[str, ...]

    @property
    def page_id(self) -> str:
        return self.path.stem


def _declaration(path: Path) -> dict | None:
    """The literal ``PAGE = {...}`` at the top level of ``path``, or None when the file declares none."""
    for node in ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "PAGE" for target in node.targets
        ):
            return ast.literal_eval(node.value)
    return None


def page_spec(path: Path) -> PageSpec | None:
    declared = _declaration(path)
    if declared is None:
        return None
    return PageSpec(
        path=path,
        title=str(declared["title"]),
        icon=declared.get("icon"),
        order=int(declared.get("order", 100)),
        roles=tuple(declared["roles"]),
    )


def all_pages(folder: Path = PAGES_DIR) -> list[PageSpec]:
    """Every declared page, in their declared order (then by title)."""
    specs = [spec for path in sorted(folder.glob("*.py")) if (spec := page_spec(path)) is not None]
    return sorted(specs, key=lambda spec: (spec.order, spec.title))


def pages_for(role: str, folder: Path = PAGES_DIR) -> list[PageSpec]:
    """The pages ``role`` may open."""
    return [spec for spec in all_pages(folder) if role in spec.roles]
