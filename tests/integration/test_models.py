"""The scoring models inside the real nightly run: what they write to schema ml, how the scores reach the marts,
and the fallback to the baseline when a model cannot be trusted."""

import json
import shutil
from datetime import date

import dagster as dg
import duckdb
import polars as pl
import pytest

from models_ml import run_churn
from pipelines.ml.assets import build_ml_assets
from pipelines.ml.features import ENGAGEMENT_FEATURES, churn_inputs, feature_label
from pipelines.ml.marketing_assets import build_marketing_assets
from pipelines.publish.snapshot import current_snapshot
from pipelines.resources import AS_OF_TAG, Warehouse
from pipelines.settings import load_settings
from tests.conftest import AS_OF, open_warehouse

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def published(pipeline_run):
    world, result = pipeline_run
    assert result.success
    with duckdb.connect(current_snapshot(world.root / "published")["path"], read_only=True) as connection:
        yield result, connection


def test_every_model_records_its_run_beside_its_baseline(published):
    _, connection = published
    runs = {
        row[0]: row[1:]
        for row in connection.execute(
            "select model, rows_used, metrics, baseline_metrics, beats_baseline, score_source, training_to "
            "from ml.model_runs"
        ).fetchall()
    }
    assert {"rfm", "clv", "churn", "tier_movement", "behaviour_segments"} <= set(runs)
    for model in ("clv", "churn"):
        rows_used, metrics, baseline, beats, source, training_to = runs[model]
        assert rows_used > 0 and training_to is not None
        assert json.loads(metrics) and json.loads(baseline), f"{model} keeps its figures and the baseline's"
        assert beats is not None and source == ("model" if beats else "baseline")
    clv = json.loads(runs["clv"][1])
    assert {"mae_spend", "spearman_spend", "total_predicted_purchases", "total_actual_purchases"} <= clv.keys()
    churn = json.loads(runs["churn"][1])
    assert {"auc", "top_decile_lift", "brier", "calibration", "drivers"} <= churn.keys()
    assert len(churn["calibration"]) == 10 and churn["drivers"][0]["auc_drop"] > 0


def test_beats_baseline_checks_warn_without_blocking(published):
    result, _ = published
    checks = {
        event.event_specific_data.asset_key.to_user_string(): event.event_specific_data
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
        and event.event_specific_data.check_name == "beats_baseline"
    }
    assert {"ml/clv_scores", "ml/churn_scores"} <= set(checks)
    assert all(check.severity == dg.AssetCheckSeverity.WARN for check in checks.values())


def test_scores_cover_every_buyer_and_reach_customer_360(published):
    _, connection = published
    buyers = connection.execute("select count(*) from marts.dim_customers where has_purchased").fetchall()[0][0]
    # the lifetime-value models see purchase occasions: days with a positive net value (not all refunded)
    purchasers = connection.execute(
        """select count(distinct customer_id) from (
            select customer_id from marts.fct_orders group by customer_id, order_date having sum(net_revenue) > 0)"""
    ).fetchall()[0][0]
    assert buyers - 10 < purchasers <= buyers
    expected = {"clv_scores": purchasers, "churn_scores": buyers, "behaviour_segments": buyers}
    for table, rows in expected.items():
        assert connection.execute(f"select count(*) from ml.{table}").fetchall()[0][0] == rows, table
    bad = connection.execute(
        """select count(*) from ml.clv_scores
        where p_alive not between 0 and 1 or clv < 0 or clv > expected_spend + 1e-6 or expected_spend_12m < 0"""
    ).fetchall()[0][0]
    assert bad == 0, "probabilities in [0, 1], discounted value below undiscounted spend"
    # revenue at risk is a dbt model over the two runs' scores: every churn score has one, the lifetime value's or 0
    risk = connection.sql(
        """select churn.churn_probability, coalesce(clv.clv, 0) as clv, risk.revenue_at_risk, churn.churn_reasons,
            churn.risk_band
        from ml.churn_scores as churn
        left join ml.clv_scores as clv using (customer_id, as_of)
        left join marts.customer_revenue_at_risk as risk using (customer_id, as_of)"""
    ).pl()
    assert risk.height == buyers and risk["churn_probability"].is_between(0, 1).all()
    assert ((risk["revenue_at_risk"] - risk["churn_probability"] * risk["clv"]).abs() < 1e-6).all()
    assert risk["churn_reasons"].list.len().max() > 0
    assert set(risk["risk_band"].unique()) <= {"high", "medium", "low"}
    scored = connection.execute(
        "select count(clv), count(churn_probability), count(behaviour_segment), count(tier_movement) "
        "from marts.customer_360 where lifetime_orders > 0"
    ).fetchall()[0]
    assert scored == (purchasers, buyers, buyers, buyers)
    profiles = connection.execute(
        "select count(*), sum(customers), min(length(description)) from ml.behaviour_segment_profiles"
    ).fetchall()[0]
    assert profiles[0] >= 2 and profiles[1] == buyers and profiles[2] > 20


def test_tier_movement_agrees_with_the_thresholds(published):
    _, connection = published
    settings = load_settings()
    moved = connection.sql("select * from ml.tier_movement").pl()
    floors = {"silver": settings.tier_silver_min_spend, "gold": settings.tier_gold_min_spend}
    downgrades = moved.filter(pl.col("movement") == "downgrade risk")
    for row in downgrades.iter_rows(named=True):
        assert row["loyalty_tier"] != "bronze" and row["expected_spend_12m"] < floors.get(row["loyalty_tier"], 1e18)
    upgrades = moved.filter(pl.col("movement") == "upgrade candidate")
    assert (
        upgrades["expected_spend_12m"] >= upgrades["trailing_12m_net_revenue"] + upgrades["spend_to_next_tier"]
    ).all()
    assert downgrades.height > 0


def test_a_model_that_cannot_be_fitted_publishes_the_baseline_and_warns(tmp_path):
    """Every customer bought twice, a day apart: BG/NBD has nothing to learn and every penalised fit fails."""
    path = tmp_path / "crm.duckdb"
    with open_warehouse(path, read_only=False) as connection:
        connection.execute(
            """create table marts.fct_orders as
            select 'C' || lpad(i::varchar, 4, '0') as customer_id,
                   date '2025-01-01' + (i % 200)::integer + day as order_date, 25.0 + i % 7 as net_revenue,
                   0.0 as refund_amount
            from range(300) as t(i), (values (0), (1)) as d(day)"""
        )
        connection.execute(  # no touchpoint but orders: sales is the only input
            """create table marts.fct_interactions (customer_id varchar, interaction_type varchar,
            occurred_date date)"""
        )
    settings = load_settings().replace(warehouse_path=path)
    clv = next(asset for asset in build_ml_assets(settings) if asset.key == dg.AssetKey(["ml", "clv_scores"]))
    warehouse = Warehouse(path=str(path), landing_dir=str(tmp_path), published_dir=str(tmp_path))
    result = dg.materialize([clv], resources={"warehouse": warehouse}, tags={AS_OF_TAG: AS_OF.isoformat()})
    assert result.success, "a failed fit never fails the night"
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    with open_warehouse(path) as connection:
        sources = connection.execute("select distinct score_source from ml.clv_scores").fetchall()
        run = connection.execute("select score_source, notes from ml.model_runs where model = 'clv'").fetchall()[0]
    assert sources == [("baseline",)]
    assert run[0] == "baseline" and "could not be fitted" in run[1]


def test_rfm_migration_follows_customers_between_runs(second_run_root):
    pointer = current_snapshot(second_run_root / "published")
    later = date.fromisoformat(pointer["as_of"])
    with duckdb.connect(pointer["path"], read_only=True) as connection:
        migration = connection.sql("select * from marts.rpt_segment_migration").pl()
        runs = {
            as_of: connection.sql(
                "select customer_id, segment from ml.rfm_scores where as_of = $as_of", params={"as_of": as_of}
            ).pl()
            for as_of in (AS_OF, later)
        }
    assert set(migration.select("previous_as_of", "as_of").iter_rows()) == {(AS_OF, later)}
    # the moves counted again from the two runs' scores
    pairs = (
        runs[AS_OF]
        .join(runs[later], on="customer_id", how="full", coalesce=True, suffix="_later")
        .select(pl.col("segment", "segment_later").fill_null("(not scored)"))
        .group_by("segment", "segment_later")
        .len()
    )
    expected = {(before, after): count for before, after, count in pairs.iter_rows()}
    shown = migration.select("from_segment", "to_segment", "customers").iter_rows()
    assert {(before, after): count for before, after, count in shown} == expected
    assert migration.filter(pl.col("from_segment") != pl.col("to_segment"))["customers"].sum() > 0
    assert set(migration["from_segment"]) - {"(not scored)"}, "customers came from the first run's segments"


def test_tables_that_are_functions_of_the_scores_are_dbt_models(published):
    _, connection = published
    ml_tables = {
        row[0]
        for row in connection.execute("select table_name from duckdb_tables() where schema_name = 'ml'").fetchall()
    }
    assert {"rfm_scores", "churn_scores", "clv_scores"} <= ml_tables
    assert not {"rfm_segments", "rfm_migration"} & ml_tables
    churn_columns = {
        row[0] for row in connection.execute("select column_name from (describe ml.churn_scores)").fetchall()
    }
    assert "revenue_at_risk" not in churn_columns
    # the RFM segment summary that ml.rfm_segments held: size and value of each segment, from the scores
    summary = connection.execute(
        """select segment, customers, monetary, monetary_share from marts.rpt_segment_profiles
        where segmentation = 'rfm'"""
    ).fetchall()
    expected = connection.execute(
        "select segment, count(*), sum(monetary) from ml.rfm_scores where as_of = ? group by segment", [AS_OF]
    ).fetchall()
    # decimal sums on both sides: exact
    assert {segment: (customers, monetary) for segment, customers, monetary, _ in summary} == {
        segment: (customers, monetary) for segment, customers, monetary in expected
    }
    assert sum(share for *_, share in summary) == pytest.approx(1)


@pytest.mark.slow  # a second churn run on the session's world: about 10 s
def test_churn_reads_engagement_and_the_run_is_reproduced_from_the_snapshot(published):
    """`crm evaluate` re-runs churn from the snapshot without engagement: the same loader and run function with
    every feature reproduce what the night published, so the two figures compare like with like."""
    _, connection = published
    settings = load_settings()
    ((parameters, metrics),) = connection.execute(
        "select parameters, metrics from ml.model_runs where model = 'churn'"
    ).fetchall()
    parameters, metrics = json.loads(parameters), json.loads(metrics)
    assert set(ENGAGEMENT_FEATURES) <= {*parameters["features"], *parameters["dropped_features"]}
    output = run_churn(
        churn_inputs(connection, AS_OF, settings.churn_window_days),
        window_days=settings.churn_window_days,
        feature_label=feature_label,
    )
    assert output.parameters["features"] == parameters["features"]
    assert output.verdict.metrics["auc"] == pytest.approx(metrics["auc"], abs=1e-12)
    published_scores = connection.sql(
        "select customer_id, churn_probability from ml.churn_scores order by customer_id"
    ).pl()
    rerun = output.tables["churn_scores"].select("customer_id", "churn_probability").sort("customer_id")
    assert rerun.equals(published_scores)


def test_the_models_score_with_their_stored_fits_until_the_refit_is_due(pipeline_run, published, tmp_path):
    """With model_refit_days 7, the nights after the fitting one score with its fit (churn, behaviour segments),
    publish its rules (basket rules) or rank by its holdout check (lifetime value, offers): its figures, a note, the
    fitting night's date on the run; the seventh night fits again; the fits never reach the snapshot."""
    world, _ = pipeline_run
    _, snapshot = published
    shutil.copytree(world.root / "warehouse", tmp_path / "warehouse")
    path = tmp_path / "warehouse" / "crm.duckdb"
    settings = load_settings().replace(warehouse_path=path, model_refit_days=7)
    names = ("clv_scores", "churn_scores", "next_best_offers", "behaviour_segments", "basket_rules")
    keys = {dg.AssetKey(["ml", name]) for name in names}
    assets = [asset for asset in [*build_ml_assets(settings), *build_marketing_assets(settings)] if asset.key in keys]
    warehouse = Warehouse(path=str(path), landing_dir=str(tmp_path), published_dir=str(tmp_path))
    query = """select model, runs.fitted_as_of, metrics, notes, fits.fitted_as_of
        from ml.model_runs as runs inner join meta.model_fits as fits using (model) where as_of = ?"""

    def night(as_of: date) -> dict[str, tuple]:
        result = dg.materialize(assets, resources={"warehouse": warehouse}, tags={AS_OF_TAG: as_of.isoformat()})
        assert result.success
        with open_warehouse(path) as connection:
            return {model: rest for model, *rest in connection.execute(query, [as_of]).fetchall()}

    fitting_night = night(AS_OF)  # the re-run of the night that fitted fits again
    reusing_night = night(date(2026, 7, 3))
    refit_night = night(date(2026, 7, 7))
    models = {"clv", "churn", "next_best_offer", "behaviour_segments", "basket_rules"}
    assert set(fitting_night) == set(reusing_night) == set(refit_night) == models
    for model, (fitted_as_of, metrics, notes, stored_as_of) in reusing_night.items():
        assert fitting_night[model][0] == fitting_night[model][3] == AS_OF, model
        assert fitted_as_of == stored_as_of == AS_OF, f"{model} scored with the fit of the night of AS_OF"
        assert json.loads(metrics) == json.loads(fitting_night[model][1]), "the fit's own figures"
        assert "made on the night of 2026-06-30" in notes and "2026-07-07" in notes, model
        assert refit_night[model][0] == refit_night[model][3] == date(2026, 7, 7), model
        assert "made on the night of" not in (refit_night[model][2] or ""), model
    rules = "select * exclude (as_of, model_run_id) from ml.basket_rules where as_of = ? order by all"
    with open_warehouse(path) as connection:
        published_rules = [connection.execute(rules, [day]).fetchall() for day in (AS_OF, date(2026, 7, 3))]
    assert published_rules[0] and published_rules[1] == published_rules[0], "the counting night's rules again"
    tables = "select count(*) from duckdb_tables() where schema_name = 'meta' and table_name = 'model_fits'"
    assert snapshot.execute(tables).fetchone() == (0,), "a fit is the warehouse's bookkeeping, never published"
