"""The activity timeline and campaign contacts against the loaded exports and the generator's truth."""

from datetime import timedelta

import duckdb
import polars as pl
import pytest

from pipelines.publish.snapshot import current_snapshot
from pipelines.settings import load_settings
from tests.conftest import AS_OF, open_warehouse

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def warehouse(pipeline_run):
    """The working warehouse (raw tables included) and the published snapshot, after the nightly run."""
    world, result = pipeline_run
    assert result.success
    working = open_warehouse(world.root / "warehouse" / "crm.duckdb")
    yield world, working
    working.close()


def _local_date(column: str) -> str:
    timezone = load_settings().timezone
    return f"cast(timezone('{timezone}', timezone('UTC', {column})) as date)"


def test_every_touchpoint_is_on_the_timeline_once(warehouse):
    world, connection = warehouse
    cutoff = f"date '{AS_OF.isoformat()}'"
    expected = {
        "order": f"select count(*) from raw.erp__orders where cast(ordered_at as date) < {cutoff}",
        "call": f"select count(*) from raw.callcenter__calls where cast(started_at as date) < {cutoff}",
        "send": f"select count(*) from raw.marketing__sends where {_local_date('sent_at')} < {cutoff}",
        "web_session": f"select count(*) from raw.web__sessions where {_local_date('started_at')} < {cutoff}",
        "support_case": f"select count(*) from raw.crm__cases where cast(opened_at as date) < {cutoff}",
    }
    for response_type in ("open", "click", "conversion", "unsubscribe"):
        expected[response_type] = (
            f"select count(*) from raw.marketing__responses where response_type = '{response_type}' "
            f"and {_local_date('responded_at')} < {cutoff}"
        )
    expected = {kind: connection.execute(sql).fetchone()[0] for kind, sql in expected.items()}
    expected = {kind: count for kind, count in expected.items() if count}  # a small world may lack a rare kind
    with duckdb.connect(current_snapshot(world.root / "published")["path"], read_only=True) as published:
        counted = dict(
            published.execute("select interaction_type, count(*) from marts.fct_interactions group by all").fetchall()
        )
        unresolved_orders = published.execute(
            "select count(*) from marts.fct_interactions where interaction_type = 'order' and customer_id is null"
        ).fetchone()[0]
        outbound = {
            row[0]
            for row in published.execute(
                "select distinct interaction_type from marts.fct_interactions where direction = 'outbound'"
            ).fetchall()
        }
    assert counted == expected
    assert {"order", "call", "send", "open", "click", "web_session", "support_case"} <= expected.keys()
    assert unresolved_orders == 0
    assert outbound == {"send"}


def test_campaign_contacts_measure_both_groups_over_the_same_window(warehouse):
    world, _ = warehouse
    settings = load_settings()
    with duckdb.connect(current_snapshot(world.root / "published")["path"], read_only=True) as published:
        contacts = published.sql("select * from marts.fct_campaign_contacts").pl()
        orders = published.sql("select customer_id, order_date, net_revenue from marts.fct_orders").pl()
        campaigns = published.sql("select campaign_id, end_date from marts.dim_campaigns").pl()
    # group sizes are the generator's
    truth = pl.read_parquet(world.truth / "campaign_uplift.parquet")
    sizes = contacts.group_by("campaign_id").agg(
        targets=(~pl.col("is_control")).sum(), controls=pl.col("is_control").sum()
    )
    joined = truth.join(sizes, on="campaign_id", suffix="_measured")
    assert joined.height == truth.height
    assert (joined["targets"] == joined["targets_measured"]).all()
    assert (joined["controls"] == joined["controls_measured"]).all()
    # control members receive nothing; responses only follow sends
    control = contacts.filter(pl.col("is_control"))
    assert control["sends"].sum() == 0 and not control["has_responded"].any()
    assert contacts.filter(pl.col("has_responded") & (pl.col("sends") == 0)).height == 0
    # the window's orders, recomputed here from the orders and the campaigns' end dates
    last_day = AS_OF - timedelta(days=1)
    windows = contacts.join(campaigns, on="campaign_id").with_columns(
        window_end=pl.min_horizontal(
            pl.col("end_date") + pl.duration(days=settings.campaign_attribution_days), pl.lit(last_day)
        )
    )
    assert (windows["window_end"] == windows["window_end_date"]).all()
    recomputed = (
        windows.join(orders, on="customer_id", how="left")
        .filter(pl.col("order_date").is_between(pl.col("window_start_date"), pl.col("window_end")))
        .group_by("campaign_member_id")
        .agg(orders=pl.len(), revenue=pl.col("net_revenue").sum())
    )
    measured = contacts.join(recomputed, on="campaign_member_id", how="left").with_columns(
        pl.col("orders").fill_null(0), pl.col("revenue").fill_null(0)
    )
    assert (measured["orders"] == measured["orders_in_window"]).all()
    assert (measured["revenue"] == measured["net_revenue_in_window"]).all()
    assert measured["orders"].sum() > 0


def test_prospects_are_the_people_the_crm_knows_and_the_erp_does_not(warehouse):
    world, _ = warehouse
    identity = pl.read_parquet(world.truth / "identity.parquet")
    buyers = identity.filter(pl.col("source_system") == "erp")["person_id"].unique()
    leads = identity.filter((pl.col("source_system") == "crm") & ~pl.col("person_id").is_in(buyers.implode()))
    true_prospects = leads["person_id"].n_unique()
    with duckdb.connect(current_snapshot(world.root / "published")["path"], read_only=True) as published:
        prospects, without_tier = published.execute(
            "select count(*), count(*) filter (where loyalty_tier is null) from marts.dim_customers "
            "where customer_type = 'prospect'"
        ).fetchone()
    assert prospects == without_tier
    assert abs(prospects - true_prospects) / true_prospects < 0.05, (prospects, true_prospects)
