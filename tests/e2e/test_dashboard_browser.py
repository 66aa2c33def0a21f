"""The whole Streamlit app served for real and opened in headless Chromium."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from pipelines.settings import PROJECT_ROOT
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served_app(pipeline_run, tmp_path):
    world, _ = pipeline_run
    port = free_port()
    environ = {**os.environ, **world.environ}
    log = (tmp_path / "streamlit.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "dashboards" / "app.py"),
            "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
            "--browser.gatherUsageStats", "false",
        ],
        env=environ, stdout=log, stderr=subprocess.STDOUT,
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
        pytest.fail(f"streamlit did not start: {(tmp_path / 'streamlit.log').read_text()}")
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_the_overview_renders_figures_and_segments_in_a_real_browser(served_app, tmp_path):
    require_system_tool("/usr/bin/chromium", "sudo apt-get install chromium chromium-driver")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(served_app)
        page.get_by_text("Customer overview").wait_for(timeout=60_000)
        page.get_by_text("Customers (ever bought)").wait_for(timeout=60_000)
        page.get_by_text("RFM segments").wait_for(timeout=30_000)
        # Streamlit renders while the script runs: wait for the caption and the last section before reading.
        page.get_by_text("As of 2026-06-30").wait_for(timeout=30_000)
        page.get_by_text("Loyalty tiers").wait_for(timeout=30_000)
        body = page.inner_text("body")
        page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
        browser.close()
    assert "As of 2026-06-30" in body
    assert "Traceback" not in body and "Error" not in body
