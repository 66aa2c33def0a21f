"""The Campaigns page run by Streamlit's AppTest on the snapshot the real pipeline published: results against the
control group, and the audience builder as marketing (saves, downloads) and as an analyst (neither)."""

import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from dashboards.auth import User
from dashboards.theme import Formats
from pipelines.publish.snapshot import current_snapshot
from pipelines.settings import PROJECT_ROOT, load_settings
from tests.integration.pages import open_page, page_text, point_at

pytestmark = pytest.mark.integration
CAMPAIGNS = str(PROJECT_ROOT / "dashboards" / "views" / "campaigns.py")
MARKETING = User(username="mo", name="Mo", role="marketing", contacts=True)
ANALYST = User(username="ana", name="Ana", role="analyst", contacts=False)


@pytest.fixture
def world(pipeline_run, monkeypatch, tmp_path):
    """The published world, with a landing zone of this test's own (saving writes there)."""
    world, _ = pipeline_run
    point_at(world, monkeypatch)
    landing = tmp_path / "landing"
    shutil.copytree(Path(world.environ["CRM_LANDING_DIR"]), landing)
    monkeypatch.setenv("CRM_LANDING_DIR", str(landing))
    return world


def snapshot_query(sql: str, parameters: list | None = None) -> list[tuple]:
    snapshot = current_snapshot(load_settings().published_dir)["path"]
    with duckdb.connect(snapshot, read_only=True) as connection:
        return connection.execute(sql, parameters or []).fetchall()


def test_results_show_every_measured_campaign_with_its_lift(world):
    app = open_page(CAMPAIGNS, MARKETING)
    assert not app.exception, app.exception
    campaigns = snapshot_query(
        "select campaign_name, conversion_lift, conversion_lift_low, conversion_lift_high "
        "from marts.rpt_campaign_results where breakdown = 'campaign'"
    )
    assert campaigns, "the small world runs campaigns: the page must have results to show"
    text = page_text(app)
    for name, lift, low, high in campaigns:
        assert name in text
        if low is not None:
            assert f"{lift * 100:+.1f} pts ({low * 100:+.1f} to {high * 100:+.1f})" in text


def test_marketing_plans_a_segment_and_saves_its_frozen_list_into_the_landing_zone(world):
    [(segment, customers)] = snapshot_query(
        "select rfm_segment, count(*) from marts.customer_360 where rfm_segment is not null "
        "group by all order by 2 desc limit 1"
    )
    app = open_page(CAMPAIGNS, MARKETING)
    assert not [button for button in app.get("download_button") if button.label.startswith("Target list")]
    app.multiselect[0].set_value([segment]).run()
    assert not app.exception, app.exception
    settings = load_settings()
    formats = Formats(settings.currency, settings.display_locale)
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Matching the filters"] == formats.count(customers)

    [save] = [button for button in app.button if button.label == "Save campaign"]
    save.click().run()
    assert not app.exception, app.exception
    assert app.success, [element.value for element in app.error]
    landing = settings.landing_dir / "marketing"
    [members_file] = landing.glob("campaign_members_planned_*.csv")
    [campaign_file] = landing.glob("campaigns_planned_*.csv")
    members = pl.read_csv(members_file)
    targets, controls = (members["member_group"] == "target").sum(), (members["member_group"] == "control").sum()
    assert metrics["Targets + control"] == f"{formats.count(targets)} + {formats.count(controls)}"
    assert members["stratum"].unique().to_list() == [segment]
    assert campaign_file.stat().st_size > 0
    campaign_id = pl.read_csv(campaign_file)["campaign_id"][0]
    assert any(button.label.startswith(f"Target list of {campaign_id}") for button in app.get("download_button"))
    # the page plans again with a fresh control draw, but the saved list stays frozen and Save is refused
    app.run()
    [save] = [button for button in app.button if button.label == "Save campaign"]
    assert save.disabled and pl.read_csv(members_file).equals(members)


def test_an_analyst_sees_audiences_but_neither_saves_nor_downloads_contacts(world):
    app = open_page(CAMPAIGNS, ANALYST)
    assert not app.exception, app.exception
    assert not [button for button in app.button if button.label == "Save campaign"]
    assert not [button for button in app.get("download_button") if button.label.startswith("Target list")]
    assert "marketing saves campaigns" in page_text(app)
