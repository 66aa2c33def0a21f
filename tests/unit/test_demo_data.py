"""The synthetic retailer: determinism, the latent process against its parameters, and the file contract.

Statistical checks use tolerances from the sample size (a z-score or a KS p-value), not tuned constants. The
generated worlds are small (10,000 customers) and made once per module.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import polars as pl
import pytest
from scipy import stats

from pipelines.demo_data import EFFECTS, SALES_SHAPES, Params, generate
from pipelines.ingest.contracts import load_contracts
from pipelines.ingest.loader import load_table

AS_OF = dt.date(2025, 1, 1)
CUSTOMERS = 10_000
PARAMS = Params()
Z = 4.0  # |z| beyond 4 happens by chance about once in 16,000 checks
KS_ALPHA = 1e-3

ERP = "delim=';', decimal_separator=',', header=true, dateformat='%Y-%m-%d', timestampformat='%Y-%m-%d %H:%M:%S'"
CRM = "delim=',', quote='\"', header=true, all_varchar=true"
ASTERISK = "delim=',', quote='\"', header=false, timestampformat='%Y-%m-%d %H:%M:%S'"
TOOL = "delim=',', quote='\"', header=true, dateformat='%Y-%m-%d', timestampformat='%Y-%m-%dT%H:%M:%SZ'"


class World:
    """One generated world and readers that use exactly the dialects docs/demo_data.md states."""

    def __init__(self, root: Path, customers: int, seed: int, effects: frozenset[str]):
        self.landing = root / "landing"
        self.truth = root / "truth"
        self.summary = generate(customers, seed, AS_OF, self.landing, effects=effects)
        self.con = duckdb.connect()
        self._cache: dict[str, pl.DataFrame] = {}

    def csv(self, name: str, options: str) -> pl.DataFrame:
        if name not in self._cache:
            path = self.landing / name
            self._cache[name] = self.con.sql(f"select * from read_csv('{path}', {options})").pl()
        return self._cache[name]

    def erp(self, name: str) -> pl.DataFrame:
        return self.csv(f"erp/{name}.csv", ERP)

    def crm(self, name: str) -> pl.DataFrame:
        return self.csv(f"crm/{name}.csv", CRM)

    def tool(self, name: str) -> pl.DataFrame:
        return self.csv(name, TOOL)

    def calls(self) -> pl.DataFrame:
        return self.csv("callcenter/Master.csv", ASTERISK + ", all_varchar=true")

    def people(self) -> pl.DataFrame:
        return pl.read_parquet(self.truth / "people.parquet")

    def identity(self) -> pl.DataFrame:
        return pl.read_parquet(self.truth / "identity.parquet")

    def buyers(self) -> pl.DataFrame:
        return self.people().filter(pl.col("erp_customer_no").is_not_null())

    def order_values_eur(self) -> pl.DataFrame:
        """Order totals from the lines, converted to EUR with the ERP's monthly rates."""
        totals = self.erp("order_lines").group_by("order_no").agg(pl.col("line_amount").sum().alias("amount"))
        return (
            self.erp("orders")
            .join(totals, on="order_no")
            .with_columns(pl.col("ordered_at").dt.truncate("1mo").dt.date().alias("rate_month"))
            .join(self.erp("exchange_rates"), on=["currency_code", "rate_month"], how="left")
            .with_columns((pl.col("amount") * pl.col("eur_per_unit")).alias("value_eur"))
        )

    def contact_customer(self) -> pl.DataFrame:
        """contact_id -> customer_no of the same true person (from the identity truth)."""
        identity = self.identity()
        contacts = identity.filter(pl.col("source_table") == "contacts").select(
            pl.col("source_record_id").alias("contact_id"), "person_id"
        )
        customers = identity.filter(pl.col("source_table") == "customers").select(
            pl.col("source_record_id").alias("customer_no"), "person_id"
        )
        return contacts.join(customers, on="person_id", how="left")


@pytest.fixture(scope="module")
def pure(tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("pure"), CUSTOMERS, 11, frozenset())


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("full"), CUSTOMERS, 11, EFFECTS)


@pytest.fixture(scope="module")
def campaigns_only(tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("campaigns"), CUSTOMERS, 12, frozenset({"campaigns"}))


def file_hashes(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def z_mean(differences: np.ndarray) -> float:
    """z-score of the mean of independent differences against 0, with their sample standard deviation."""
    return float(differences.mean() / (differences.std(ddof=1) / np.sqrt(len(differences))))


# --- determinism -------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate(1_500, seed, AS_OF, tmp_path / name / "landing")
    a, b, c = (file_hashes(tmp_path / name) for name in "abc")
    assert len(a) > 60  # landing csv files, one parquet per month of web events, the truth
    assert a == b
    differing = {key for key in a if a[key] != c.get(key)}
    assert {"landing/erp/orders.csv", "landing/crm/contacts.csv", "truth/people.parquet"} <= differing


def test_summary_counts_rows_of_every_file(full):
    summary = full.summary
    for key, rows in summary.rows.items():
        path = summary.path(key)
        assert path.exists(), key
        if key.endswith(".parquet"):
            assert pl.read_parquet(path).height == rows, key
    assert summary.rows["erp/customers.csv"] == CUSTOMERS
    assert summary.rows["erp/order_lines.csv"] == full.erp("order_lines").height


def test_unknown_effect_is_refused(tmp_path):
    with pytest.raises(ValueError, match="loyalty"):
        generate(100, 1, AS_OF, tmp_path / "landing", effects=frozenset({"loyalty"}))


# --- the latent process against its parameters (all effects off) ----------------------------------------------


def test_latent_parameters_follow_their_distributions(pure):
    buyers = pure.buyers()
    assert buyers.height == CUSTOMERS
    gamma_lambda = stats.gamma(PARAMS.r, scale=1 / PARAMS.alpha)
    assert stats.kstest(buyers["lambda_per_day"], gamma_lambda.cdf).pvalue > KS_ALPHA
    assert stats.kstest(buyers["p_dropout"], stats.beta(PARAMS.a, PARAMS.b).cdf).pvalue > KS_ALPHA
    assert stats.kstest(buyers["spend_nu"], stats.gamma(PARAMS.q, scale=1 / PARAMS.gamma).cdf).pvalue > KS_ALPHA
    lam = buyers["lambda_per_day"].to_numpy()
    assert abs(lam.mean() - PARAMS.r / PARAMS.alpha) < Z * gamma_lambda.std() / np.sqrt(len(lam))


def _repeat_purchases(world: World) -> pl.DataFrame:
    cutoff = dt.datetime.combine(AS_OF, dt.time())
    counts = (
        world.erp("orders")
        .group_by("customer_no")
        .agg((pl.len() - 1).alias("repeats"), pl.col("ordered_at").min().alias("first"), pl.col("ordered_at").max())
    )
    return (
        world.buyers()
        .join(counts, left_on="erp_customer_no", right_on="customer_no")
        .with_columns(((pl.lit(cutoff) - pl.col("first")).dt.total_seconds() / 86_400).alias("T"))
    )


def test_repeat_purchases_and_survival_match_bgnbd(pure):
    frame = _repeat_purchases(pure)
    lam, p, T = (frame[c].to_numpy() for c in ("lambda_per_day", "p_dropout", "T"))
    # Fader, Hardie & Lee (2005): given lambda and p, E[X(T)] = (1 - exp(-lambda p T)) / p, P(alive) = exp(-lambda p T)
    expected = -np.expm1(-lam * p * T) / p
    assert abs(z_mean(frame["repeats"].to_numpy() - expected)) < Z
    alive_probability = np.exp(-lam * p * T)
    alive = frame["is_alive_at_cutoff"].to_numpy()
    z = (alive.sum() - alive_probability.sum()) / np.sqrt((alive_probability * (1 - alive_probability)).sum())
    assert abs(z) < Z


def test_pure_dropout_happens_only_right_after_a_repeat_purchase(pure):
    frame = _repeat_purchases(pure).filter(pl.col("dropout_on") < AS_OF)
    assert frame.height > 1_000
    assert (frame["dropout_on"] == frame["ordered_at"].dt.date()).all()
    assert (frame["repeats"] >= 1).all()


def test_order_values_follow_gamma_gamma(pure):
    orders = pure.order_values_eur().join(
        pure.buyers().select("erp_customer_no", "spend_nu"), left_on="customer_no", right_on="erp_customer_no"
    )
    assert orders["value_eur"].null_count() == 0
    # z ~ Gamma(p_spend, rate nu)  =>  z * nu ~ Gamma(p_spend, 1) (Colombo & Jiang 1999)
    scaled = (orders["value_eur"] * orders["spend_nu"]).to_numpy()
    assert stats.kstest(scaled, stats.gamma(PARAMS.p_spend).cdf).pvalue > KS_ALPHA
    ratio = scaled / PARAMS.p_spend  # mean 1, variance 1 / p_spend
    assert abs(ratio.mean() - 1) < Z / np.sqrt(PARAMS.p_spend * len(ratio))


def test_oracle_predicts_the_future_window(pure):
    buyers = pure.buyers()
    difference = (buyers["actual_purchases_6m"] - buyers["expected_purchases_6m"]).to_numpy()
    assert abs(z_mean(difference)) < Z
    spend = (buyers["actual_spend_6m"] - buyers["expected_spend_6m"]).to_numpy()
    assert abs(z_mean(spend)) < Z
    assert (buyers.filter(~pl.col("is_alive_at_cutoff"))["expected_purchases_6m"] == 0).all()


def test_truth_parameters_are_recorded(pure):
    document = json.loads((pure.truth / "params.json").read_text(encoding="utf-8"))
    assert document["effects"] == []
    assert document["seed"] == 11 and document["customers"] == CUSTOMERS and document["as_of"] == "2025-01-01"
    assert document["params"]["r"] == PARAMS.r and document["params"]["p_spend"] == PARAMS.p_spend


# --- exports reconcile with the truth ------------------------------------------------------------------------


def test_orders_and_lines_reconcile_with_truth(full):
    orders, lines = full.erp("orders"), full.erp("order_lines")
    customers = full.erp("customers")
    assert customers["customer_no"].is_unique().all()
    assert orders["order_no"].is_unique().all()
    assert orders["customer_no"].is_in(customers["customer_no"].implode()).all()
    assert lines["order_no"].is_in(orders["order_no"].implode()).all()
    assert orders["order_no"].is_in(lines["order_no"].implode()).all()
    cents = (lines["quantity"] * (lines["unit_price"] * 100).round(0) - (lines["line_amount"] * 100).round(0)).abs()
    assert cents.max() == 0
    assert (lines["line_amount"] > 0).all()
    numbering = lines.group_by("order_no").agg(pl.col("line_no").sort().alias("n"), pl.len().alias("count"))
    assert numbering.select(pl.col("n").list.last() == pl.col("count")).to_series().all()
    assert lines.height / customers.height == pytest.approx(10, rel=0.2)
    per_person = orders.group_by("customer_no").agg(pl.len().alias("orders"), pl.col("ordered_at").min())
    joined = full.buyers().join(per_person, left_on="erp_customer_no", right_on="customer_no", how="left")
    assert (joined["orders"] == joined["purchases_before_cutoff"]).all()
    assert (joined["ordered_at"].dt.date() == joined["acquired_on"]).all()


def test_returns_refer_to_lines_and_never_exceed_them(full):
    returns = full.erp("returns").join(full.erp("order_lines"), on=["order_no", "line_no"], how="left")
    assert returns["sku_right"].null_count() == 0 and (returns["sku"] == returns["sku_right"]).all()
    assert (returns["quantity"] <= returns["quantity_right"]).all()
    assert returns.select(pl.struct("order_no", "line_no").is_unique().all()).item()
    assert (returns["returned_on"] < AS_OF).all()


def test_future_orders_stay_out_of_the_landing_files(full):
    orders = full.erp("orders")
    future = pl.read_parquet(full.truth / "future_orders.parquet")
    assert future.height > 0
    assert (orders["ordered_at"] < dt.datetime.combine(AS_OF, dt.time())).all()
    assert (future["ordered_at"] >= dt.datetime.combine(AS_OF, dt.time())).all()
    assert not future["order_no"].is_in(orders["order_no"].implode()).any()
    per_person = future.group_by("person_id").agg(pl.len().alias("n"), pl.col("order_value_eur").sum())
    joined = full.people().join(per_person, on="person_id", how="left").fill_null(0)
    assert (joined["n"] == joined["actual_purchases_6m"]).all()
    assert (joined["order_value_eur"] - joined["actual_spend_6m"]).abs().max() < 0.01 * 50


def test_identity_truth_covers_every_record_of_a_known_person(full):
    identity = full.identity()
    assert identity.select(pl.struct("source_table", "source_record_id").is_unique().all()).item()
    assert identity["person_id"].is_in(full.people()["person_id"].implode()).all()

    def ids(table: str) -> set[str]:
        return set(identity.filter(pl.col("source_table") == table)["source_record_id"])

    assert ids("customers") == set(full.erp("customers")["customer_no"])
    assert ids("contacts") == set(full.crm("contacts")["ID"])
    sessions = full.tool("web/sessions.csv")
    logged_in = set(sessions.filter(pl.col("customer_no").is_not_null())["session_id"])
    assert logged_in <= ids("sessions") < set(sessions["session_id"])  # anonymous visitors exist
    assert ids("Master") < set(full.calls()["column16"])  # callers nobody knows exist
    # a CRM contact carrying an ERP number is the same person as that ERP customer
    linked = full.crm("contacts").filter(pl.col("ERP Customer No").is_not_null())
    check = linked.join(full.contact_customer(), left_on="ID", right_on="contact_id")
    assert check.height == linked.height and (check["ERP Customer No"] == check["customer_no"]).all()


# --- marketing: random controls, consent -------------------------------------------------------------------


def _members_with_history(world: World) -> pl.DataFrame:
    members = world.tool("marketing/campaign_members.csv").join(world.tool("marketing/campaigns.csv"), on="campaign_id")
    members = members.join(world.contact_customer(), on="contact_id", how="left")
    orders = world.erp("orders").select("customer_no", pl.col("ordered_at").dt.date().alias("day"))
    joined = members.join(orders, on="customer_no", how="left")
    before = (pl.col("day") < pl.col("starts_on")) & (pl.col("day") >= pl.col("starts_on") - pl.duration(days=365))
    during = (pl.col("day") >= pl.col("starts_on")) & (pl.col("day") <= pl.col("ends_on"))
    return joined.group_by("campaign_id", "contact_id", "member_group", "control_share").agg(
        before.sum().alias("orders_before"), during.sum().alias("orders_during")
    )


def _stratified_z(members: pl.DataFrame, column: str) -> tuple[float, list[float]]:
    """Target minus control mean of ``column`` per campaign, combined with inverse-variance weights."""
    weights, weighted, per_campaign = 0.0, 0.0, []
    for (_,), group in members.group_by(["campaign_id"], maintain_order=True):
        target = group.filter(pl.col("member_group") == "target")[column].to_numpy().astype(float)
        control = group.filter(pl.col("member_group") == "control")[column].to_numpy().astype(float)
        if len(control) < 30 or len(target) < 30:
            continue
        variance = target.var(ddof=1) / len(target) + control.var(ddof=1) / len(control)
        if variance == 0:
            continue
        difference = target.mean() - control.mean()
        per_campaign.append(difference / np.sqrt(variance))
        weights += 1 / variance
        weighted += difference / variance
    return weighted / np.sqrt(weights), per_campaign


def test_control_groups_are_random_and_sized_as_planned(full):
    members = _members_with_history(full)
    campaigns = full.tool("marketing/campaigns.csv")
    assert campaigns.height >= 12
    assert set(campaigns["channel"]) == {"email", "sms", "phone"}
    shares = members.group_by("campaign_id", "control_share").agg(
        (pl.col("member_group") == "control").mean().alias("share"), pl.len().alias("n")
    )
    for row in shares.iter_rows(named=True):
        sd = np.sqrt(row["control_share"] * (1 - row["control_share"]) / row["n"])
        assert abs(row["share"] - row["control_share"]) < Z * sd, row
    overall, per_campaign = _stratified_z(members, "orders_before")
    assert abs(overall) < Z
    assert max(abs(z) for z in per_campaign) < Z + 0.5  # sixteen looks: allow for the multiplicity


def test_control_members_receive_nothing(full):
    members = full.tool("marketing/campaign_members.csv")
    campaigns = full.tool("marketing/campaigns.csv").select("campaign_id", "objective")
    sends = full.tool("marketing/sends.csv").join(campaigns, on="campaign_id")
    joined = sends.filter(pl.col("objective") != "newsletter").join(
        members, on=["campaign_id", "contact_id"], how="left"
    )
    assert joined.height > 1_000
    assert joined["member_group"].null_count() == 0
    assert (joined["member_group"] == "target").all()
    responses = full.tool("marketing/responses.csv")
    assert responses["send_id"].is_in(sends["send_id"].implode()).all()
    assert set(responses["response_type"]) == {"open", "click", "conversion", "unsubscribe"}


def test_treated_customers_buy_more_than_their_control_twins_only_with_the_effect(full, campaigns_only, pure):
    # two worlds with the effect on (32 campaigns): over 24 seeds one world's z was 4.1 give or take 1.3 (below 3
    # in 4 of them), too weak a check of a real effect; two worlds give about 5.8
    with_effect = pl.concat(
        _members_with_history(world).with_columns((pl.lit(name) + pl.col("campaign_id")).alias("campaign_id"))
        for name, world in (("full", full), ("campaigns", campaigns_only))
    )
    z_on, _ = _stratified_z(with_effect, "orders_during")
    z_off, _ = _stratified_z(_members_with_history(pure), "orders_during")
    assert z_on > 3  # one-sided: the effect must show, at p < 0.0015
    assert abs(z_off) < Z


def test_sends_respect_consent(full):
    sends = full.tool("marketing/sends.csv")
    consents = full.tool("marketing/consents.csv")
    assert consents.height == 3 * full.crm("contacts").height
    joined = sends.join(consents, on=["contact_id", "channel"], how="left")
    assert joined["status"].null_count() == 0
    allowed = (pl.col("status") == "opt_in") | (pl.col("updated_at") > pl.col("sent_at"))
    assert joined.select(allowed.all()).item()
    assert (consents["status"] == "opt_out").any()


# --- engagement: browsing, newsletters, channel responsiveness ------------------------------------------------

TIMEZONE = "Europe/Madrid"


def _to_utc(column: str) -> pl.Expr:
    """A local (ERP) wall-clock column as naive UTC, like the web and marketing exports."""
    return pl.col(column).dt.replace_time_zone(TIMEZONE, ambiguous="earliest").dt.convert_time_zone("UTC")


def _utc_cutoff() -> dt.datetime:
    return dt.datetime.combine(AS_OF, dt.time(), ZoneInfo(TIMEZONE)).astimezone(dt.UTC).replace(tzinfo=None)


def _fade_days(world: World) -> float:
    return json.loads((world.truth / "params.json").read_text(encoding="utf-8"))["params"]["engagement_fade_days"]


def _person_of(world: World, table: str, key: str) -> pl.DataFrame:
    identity = world.identity().filter(pl.col("source_table") == table)
    return identity.select(pl.col("source_record_id").alias(key), "person_id")


def _dropouts(world: World) -> pl.DataFrame:
    """Buyers of a pure world who dropped out before the cutoff, with the instant: their last order (UTC)."""
    last = world.erp("orders").group_by("customer_no").agg(pl.col("ordered_at").max().alias("last_order"))
    return (
        world.buyers()
        .filter(pl.col("dropout_on") < AS_OF)
        .join(last, left_on="erp_customer_no", right_on="customer_no")
        .with_columns(_to_utc("last_order").dt.replace_time_zone(None).alias("dropout_at"))
    )


def test_browsing_is_higher_while_alive_and_fades_after_dropout(pure):
    tau = _fade_days(pure)
    sessions = (
        pure.tool("web/sessions.csv")
        .filter(~pl.col("utm_source").is_in(["newsletter", "sms"]))  # clicks in emails come on their own
        .join(_person_of(pure, "sessions", "session_id"), on="session_id")
    )
    dead = _dropouts(pure)
    assert dead.height > 1_000
    # after dropout only faded browsing opens a session: from the next UTC day (sessions keep their UTC day) to the
    # cutoff's UTC day, a Poisson count of mean b tau (exp(-a / tau) - exp(-c / tau)), a and c in days since dropout
    day = dt.timedelta(days=1)
    window = dead.with_columns(
        (pl.col("dropout_at").dt.truncate("1d") + day).alias("from"),
        pl.lit(_utc_cutoff()).dt.truncate("1d").alias("to"),
    ).filter(pl.col("from") < pl.col("to"))
    days = {name: (pl.col(name) - pl.col("dropout_at")).dt.total_seconds() / 86_400 for name in ("from", "to")}
    window = window.with_columns(
        (pl.col("browse_sessions_per_day") * tau * ((-days["from"] / tau).exp() - (-days["to"] / tau).exp())).alias(
            "expected"
        )
    )
    after = sessions.join(window, on="person_id").filter(pl.col("started_at").is_between("from", "to", closed="left"))
    expected = window["expected"].sum()
    assert expected > 300
    assert abs(after.height - expected) / np.sqrt(expected) < Z
    # alive, a buyer browses far more than three fade times after dropping out
    per_person = sessions.join(dead, on="person_id").with_columns(
        ((pl.col("started_at") - pl.col("dropout_at")).dt.total_seconds() / 86_400).alias("since")
    )
    first = (
        pure.erp("orders")
        .group_by("customer_no")
        .agg(_to_utc("ordered_at").min().dt.replace_time_zone(None).alias("first_order"))
    )
    exposure = dead.join(first, left_on="erp_customer_no", right_on="customer_no").select(
        ((pl.col("dropout_at") - pl.col("first_order")).dt.total_seconds() / 86_400).sum().alias("alive"),
        ((pl.lit(_utc_cutoff()) - pl.col("dropout_at")).dt.total_seconds() / 86_400 - 3 * tau)
        .clip(0)
        .sum()
        .alias("long_after"),
    )
    alive_rate = per_person.filter(pl.col("since") < 0).height / exposure["alive"].item()
    long_after_rate = per_person.filter(pl.col("since") > 3 * tau).height / exposure["long_after"].item()
    assert long_after_rate * 10 < alive_rate


def test_newsletter_opens_follow_engagement_and_fade_after_dropout(pure):
    tau = _fade_days(pure)
    campaigns = pure.tool("marketing/campaigns.csv").filter(pl.col("objective") == "newsletter")
    opens = pure.tool("marketing/responses.csv").filter(pl.col("response_type") == "open")
    sends = (
        pure.tool("marketing/sends.csv")
        .join(campaigns.select("campaign_id"), on="campaign_id")
        .join(_person_of(pure, "contacts", "contact_id"), on="contact_id")
        .join(pure.people().select("person_id", "newsletter_open_probability"), on="person_id")
        .join(_dropouts(pure).select("person_id", "dropout_at"), on="person_id", how="left")
        .with_columns(
            ((pl.col("sent_at") - pl.col("dropout_at")).dt.total_seconds() / 86_400).fill_null(-1.0).alias("since"),
            pl.col("send_id").is_in(opens["send_id"].implode()).alias("opened"),
        )
    )
    # an alive recipient opens with probability q; f = exp(-days since dropout / tau) after it: 1 - (1 - q) ** f
    fade = (-pl.col("since").clip(0) / tau).exp()
    probability = sends.select(1 - (1 - pl.col("newsletter_open_probability")).pow(fade)).to_series().to_numpy()
    z = (sends["opened"].sum() - probability.sum()) / np.sqrt((probability * (1 - probability)).sum())
    assert abs(z) < Z
    alive = sends.filter(pl.col("since") < 0)["opened"].mean()
    long_after = sends.filter(pl.col("since") > 3 * tau)
    assert long_after.height > 1_000
    assert long_after["opened"].mean() * 5 < alive


def test_engagement_never_changes_a_purchase_without_effects():
    """Other engagement parameters, the same orders: browsing and newsletters only observe the purchase process."""
    from dataclasses import replace

    from pipelines.demo_data.world import build_world

    other = replace(
        PARAMS, browse_sessions_per_purchase=5.0, engagement_fade_days=3.0, newsletter_months=6,
        newsletter_unsubscribe_rate=0.2, channel_responsiveness_sigma=1.5, engagement_shape=0.5,
    )  # fmt: skip
    worlds = [build_world(3_000, 4, AS_OF, frozenset(), params) for params in (PARAMS, other)]
    assert len(worlds[0].newsletters.send_at) != len(worlds[1].newsletters.send_at)
    for name in ("person", "t", "value_eur"):
        assert np.array_equal(getattr(worlds[0].orders, name), getattr(worlds[1].orders, name)), name
    assert np.array_equal(worlds[0].death, worlds[1].death)


def test_window_shoppers_browse_often_and_never_buy(full):
    people = full.people()
    shoppers = people.filter(pl.col("is_window_shopper"))
    assert shoppers.height > 0.2 * people["erp_customer_no"].null_count()
    assert shoppers["erp_customer_no"].null_count() == shoppers.height  # no ERP account, so no order
    future = pl.read_parquet(full.truth / "future_orders.parquet")
    assert not shoppers["person_id"].is_in(future["person_id"].implode()).any()
    sessions = full.tool("web/sessions.csv").join(_person_of(full, "sessions", "session_id"), on="session_id")
    per_person = sessions.group_by("person_id").len()
    median = {
        group: people.filter(condition).join(per_person, on="person_id", how="left")["len"].fill_null(0).median()
        for group, condition in (
            ("shoppers", pl.col("is_window_shopper")),
            ("buyers", pl.col("erp_customer_no").is_not_null()),
        )
    }
    assert median["shoppers"] > 2 * median["buyers"]
    events = full.con.sql(f"select * from read_parquet('{full.landing / 'web/events'}/*.parquet')").pl()
    their_events = events.join(
        sessions.join(shoppers.select("person_id"), on="person_id").select("session_id"), on="session_id"
    )
    assert (their_events["event_type"] == "add_to_cart").any()  # they fill a cart now and then
    assert not (their_events["event_type"] == "checkout").any()


def test_newsletters_go_monthly_to_every_consented_contact_and_nobody_else(full):
    campaigns = full.tool("marketing/campaigns.csv")
    newsletters = campaigns.filter(pl.col("objective") == "newsletter").sort("starts_on")
    assert newsletters.height == PARAMS.newsletter_months
    assert newsletters["starts_on"].dt.strftime("%Y-%m").is_unique().all()
    assert (newsletters["channel"] == "email").all() and (newsletters["control_share"] == 0).all()
    assert (newsletters["starts_on"] == newsletters["ends_on"]).all() and (newsletters["starts_on"] < AS_OF).all()
    members = full.tool("marketing/campaign_members.csv")
    assert not members["campaign_id"].is_in(newsletters["campaign_id"].implode()).any()  # no control group
    sends = full.tool("marketing/sends.csv").join(newsletters.select("campaign_id", "starts_on"), on="campaign_id")
    assert (sends["channel"] == "email").all() and sends["contact_id"].n_unique() > 0.4 * CUSTOMERS
    # the last newsletter reached exactly the contacts with a usable address and email consent when it went out:
    # opt_in at the cutoff, or withdrawn since (an opt_out updated after that day). Contacts created in the two days
    # before it, or who withdrew on its day, are left out of the comparison (the CRM's times are to the minute).
    contacts = full.crm("contacts").with_columns(
        pl.col("Email Address").str.strip_chars().str.to_lowercase().alias("address"),
        pl.col("Date Created").str.strptime(pl.Datetime, "%m/%d/%Y %I:%M %p").alias("created"),
    )
    consents = full.tool("marketing/consents.csv").filter(pl.col("channel") == "email")
    last = newsletters.row(-1, named=True)
    day = dt.datetime.combine(last["starts_on"], dt.time())
    unclear = set(contacts.filter(pl.col("created") >= day - dt.timedelta(days=2))["ID"]) | set(
        consents.filter(pl.col("updated_at").is_between(day - dt.timedelta(days=1), day + dt.timedelta(days=1)))[
            "contact_id"
        ]
    )
    usable = pl.col("address").str.contains("@") & (pl.col("address") != "noemail@example.com")
    consented_then = (pl.col("status") == "opt_in") | (pl.col("updated_at") > day)
    consented = contacts.filter(usable).join(consents.filter(consented_then), left_on="ID", right_on="contact_id")
    received = sends.filter(pl.col("campaign_id") == last["campaign_id"])
    assert received.height > 1_000
    assert set(received["contact_id"]) - unclear == set(consented["ID"]) - unclear
    addressed = received.join(contacts, left_on="contact_id", right_on="ID")
    assert addressed.height == received.height and (addressed["address"] == addressed["address_right"]).all()
    # the marketing tool's files, newsletters included, load through the built-in contracts untouched
    connection = duckdb.connect()
    for contract in load_contracts():
        if any(table.startswith("marketing__") for table in contract.tables):
            for load in load_table(connection, contract, full.landing, "test"):
                assert load.status == "loaded", load.message
                assert (load.rows_quarantined, load.rows_filtered) == (0, 0), load.file


def test_customers_respond_most_on_their_most_responsive_channel(full):
    truth = pl.read_parquet(full.truth / "channel_responsiveness.parquet")
    assert truth.height == full.people().height and truth["best_channel"].n_unique() == 3
    propensity = truth.select(pl.col("email_propensity", "sms_propensity", "phone_propensity")).to_numpy()
    assert (truth["best_channel"].to_numpy() == np.asarray(["email", "sms", "phone"])[propensity.argmax(1)]).all()
    assert abs(z_mean(propensity.reshape(-1) - 1)) < Z  # each a multiplier of mean 1
    # campaign emails (texts are too few in a world this size: about 20 clicks) are opened more by the customers
    # whose most responsive channel is email
    campaigns = full.tool("marketing/campaigns.csv").filter(pl.col("objective") != "newsletter")
    opened = full.tool("marketing/responses.csv").filter(pl.col("response_type") == "open")["send_id"].implode()
    sends = (
        full.tool("marketing/sends.csv")
        .filter(pl.col("channel") == "email")
        .join(campaigns.select("campaign_id"), on="campaign_id")
        .join(_person_of(full, "contacts", "contact_id"), on="contact_id")
        .join(truth, on="person_id")
        .with_columns(pl.col("send_id").is_in(opened).alias("opened"))
    )
    best = sends.filter(pl.col("best_channel") == "email")["opened"].to_numpy().astype(float)
    rest = sends.filter(pl.col("best_channel") != "email")["opened"].to_numpy().astype(float)
    assert min(len(best), len(rest)) > 500
    z = (best.mean() - rest.mean()) / np.sqrt(best.var(ddof=1) / len(best) + rest.var(ddof=1) / len(rest))
    assert z > 3  # one-sided: the best channel responds more


def test_campaign_responses_follow_channel_responsiveness_and_fade():
    """Opens and clicks of many sends to people of known responsiveness, half of them 60 days after dropout."""
    from pipelines.demo_data.campaigns import CampaignRun
    from pipelines.demo_data.engagement import Engagement, campaign_responses
    from pipelines.demo_data.simulate import NEVER, Events

    rng = np.random.default_rng(5)
    n, tau = 20_000, PARAMS.engagement_fade_days
    responsiveness = rng.lognormal(-0.18, 0.6, (n, 3))
    engagement = Engagement(np.ones(n), np.ones(n), np.zeros(n), np.zeros(n, bool), responsiveness)
    sent_at = 1_700_000_000
    death = np.where(np.arange(n) % 2 == 0, sent_at - 60 * 86_400, NEVER)
    table = pl.DataFrame({"channel": ["email", "sms"], "open_rate": [0.3, 0.0], "click_rate": [0.2, 0.06]})
    none = np.zeros(0, np.int64)
    empty = Events(*(none,) * 10)
    person = np.tile(np.arange(n), 2)
    never = np.full(2 * n, NEVER)
    run = CampaignRun(
        table, none, none, none, none.astype(bool), none, np.repeat([0, 1], n), person, person,
        np.full(2 * n, sent_at), never, never, never, empty,
    )  # fmt: skip
    campaign_responses(rng, run, engagement, death, PARAMS)
    left = np.where(death < NEVER, np.exp(-60 / tau), 1.0)
    email, sms = responsiveness[:, 0], responsiveness[:, 1]
    # P(open) = 1 - (1 - 0.3) ** (s f); P(click | open) = 1 - (1 - 0.2) ** s; P(text click) = 1 - (1 - 0.06) ** (s f)
    p_open = 1 - 0.7 ** (email * left)
    p_click = p_open * (1 - 0.8**email)
    p_text = 1 - 0.94 ** (sms * left)
    for observed, probability in (
        (run.open_at[:n] < NEVER, p_open),
        (run.click_at[:n] < NEVER, p_click),
        (run.click_at[n:] < NEVER, p_text),
    ):
        z = (observed.sum() - probability.sum()) / np.sqrt((probability * (1 - probability)).sum())
        assert abs(z) < Z
    most = email > np.quantile(email, 2 / 3)
    least = email < np.quantile(email, 1 / 3)
    assert (run.open_at[:n][most] < NEVER).mean() > 1.5 * (run.open_at[:n][least] < NEVER).mean()
    assert ((run.open_at[:n] < NEVER) & (run.open_at[:n] < run.send_at[:n])).sum() == 0


# --- campaign uplift truth --------------------------------------------------------------------------------------

UPLIFT_TRUTH = ("true_conversion_lift", "true_orders_lift_per_member", "true_incremental_revenue_per_member")


def test_uplift_truth_is_zero_without_the_campaign_effect(pure):
    uplift = pl.read_parquet(pure.truth / "campaign_uplift.parquet")
    assert uplift.height == PARAMS.campaigns
    for column in UPLIFT_TRUTH:
        assert (uplift[column] == 0).all(), column
    assert json.loads((pure.truth / "params.json").read_text(encoding="utf-8"))["campaign_attribution_days"] == 14


def test_uplift_truth_counts_orders_in_the_warehouse_window(full):
    """The targets' conversion in the truth, recomputed from the exports with fct_campaign_contacts' window."""
    uplift = pl.read_parquet(full.truth / "campaign_uplift.parquet")
    campaigns = full.tool("marketing/campaigns.csv").select("campaign_id", "ends_on")
    members = (
        full.tool("marketing/campaign_members.csv")
        .filter(pl.col("member_group") == "target")
        .join(campaigns, on="campaign_id")
        .join(full.contact_customer(), on="contact_id")
        .with_columns(
            pl.col("assigned_at").dt.replace_time_zone("UTC").dt.convert_time_zone(TIMEZONE).dt.date().alias("first"),
            pl.min_horizontal(pl.col("ends_on") + dt.timedelta(days=14), pl.lit(AS_OF - dt.timedelta(1))).alias("last"),
        )
    )
    orders = full.erp("orders").select("customer_no", pl.col("ordered_at").dt.date().alias("day"))
    bought = (
        members.join(orders, on="customer_no", how="left")
        .group_by("campaign_id", "contact_id")
        .agg(pl.col("day").is_between(pl.col("first"), pl.col("last")).any().alias("bought"))
        .group_by("campaign_id")
        .agg(pl.col("bought").mean().alias("recomputed"), pl.len().alias("n"))
    )
    joined = uplift.join(bought, on="campaign_id")
    assert joined.height == PARAMS.campaigns and (joined["n"] == joined["targets"]).all()
    assert (joined["recomputed"] - joined["target_conversion_rate"]).abs().max() < 1e-12
    assert (uplift["true_conversion_lift"] > 0).sum() >= PARAMS.campaigns // 2


def test_uplift_truth_is_bounded_by_the_extra_purchases_that_happened():
    """Without tiers and support, an extra purchase can only end a customer's life earlier, so a campaign's
    true order lift is its realised extra orders less the base orders its extras prevented."""
    from pipelines.demo_data.campaigns import member_windows
    from pipelines.demo_data.marketing import campaign_uplift
    from pipelines.demo_data.world import build_world

    world = build_world(CUSTOMERS, 12, AS_OF, frozenset({"campaigns"}), PARAMS)
    uplift = campaign_uplift(world)
    orders, run = world.orders, world.campaigns
    start, end = member_windows(run, world.params, world.clock)
    target = ~run.member_control
    history = slice(0, orders.n_history)
    send = orders.send[history]
    induced = np.flatnonzero(send >= 0)
    member_of = {(c, p): i for i, (c, p) in enumerate(zip(run.member_campaign, run.member_person, strict=True))}
    extras = np.zeros(PARAMS.campaigns)
    buyers_with_extra = [set() for _ in range(PARAMS.campaigns)]
    for i in induced:
        campaign = run.send_campaign[send[i]]
        member = member_of[(campaign, orders.person[i])]
        assert target[member] and start[member] <= orders.t[i] < end[member]  # extras fall inside the window
        extras[campaign] += 1
        buyers_with_extra[campaign].add(orders.person[i])
    targets = uplift["targets"].to_numpy()
    lift = uplift["true_orders_lift_per_member"].to_numpy() * targets
    assert np.all(lift <= extras + 1e-9)
    assert lift.sum() > 0.8 * extras.sum() > 100  # each extra ends a life with probability p, rarely in the window
    conversions = uplift["true_conversion_lift"].to_numpy() * targets
    assert np.all(conversions <= np.asarray([len(b) for b in buyers_with_extra]) + 1e-9)


def test_sample_effects_against_a_hand_worked_example():
    """Two targets; buyer 0's extra purchase ends their life before a base purchase in the window, buyer 1's
    extra purchase is simply one more order."""
    from pipelines.demo_data.campaigns import CampaignRun, sample_effects
    from pipelines.demo_data.params import Clock
    from pipelines.demo_data.simulate import NEVER, Buyers, Events

    clock = Clock.build(AS_OF, PARAMS)
    zone = ZoneInfo(TIMEZONE)
    campaign_start = dt.datetime(2024, 3, 4, tzinfo=zone)
    at = lambda days: int((campaign_start + dt.timedelta(days=days)).timestamp())  # noqa: E731
    t0 = np.array([at(-200), at(-100)])
    buyers = Buyers(t0, clock.days(t0), np.array([0.01, 0.02]), np.array([0.5, 0.5]), np.array([0.1, 0.1]))
    # buyer 0: first purchase, extra on day 3 (u_drop 0.1 < p: they drop out), base purchase on day 20
    # buyer 1: first purchase, extra on day 5 (u_drop 0.9: no dropout); and buyer 1's base purchase after the window
    person = np.array([0, 0, 0, 1, 1, 1])
    t = np.array([t0[0], at(3), at(20), t0[1], at(5), at(60)])
    value = np.array([50.0, 30.0, 70.0, 40.0, 25.0, 90.0])
    u_drop = np.array([1.0, 0.1, 0.9, 1.0, 0.9, 0.9])
    send = np.array([-1, 0, -1, -1, 1, -1])
    never = np.full(6, NEVER)
    events = Events(person, t, value, u_drop, t == t0[person], send, never, never, np.zeros(6), np.zeros(6, bool))
    table = pl.DataFrame({"ends_on": [dt.date(2024, 3, 17)]})  # window: assigned day to 31 March
    run = CampaignRun(
        table, np.array([0, 0]), np.array([0, 1]), np.array([0, 1]), np.array([False, False]),
        np.array([at(-1), at(-1)]), np.array([0, 0]), np.array([0, 1]), np.array([0, 1]), np.array([at(1), at(1)]),
        never[:2], never[:2], never[:2], events.take(np.flatnonzero(send >= 0)),
    )  # fmt: skip
    death = np.array([at(3), NEVER])
    effects = sample_effects(events, death, buyers, run, PARAMS, clock, frozenset({"campaigns"})).row(0, named=True)
    # buyer 0 bought once either way (the extra, or without it the base purchase): no conversion, no more orders,
    # EUR 30 - 70; buyer 1 bought only because of the campaign: one conversion, one order, EUR 25
    assert effects == pytest.approx(
        {
            "true_conversion_lift": (0 + 1) / 2,
            "true_orders_lift_per_member": (0 + 1) / 2,
            "true_incremental_revenue_per_member": (30 - 70 + 25) / 2,
        }
    )


# --- effects -----------------------------------------------------------------------------------------------


def test_categories_come_in_baskets_only_with_the_affinities_effect(full, pure):
    affinity = pl.read_parquet(full.truth / "category_affinity.parquet")
    assert affinity.height > 20 and affinity["lift"].median() > 1.5
    assert pl.read_parquet(pure.truth / "category_affinity.parquet").height == 0


def test_tier_at_cutoff_follows_trailing_twelve_month_spend(full):
    cutoff = dt.datetime.combine(AS_OF, dt.time())
    recent = full.order_values_eur().filter(pl.col("ordered_at") >= cutoff - dt.timedelta(days=365))
    spend = recent.group_by("customer_no").agg(pl.col("value_eur").sum())
    joined = full.buyers().join(spend, left_on="erp_customer_no", right_on="customer_no", how="left").fill_null(0.0)
    thresholds = np.asarray(PARAMS.tier_thresholds_eur)
    value = joined["value_eur"].to_numpy()
    tier = np.asarray(["bronze", "silver", "gold", "platinum"])[np.searchsorted(thresholds, value, side="right")]
    near = np.abs(value[:, None] - thresholds[None, :]).min(axis=1) < 0.5  # cents of rounding, a DST hour
    assert ((tier == joined["tier_at_cutoff"].to_numpy()) | near).all()
    assert set(tier) == {"bronze", "silver", "gold", "platinum"}


# --- the file contract ---------------------------------------------------------------------------------------


SPEC_HEADERS = {
    "erp/customers.csv": "customer_no;first_name;last_name;email;phone;street;postcode;city;country_code;created_on;"
    "currency_code",
    "erp/products.csv": "sku;product_name;department;category;subcategory;list_price;unit_cost;currency_code;"
    "launched_on",
    "erp/orders.csv": "order_no;customer_no;ordered_at;sales_channel;store_code;currency_code;order_status",
    "erp/order_lines.csv": "order_no;line_no;sku;quantity;unit_price;line_amount",
    "erp/returns.csv": "return_no;order_no;line_no;sku;returned_on;quantity;refund_amount;reason",
    "erp/exchange_rates.csv": "currency_code;rate_month;eur_per_unit",
    "crm/contacts.csv": '"ID","ERP Customer No","First Name","Last Name","Email Address","Mobile Phone","Office Phone",'
    '"Primary Address Postalcode","Primary Address City","Primary Address Country","Lead Source","Date Created",'
    '"Date Modified"',
    "crm/cases.csv": '"Case Number","ID","Contact ID","Subject","Category","Product SKU","Priority","Status",'
    '"Date Created","Date Closed","Satisfaction"',
    "marketing/campaigns.csv": "campaign_id,name,channel,objective,offer_category,starts_on,ends_on,control_share",
    "marketing/campaign_members.csv": "campaign_id,contact_id,email,phone,member_group,assigned_at",
    "marketing/sends.csv": "send_id,campaign_id,contact_id,channel,address,sent_at",
    "marketing/responses.csv": "response_id,send_id,response_type,responded_at",
    "marketing/consents.csv": "contact_id,channel,status,updated_at",
    "web/sessions.csv": "session_id,visitor_id,customer_no,started_at,ended_at,device,utm_source,landing_page",
}


def test_headers_encodings_and_line_endings_are_as_specified(full):
    for name, header in SPEC_HEADERS.items():
        raw = (full.landing / name).read_bytes()
        text = raw.decode("utf-8")  # strict: every file is UTF-8
        if name.startswith("crm/"):
            assert raw.startswith(b"\xef\xbb\xbf"), name
            assert text[1:].split("\r\n", 1)[0] == header, name
            assert raw.count(b"\n") == raw.count(b"\r\n"), name
        else:
            assert not raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw, name
            assert text.split("\n", 1)[0] == header, name
    master = (full.landing / "callcenter/Master.csv").read_bytes().decode("utf-8")
    assert not master.startswith('"accountcode"') and b"\r" not in master.encode()


def test_every_landing_file_parses_with_the_stated_dialect(full):
    types = {column: dtype for column, dtype in full.erp("orders").schema.items()}
    assert types["ordered_at"] == pl.Datetime("us")
    assert full.erp("order_lines").schema["line_amount"] == pl.Float64
    assert full.erp("customers").schema["created_on"] == pl.Date
    assert full.erp("products").schema["list_price"] == pl.Float64
    assert full.erp("returns").schema["refund_amount"] == pl.Float64
    assert full.erp("exchange_rates").filter(pl.col("currency_code") == "EUR")["eur_per_unit"].eq(1.0).all()
    crm_time = "%m/%d/%Y %I:%M %p"
    for name, column in (("contacts", "Date Created"), ("cases", "Date Created"), ("cases", "Date Closed")):
        values = full.crm(name)[column].drop_nulls()
        parsed = values.str.strptime(pl.Datetime, "%m/%d/%Y %I:%M %P", strict=True)
        assert parsed.null_count() == 0 and values.str.contains(" (am|pm)$").all(), name
        assert full.con.sql(f"select strptime('{values[0]}', '{crm_time}')").fetchall()[0][0] is not None
    calls = full.con.sql(f"select * from read_csv('{full.landing / 'callcenter/Master.csv'}', {ASTERISK})").pl()
    assert calls.width == 18
    assert calls["column09"].dtype == pl.Datetime("us") and calls["column12"].dtype == pl.Int64
    assert set(calls["column08"]) == {"sales", "support", "returns"}
    assert set(calls["column14"]) == {"ANSWERED", "NO ANSWER", "BUSY", "FAILED"}
    assert calls.filter(pl.col("column14") != "ANSWERED")["column10"].null_count() > 0
    for name, column in (
        ("marketing/campaign_members.csv", "assigned_at"),
        ("marketing/sends.csv", "sent_at"),
        ("marketing/responses.csv", "responded_at"),
        ("marketing/consents.csv", "updated_at"),
        ("web/sessions.csv", "started_at"),
    ):
        assert full.tool(name).schema[column] == pl.Datetime("us"), name
    assert full.tool("marketing/campaigns.csv").schema["starts_on"] == pl.Date
    months = sorted((full.landing / "web/events").glob("events_*.parquet"))
    assert len(months) >= 47
    events = full.con.sql(f"select * from read_parquet('{full.landing / 'web/events'}/*.parquet')").pl()
    assert events.columns == ["event_id", "session_id", "event_at", "event_type", "sku"]
    assert events["event_id"].is_unique().all()
    assert set(events["event_type"]) == {"page_view", "product_view", "add_to_cart", "checkout"}
    assert events.filter(pl.col("event_type") == "page_view")["sku"].null_count() > 0
    assert events.filter(pl.col("event_type") == "add_to_cart")["sku"].null_count() == 0
    assert events["session_id"].is_in(full.tool("web/sessions.csv")["session_id"].implode()).all()
    first = pl.read_parquet(months[0])
    label = months[0].stem.removeprefix("events_")
    assert (first["event_at"].dt.strftime("%Y-%m") == label).all()


def test_data_is_messy_where_real_data_is_messy(full):
    contacts = full.crm("contacts")
    email = contacts["Email Address"].fill_null("")
    assert (email != email.str.to_lowercase()).any()
    assert (email != email.str.strip_chars()).any()
    assert email.is_in(["noemail@example.com", "n/a", ""]).any()
    mobile = contacts["Mobile Phone"].fill_null("")
    assert mobile.str.starts_with("+").any() and mobile.str.starts_with("00").any()
    assert mobile.str.contains(r"^\(\d{3}\) \d{3}-\d{4}$").any() and mobile.str.contains(r"^0\d ").any()
    assert mobile.is_in(["0000000000", ""]).any()
    per_person = full.identity().filter(pl.col("source_table") == "contacts").group_by("person_id").len()
    assert (per_person["len"] == 2).any()  # duplicate contacts
    assert contacts["ERP Customer No"].null_count() > 0  # leads and unlinked contacts
    contact_people = set(per_person["person_id"])
    assert not set(full.buyers()["person_id"]) <= contact_people  # buyers without a CRM contact
    leads = full.people().filter(pl.col("erp_customer_no").is_null())
    assert leads.height == pytest.approx(0.1 * CUSTOMERS, rel=0.01)
    names = "".join(full.erp("customers")["first_name"].to_list() + full.erp("customers")["last_name"].to_list())
    assert any(c in names for c in "éñüßç")
    assert full.tool("web/sessions.csv")["customer_no"].null_count() > 0


# --- the sales as one invoice-line export (sales_shape="invoice-lines") ---------------------------------------

SHAPE_CUSTOMERS = 2_000
INVOICE_LINES = "sales/invoice_lines.csv"
SALES_TABLES = ("orders", "order_lines", "returns", "customers", "products")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> dict[str, Path]:
    """One world generated in each sales shape: the landing folders (their truth beside them)."""
    root = tmp_path_factory.mktemp("shapes")
    return {
        shape: generate(SHAPE_CUSTOMERS, 21, AS_OF, root / shape / "landing", sales_shape=shape).out
        for shape in SALES_SHAPES
    }


def load_sales(landing: Path) -> duckdb.DuckDBPyConnection:
    """Load a landing zone's ERP sales through the built-in contracts (whichever shape is there), as ingest does."""
    connection = duckdb.connect()
    for contract in load_contracts():
        if any(table.startswith("erp__") for table in contract.tables):
            for load in load_table(connection, contract, landing, "test"):
                assert load.status == "loaded", load.message
                assert load.rows_read == load.rows_loaded + load.rows_quarantined + load.rows_filtered, load
                assert (load.rows_quarantined, load.rows_filtered) == (0, 0), load.file
    return connection


# Per customer: orders, lines and their amount, credit-note (return) lines, units and refunds. A return names its
# order in the tables shape and its customer in the invoice-line one.
PER_CUSTOMER = """
with sold as (
    select orders.customer_no, count(distinct orders.order_no) as orders, count(*) as lines,
        sum(lines.quantity) as units, sum(lines.line_amount) as amount
    from raw.erp__order_lines as lines join raw.erp__orders as orders using (order_no)
    group by 1
),
credited as (
    select coalesce(returns.customer_no, orders.customer_no) as customer_no, count(*) as credit_lines,
        sum(returns.quantity) as units_returned, sum(returns.refund_amount) as refunded
    from raw.erp__returns as returns left join raw.erp__orders as orders using (order_no)
    group by 1
)
select sold.*, coalesce(credit_lines, 0) as credit_lines, coalesce(units_returned, 0) as units_returned,
    coalesce(refunded, 0) as refunded
from sold left join credited using (customer_no)
order by customer_no
"""


def test_invoice_lines_replace_only_the_erp_sales_files(shapes):
    tables, invoices = (file_hashes(shapes[shape].parent) for shape in SALES_SHAPES)
    sales = {f"landing/erp/{name}.csv" for name in SALES_TABLES}
    assert set(tables) - set(invoices) == sales
    assert set(invoices) - set(tables) == {f"landing/{INVOICE_LINES}"}
    shared = set(tables) & set(invoices)
    assert {"landing/erp/exchange_rates.csv", "landing/crm/contacts.csv", "truth/identity.parquet"} <= shared
    assert {name for name in shared if tables[name] != invoices[name]} == set()


def test_both_sales_shapes_load_the_same_sales_per_customer(shapes):
    tables, invoices = (load_sales(shapes[shape]) for shape in SALES_SHAPES)
    expected, actual = (connection.sql(PER_CUSTOMER).pl() for connection in (tables, invoices))
    assert expected.height == SHAPE_CUSTOMERS
    assert expected["credit_lines"].sum() > 0.05 * expected["lines"].sum()
    assert actual.equals(expected)
    # the same lines, line for line: invoice INV + the order's digits
    line = "select {}, line_no, sku, quantity, unit_price, line_amount from raw.erp__order_lines order by all"
    renumbered = invoices.sql(line.format("replace(order_no, 'INV', 'SO')")).fetchall()
    assert renumbered == tables.sql(line.format("order_no")).fetchall()
    # every customer, with the country and currency of the tables shape; only products that sold
    customer = "select customer_no, country_code, currency_code from raw.erp__customers order by 1"
    assert invoices.sql(customer).fetchall() == tables.sql(customer).fetchall()
    product = "select sku, product_name, category from raw.erp__products"
    sold = f"{product} where sku in (select sku from raw.erp__order_lines) order by 1"
    assert invoices.sql(f"{product} order by 1").fetchall() == tables.sql(sold).fetchall()


def test_the_invoice_line_export_is_an_erp_report_with_credit_notes(shapes):
    raw = (shapes["invoice-lines"] / INVOICE_LINES).read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw
    header = "Invoice No;Line;Invoice Date;Customer No;Country;Item No;Description;Item Category;Quantity;Unit Price;"
    assert raw.decode("utf-8").split("\n", 1)[0] == header + "Amount;Currency;Channel;Store"
    rows = duckdb.sql(
        f"select * from read_csv('{shapes['invoice-lines'] / INVOICE_LINES}', {ERP}, all_varchar=false)"
    ).pl()
    assert rows.schema["Invoice Date"] == pl.Datetime("us") and rows.schema["Amount"] == pl.Float64
    credit = rows["Invoice No"].str.starts_with("CN")
    assert (rows["Invoice No"].str.starts_with("INV") | credit).all()
    assert (rows.filter(credit)["Quantity"] < 0).all() and (rows.filter(~credit)["Quantity"] > 0).all()
    assert (rows.filter(credit)["Amount"] < 0).all()
    cents = (rows["Quantity"] * (rows["Unit Price"] * 100).round(0) - (rows["Amount"] * 100).round(0)).abs()
    assert cents.max() == 0
    store = rows["Channel"] == "store"
    assert rows.filter(~store)["Store"].null_count() == (~store).sum() and rows.filter(store)["Store"].null_count() == 0
    assert set(rows["Currency"]) == {"EUR", "GBP", "USD"}
    # a report of a period: documents in order of their date-time, which is local: it steps back by less than an
    # hour at most once a year, when the clocks go back
    steps = rows["Invoice Date"].diff().drop_nulls()
    assert steps.min() > -dt.timedelta(hours=1)
    assert (steps < dt.timedelta(0)).sum() <= rows["Invoice Date"].dt.year().n_unique()


def test_the_invoice_line_export_is_the_same_written_in_chunks_or_at_once(tmp_path, monkeypatch):
    from pipelines.demo_data import invoices

    written = {}
    for chunk in (10**9, 997, 1):
        monkeypatch.setattr(invoices, "CHUNK_LINES", chunk)
        summary = generate(300, 3, AS_OF, tmp_path / str(chunk) / "landing", sales_shape="invoice-lines")
        written[chunk] = summary.path(INVOICE_LINES).read_bytes()
        assert summary.rows[INVOICE_LINES] == written[chunk].count(b"\n") - 1
    assert written[997] == written[10**9] == written[1]


def test_a_sales_shape_replaces_the_files_of_the_other_in_the_landing_folder(tmp_path):
    landing = tmp_path / "landing"
    generate(100, 1, AS_OF, landing)
    generate(100, 1, AS_OF, landing, sales_shape="invoice-lines")
    assert sorted(path.name for path in (landing / "erp").iterdir()) == ["exchange_rates.csv"]
    generate(100, 1, AS_OF, landing)
    assert not (landing / INVOICE_LINES).exists() and (landing / "erp" / "orders.csv").exists()
    with pytest.raises(ValueError, match="invoice-lines"):
        generate(100, 1, AS_OF, landing, sales_shape="invoice_lines")


@pytest.mark.slow
def test_a_bgnbd_and_gamma_gamma_fit_recovers_the_parameters(tmp_path):
    lifetimes = pytest.importorskip("lifetimes")
    world = World(tmp_path, 50_000, 5, frozenset())
    orders = world.order_values_eur().sort("ordered_at")
    cutoff = dt.datetime.combine(AS_OF, dt.time())
    days = (pl.col("ordered_at") - pl.lit(cutoff)).dt.total_seconds() / 86_400
    summary = (
        orders.with_columns(days.alias("d"))
        .group_by("customer_no")
        .agg(
            (pl.len() - 1).alias("frequency"),
            (pl.col("d").max() - pl.col("d").min()).alias("recency"),
            (-pl.col("d").min()).alias("T"),
            pl.col("value_eur").slice(1).mean().alias("monetary"),
        )
        .to_pandas()
    )
    bgnbd = lifetimes.BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
    for name, value in (("r", PARAMS.r), ("alpha", PARAMS.alpha), ("a", PARAMS.a), ("b", PARAMS.b)):
        assert bgnbd.params_[name] == pytest.approx(value, rel=0.1), name
    repeat = summary[summary["frequency"] > 0]
    spend = lifetimes.GammaGammaFitter().fit(repeat["frequency"], repeat["monetary"])
    for name, value in (("p", PARAMS.p_spend), ("q", PARAMS.q), ("v", PARAMS.gamma)):
        assert spend.params_[name] == pytest.approx(value, rel=0.1), name
