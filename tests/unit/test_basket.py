"""Association rules (models_ml/basket.py): arules' published figures on the Groceries data, every measure against
an independent count of the raw file, and hand-made baskets whose answers are worked out below."""

import hashlib
import pickle
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from models_ml.basket import RULE_SCHEMA, association_rules, basket_fit_key, reuse_basket_rules, run_basket_rules
from models_ml.protocol import StoredFit

GROCERIES = Path(__file__).resolve().parents[1] / "fixtures" / "groceries" / "groceries.csv"
GROCERIES_SHA256 = "ff1be892fd6b9b57d1a7bc50de067798963dda607619645988b21789bf23ae3b"
THRESHOLDS = {"min_support": 0.001, "min_confidence": 0.05, "min_lift": 1.0}  # the default settings


def read_baskets(path: Path) -> list[list[str]]:
    """One basket a line, items split on commas and kept as written (two names end in a space)."""
    return [line.split(",") for line in path.read_text(encoding="utf-8").splitlines()]


def as_frame(baskets: list[list[str | None]]) -> pl.DataFrame:
    rows = [(index, item, item) for index, basket in enumerate(baskets) for item in basket]
    return pl.DataFrame(rows, schema=["basket_id", "item", "item_name"], orient="row")


@pytest.fixture(scope="module")
def groceries() -> tuple[list[list[str]], pl.DataFrame]:
    baskets = read_baskets(GROCERIES)
    return baskets, association_rules(as_frame(baskets), **THRESHOLDS)


def rule(rules: pl.DataFrame, antecedent: str, consequent: str) -> dict:
    [found] = rules.filter((pl.col("antecedent") == antecedent) & (pl.col("consequent") == consequent)).to_dicts()
    return found


def test_the_fixture_is_the_groceries_file():
    assert hashlib.sha256(GROCERIES.read_bytes()).hexdigest() == GROCERIES_SHA256
    baskets = read_baskets(GROCERIES)
    sizes = [len(basket) for basket in baskets]
    assert (len(baskets), len({item for basket in baskets for item in basket})) == (9835, 169)
    assert (min(sizes), max(sizes)) == (1, 32)
    assert {"cream cheese ", "roll products "} <= {item for basket in baskets for item in basket}


def test_item_supports_are_the_published_ones(groceries):
    _, rules = groceries
    supports = dict(
        rules.select("antecedent", support=pl.col("antecedent_baskets") / pl.col("baskets")).unique().iter_rows()
    )
    published = {"whole milk": 0.2555, "other vegetables": 0.1935, "rolls/buns": 0.1839, "soda": 0.1744,
                 "yogurt": 0.1395}  # fmt: skip
    for item, support in published.items():
        assert supports[item] == pytest.approx(support, abs=5e-5), item


def test_rules_are_the_published_ones(groceries):
    _, rules = groceries
    herbs = rule(rules, "herbs", "root vegetables")
    assert herbs["both_baskets"] == 69
    assert herbs["support"] == pytest.approx(0.007016, abs=5e-7)
    assert herbs["confidence"] == pytest.approx(0.43125, abs=5e-6)
    assert herbs["lift"] == pytest.approx(3.956477, abs=5e-7)
    assert rule(rules, "berries", "whipped/sour cream")["lift"] == pytest.approx(3.796886, abs=5e-7)
    milk = rule(rules, "other vegetables", "whole milk")
    assert milk["support"] == pytest.approx(0.0748, abs=5e-5)
    assert milk["confidence"] == pytest.approx(0.387, abs=5e-4)
    assert milk["lift"] == pytest.approx(1.514, abs=5e-4)


def test_every_rule_and_measure_matches_an_independent_count_of_the_file(groceries):
    """numpy on the raw file: a basket x item matrix, every ordered pair's measures from their definitions, the
    thresholds applied; the rules must be exactly these, with these figures."""
    baskets, rules = groceries
    items = sorted({item for basket in baskets for item in basket})
    column = {item: index for index, item in enumerate(items)}
    holds = np.zeros((len(baskets), len(items)))  # counts stay exact in doubles; float products use BLAS
    for row, basket in enumerate(baskets):
        holds[row, [column[item] for item in basket]] = 1
    n = len(baskets)
    both = holds.T @ holds
    p_item = holds.sum(axis=0) / n
    support = both / n
    confidence = both / holds.sum(axis=0)[:, None]
    lift = confidence / p_item[None, :]
    leverage = support - np.outer(p_item, p_item)
    with np.errstate(divide="ignore"):
        conviction = (1 - p_item[None, :]) / (1 - confidence)
    kept = (support >= 0.001) & (confidence >= 0.05) & (lift >= 1.0)
    np.fill_diagonal(kept, False)
    expected = {(items[a], items[b]) for a, b in zip(*np.nonzero(kept), strict=True)}
    assert set(zip(rules["antecedent"], rules["consequent"], strict=True)) == expected
    assert rules.height == len(expected) == 3555
    a = np.array([column[item] for item in rules["antecedent"]])
    b = np.array([column[item] for item in rules["consequent"]])
    assert (rules["baskets"] == n).all()
    np.testing.assert_array_equal(rules["antecedent_baskets"], holds.sum(axis=0)[a])
    np.testing.assert_array_equal(rules["consequent_baskets"], holds.sum(axis=0)[b])
    np.testing.assert_array_equal(rules["both_baskets"], both[a, b])
    for measure, expected_values in (("support", support), ("confidence", confidence), ("lift", lift)):
        np.testing.assert_allclose(rules[measure], expected_values[a, b], rtol=1e-12, err_msg=measure)
    np.testing.assert_allclose(rules["leverage"], leverage[a, b], rtol=1e-9, atol=1e-15)
    certain = confidence[a, b] == 1
    assert rules["conviction"].is_null().to_numpy().tolist() == certain.tolist()  # null exactly when certain
    np.testing.assert_allclose(rules["conviction"].to_numpy()[~certain], conviction[a, b][~certain], rtol=1e-12)
    assert rule(rules, "cream cheese ", "yogurt")["antecedent_name"] == "cream cheese "  # kept as written


def test_hand_made_baskets_give_the_measures_worked_out_by_hand():
    # 4 baskets: {a, b} twice, {a}, {c}. n(a) = 3, n(b) = 2, n(a and b) = 2.
    # a => b: support 2/4, confidence 2/3, lift (2/3) / (2/4) = 4/3, leverage 1/2 - 3/4 * 2/4 = 1/8,
    #         conviction (1 - 2/4) / (1 - 2/3) = 3/2.
    # b => a: confidence 1, lift 1 / (3/4) = 4/3, conviction null (confidence 1).
    frame = as_frame([["a", "b"], ["a", "b", "b"], ["a"], ["c"]])  # a repeated item counts once
    rules = association_rules(frame, min_support=0.5, min_confidence=0.0, min_lift=0.0)  # support exactly 0.5 kept
    a_b, b_a = rule(rules, "a", "b"), rule(rules, "b", "a")
    assert rules.height == 2
    assert (a_b["baskets"], a_b["antecedent_baskets"], a_b["consequent_baskets"], a_b["both_baskets"]) == (4, 3, 2, 2)
    assert a_b["support"] == 0.5 and a_b["confidence"] == pytest.approx(2 / 3) and a_b["lift"] == pytest.approx(4 / 3)
    assert a_b["leverage"] == pytest.approx(1 / 8) and a_b["conviction"] == pytest.approx(3 / 2)
    assert b_a["confidence"] == 1 and b_a["lift"] == pytest.approx(4 / 3) and b_a["conviction"] is None
    assert association_rules(frame, min_support=0.51, min_confidence=0.0, min_lift=0.0).is_empty()
    only_one_way = association_rules(frame, min_support=0.5, min_confidence=0.9, min_lift=0.0)
    assert list(zip(only_one_way["antecedent"], only_one_way["consequent"], strict=True)) == [("b", "a")]
    # a and b share 2 baskets: a rule at 2 baskets together, none at 3, whatever the support
    assert association_rules(frame, min_support=0.0, min_confidence=0.0, min_lift=0.0, min_baskets=2).height == 2
    assert association_rules(frame, min_support=0.0, min_confidence=0.0, min_lift=0.0, min_baskets=3).is_empty()


def test_a_line_without_an_item_counts_its_basket_but_no_item():
    # a fifth basket whose only line has no item (a product without a category): N = 5, so support is 2/5 and
    # lift 2 * 5 / (3 * 2) = 5/3
    frame = as_frame([["a", "b"], ["a", "b"], ["a"], ["c"], [None]])
    a_b = rule(association_rules(frame, min_support=0.0, min_confidence=0.0, min_lift=0.0), "a", "b")
    assert (a_b["baskets"], a_b["support"]) == (5, 0.4)
    assert a_b["lift"] == pytest.approx(5 / 3)


def test_no_pair_gives_no_rules_and_says_why():
    single = as_frame([["CD"], ["CD"], ["CD"]])
    assert association_rules(single, **THRESHOLDS).schema == pl.Schema(RULE_SCHEMA)
    run = run_basket_rules(
        {"product": single, "category": single.with_columns(item=None, item_name=None)}, **THRESHOLDS
    )
    rules = run.tables["basket_rules"]
    assert rules.is_empty() and rules.columns == ["level", *RULE_SCHEMA]
    assert run.verdict.metrics == {"baskets_product": 3, "items_product": 1, "rules_product": 0,
                                   "baskets_category": 3, "items_category": 0, "rules_category": 0}  # fmt: skip
    assert run.verdict.notes == (
        "No product rules: the orders hold one product only (CD), so there is no pair to count.",
        "No category rules: the orders hold no category, so there is no pair to count.",
    )
    assert (run.verdict.score_source, run.verdict.beats_baseline, run.rows_used) == ("model", None, 3)


def test_levels_are_stacked_with_their_name():
    frame = as_frame([["a", "b"], ["a", "b"], ["c"]])
    run = run_basket_rules({"product": frame, "category": frame}, **THRESHOLDS)
    assert run.tables["basket_rules"].group_by("level").len().sort("level").rows() == [("category", 2), ("product", 2)]
    assert run.verdict.metrics["rules_product"] == 2 and run.verdict.notes == ()
    assert run.parameters == {**THRESHOLDS, "min_baskets": 1}


def test_a_later_night_publishes_the_counted_rules_again_with_a_note():
    frame = as_frame([["a", "b"], ["a", "b"], ["c"]])
    counted = run_basket_rules({"product": frame, "category": frame}, **THRESHOLDS)
    assert counted.fit is not None and counted.fitted_as_of is None
    assert counted.fit_key == basket_fit_key(["product", "category"], **THRESHOLDS, min_baskets=1)
    assert counted.fit_key != basket_fit_key(["product", "category"], **{**THRESHOLDS, "min_support": 0.9})
    # through the pickle the warehouse keeps it in (meta.model_fits)
    stored = StoredFit(date(2026, 6, 30), date(2026, 7, 7), pickle.loads(pickle.dumps(counted.fit)))
    again = reuse_basket_rules(stored)
    assert again.tables["basket_rules"].equals(counted.tables["basket_rules"])
    assert again.verdict.metrics == counted.verdict.metrics and again.parameters == counted.parameters
    assert (again.fit, again.fit_key, again.fitted_as_of) == (None, None, date(2026, 6, 30))
    assert "rules made on the night of 2026-06-30" in again.verdict.notes[-1]
    assert "2026-07-07" in again.verdict.notes[-1]


def test_a_missing_column_or_a_threshold_out_of_range_is_named():
    with pytest.raises(ValueError, match="association_rules: input lacks column\\(s\\) item_name"):
        association_rules(pl.DataFrame({"basket_id": [1], "item": ["a"]}), **THRESHOLDS)
    with pytest.raises(ValueError, match="min_support must be between 0 and 1"):
        association_rules(as_frame([["a"]]), min_support=1.5, min_confidence=0.0, min_lift=0.0)
