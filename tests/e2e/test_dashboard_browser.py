"""The whole Streamlit app served for real and opened in headless Chromium, signed in as each role.

For every role: sign in through the form, open every page the role may see from the sidebar, fail on any
Streamlit exception or error element, and save a screenshot of each page under test-output/browser/<role>/ (or
$CRM_TEST_OUTPUT/browser/<role>/). An analyst's pages must hold no email address or phone number (the Customer
lookup is opened on a customer, too); an unsigned visit, to the app or straight to a page's address, sees only the
sign-in form.
"""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

from dashboards.registry import pages_for
from pipelines.publish.snapshot import current_snapshot
from pipelines.settings import PROJECT_ROOT
from pipelines.users import ROLES, add_user
from tests.conftest import require_system_tool

pytestmark = [pytest.mark.browser, pytest.mark.integration]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PASSWORD = "correct horse battery"
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
# an international number, or nine and more digits in a row (no figure on a page is written that way)
PHONE = re.compile(r"\+\d[\d ().-]{7,}\d|(?<![\d,.])\d{9,}(?![\d,.])")
OUTPUT = Path(os.environ.get("CRM_TEST_OUTPUT", PROJECT_ROOT / "test-output")) / "browser"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served_app(pipeline_run, tmp_path_factory):
    world, result = pipeline_run
    assert result.success
    folder = tmp_path_factory.mktemp("dashboards")
    users_file = folder / "users.yaml"
    for role in ROLES:
        add_user(users_file, f"{role}-user", role, PASSWORD)
    port = free_port()
    environ = {**os.environ, **world.environ, "CRM_USERS_FILE": str(users_file)}
    log_path = folder / "streamlit.log"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "dashboards" / "app.py"),
            "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
            "--client.showErrorDetails", "none",
        ],
        env=environ, stdout=log_path.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail(f"streamlit did not start: {log_path.read_text()}")
    yield url, world
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    require_system_tool("/usr/bin/chromium", "sudo apt-get install chromium chromium-driver")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def settle(page) -> None:
    """Wait until Streamlit has finished running the script (its status widget gone) and the page is still."""
    # (never "networkidle": the app's websocket stays open)
    page.wait_for_timeout(500)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=60_000)
    page.wait_for_timeout(500)


def screenshot(page, path: Path) -> None:
    """The whole page: Streamlit scrolls inside its main area, so the window is made as tall as that area first."""
    areas = '[data-testid="stMain"], [data-testid="stAppViewContainer"]'
    height = page.evaluate(
        f"() => Math.max(...[...document.querySelectorAll('{areas}')].map(element => element.scrollHeight), 1000)"
    )
    page.set_viewport_size({"width": 1400, "height": min(height + 50, 16_000)})
    page.wait_for_timeout(700)  # charts redraw at the new size
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1000})


def problems(page) -> list[str]:
    """The text of every Streamlit exception and error element on the page."""
    found = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    return [found.nth(index).inner_text() for index in range(found.count())]


def sign_in(page, url: str, role: str) -> None:
    page.goto(url)
    page.get_by_role("textbox", name="User name").fill(f"{role}-user")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"{role}-user").first.wait_for(timeout=60_000)
    settle(page)


def test_an_unsigned_visit_sees_only_the_sign_in(served_app, browser):
    url, _ = served_app
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    out = OUTPUT / "unsigned"
    out.mkdir(parents=True, exist_ok=True)
    for address in (url, *(f"{url}/{spec.page_id}" for spec in pages_for("admin"))):
        page.goto(address)
        page.get_by_role("textbox", name="User name").wait_for(timeout=60_000)
        settle(page)
        body = page.inner_text("body")
        assert page.get_by_role("button", name="Sign in").count() == 1
        assert not page.locator('[data-testid="stSidebarNav"]').count(), address
        for spec in pages_for("admin"):
            assert spec.title not in body.replace("Sign in", ""), (address, spec.title)
        assert not page.locator('[data-testid="stMetric"], [data-testid="stDataFrame"], canvas').count()
        screenshot(page, out / f"{'app' if address == url else address.rsplit('/', 1)[-1]}.png")
    context.close()


@pytest.mark.parametrize("role", list(ROLES))
def test_each_role_opens_each_of_its_pages_without_an_error(served_app, browser, role):
    url, world = served_app
    with duckdb.connect(current_snapshot(world.root / "published")["path"], read_only=True) as connection:
        (customer,) = connection.execute(
            "select min(customer_id) from marts.customer_360 where has_email and has_phone"
        ).fetchone()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    sign_in(page, url, role)
    out = OUTPUT / role
    out.mkdir(parents=True, exist_ok=True)
    nav = page.locator('[data-testid="stSidebarNav"]')
    allowed = pages_for(role)
    # Streamlit lists the pages only when there are two or more; a role with one page lands on it
    shown = nav.inner_text() if len(allowed) > 1 else allowed[0].title
    for spec in pages_for("admin"):
        assert (spec.title in shown) == (spec in allowed), (role, spec.title)
    texts = {}
    for spec in allowed:
        if len(allowed) > 1:
            nav.get_by_role("link", name=spec.title).click()
        page.get_by_role("heading", name=spec.title).first.wait_for(timeout=60_000)
        settle(page)
        if spec.page_id == "lookup":
            search = page.locator('[data-testid="stTextInput"] input').first
            search.fill(customer)
            search.press("Enter")
            page.get_by_text(customer).first.wait_for(timeout=60_000)
            settle(page)
        texts[spec.page_id] = page.inner_text("body")
        screenshot(page, out / f"{spec.page_id}.png")
        assert not problems(page), (role, spec.title, problems(page))
        assert "Traceback" not in texts[spec.page_id]
    context.close()
    if ROLES[role].contacts and "lookup" in texts:
        # the same detectors find the details where the role may see them: the check below can fail
        assert EMAIL.search(texts["lookup"]) and PHONE.search(texts["lookup"]), texts["lookup"][:2000]
    if not ROLES[role].contacts:
        for page_id, text in texts.items():
            assert not EMAIL.search(text), (role, page_id, EMAIL.search(text).group())
            assert not PHONE.search(text), (role, page_id, PHONE.search(text).group())
