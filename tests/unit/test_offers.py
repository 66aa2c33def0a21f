"""Next best offers (models_ml/offers.py) on small hand-made frames whose answers are worked out in the comments."""

import pickle
from datetime import date

import polars as pl
import pytest

from models_ml import offer_scoring
from models_ml.basket import association_rules
from models_ml.offers import (
    _NO_EVIDENCE,
    OFFER_SCHEMA,
    _offers,
    choose_offers,
    offer_hits,
    offers_fit_key,
    popularity_offers,
    rank_offers,
    run_next_best_offers,
    similar_items,
)
from models_ml.protocol import StoredFit
from models_ml.validation import InsufficientDataError

RULES = {"antecedent": pl.String, "consequent": pl.String, "confidence": pl.Float64, "lift": pl.Float64}
SIMILAR = {"item": pl.String, "neighbour": pl.String, "cosine": pl.Float64, "lift": pl.Float64, "share": pl.Float64}
NAMES = {item: f"Item {item}" for item in "ABCDEFGX"}


def bought(pairs: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(customer, item, NAMES[item]) for customer, item in pairs],
        schema=["customer_id", "item", "item_name"],
        orient="row",
    )


def returned(pairs: list[tuple[str, str]] = ()) -> pl.DataFrame:
    return pl.DataFrame(list(pairs), schema=["customer_id", "item"], orient="row")


def offers_of(offers: pl.DataFrame, customer: str) -> list[tuple]:
    return (
        offers.filter(pl.col("customer_id") == customer).sort("offer_rank").select("item_id", "score", "source").rows()
    )


# c1 bought A and B; c2 bought C, D, E, F; c3 bought F and G. Popularity by customers: F (2), then A, B, C, D, E, G
# (1 each, by code). Evidence for c1: rules A => C (confidence 0.4), B => C (0.3), A => D (0.2); similar items
# A ~ D (cosine 0.6), B ~ E (0.1), A ~ B (0.9, but c1 owns B).
HISTORY = bought([("c1", "A"), ("c1", "B"), ("c2", "C"), ("c2", "D"), ("c2", "E"), ("c2", "F"), ("c3", "F"),
                  ("c3", "G")])  # fmt: skip
HAND_RULES = pl.DataFrame(
    [("A", "C", 0.4, 2.0), ("B", "C", 0.3, 1.5), ("A", "D", 0.2, 3.0), ("A", "B", 0.9, 5.0)],
    schema=RULES,
    orient="row",
)
HAND_SIMILAR = pl.DataFrame(
    [("A", "D", 0.6, 1.2, 0.25), ("B", "E", 0.1, 0.9, 0.05), ("A", "B", 0.9, 4.0, 0.9)], schema=SIMILAR, orient="row"
)


def test_a_score_is_the_sum_of_the_evidence_and_popularity_fills_the_rest():
    offers = rank_offers(HISTORY, returned(), HAND_RULES, HAND_SIMILAR, offer_count=5)
    # D: 0.2 (rule) + 0.6 (cosine) = 0.8; C: 0.4 + 0.3 = 0.7; E: 0.1; then F and G, the most bought c1 lacks
    assert offers_of(offers, "c1") == [
        ("D", pytest.approx(0.8), "rule"),
        ("C", pytest.approx(0.7), "rule"),
        ("E", pytest.approx(0.1), "similarity"),
        ("F", 0.0, "popularity"),
        ("G", 0.0, "popularity"),
    ]
    assert offers.schema == pl.Schema(OFFER_SCHEMA)


def test_each_offer_gives_its_reason_in_words():
    offers = rank_offers(HISTORY, returned(), HAND_RULES, HAND_SIMILAR, offer_count=5)
    reasons = dict(offers.filter(pl.col("customer_id") == "c1").select("item_id", "reason").iter_rows())
    # D's rule reason comes from its rule (A => D, lift 3.0), preferred to the cosine; C's from its strongest rule
    assert reasons["D"] == "Bought Item A; buyers of Item A buy Item D 3.0 times more often than average."
    assert reasons["C"] == "Bought Item A; buyers of Item A buy Item C 2.0 times more often than average."
    # a lift of 0.9 says nothing: the share of buyers instead
    assert reasons["E"] == "Bought Item B; 5.0% of customers who bought Item B also bought Item E."
    # F: 2 of the 3 customers bought it
    assert reasons["F"] == "One of the most bought items: 66.7% of customers bought Item F."


def test_bought_and_returned_items_are_never_offered():
    # c4 bought A only, c5 bought A and returned D. B (rule 0.9 + cosine 0.9) and D are A's strongest candidates.
    history = pl.concat([HISTORY, bought([("c4", "A"), ("c5", "A")])])
    offers = rank_offers(history, returned([("c5", "D")]), HAND_RULES, HAND_SIMILAR, offer_count=3)
    assert [item for item, _, _ in offers_of(offers, "c4")] == ["B", "D", "C"]  # 1.8, 0.8, 0.4
    assert [item for item, _, _ in offers_of(offers, "c5")] == ["B", "C", "F"]  # D was returned
    assert "B" not in [item for item, _, _ in offers_of(offers, "c1")]  # c1 bought B


def test_a_customer_who_bought_nearly_everything_gets_fewer_offers():
    # c2 bought C, D, E, F: only A, B and G are left, in popularity order (one buyer each, by code)
    offers = rank_offers(HISTORY, returned(), HAND_RULES, HAND_SIMILAR, offer_count=5)
    assert [item for item, _, _ in offers_of(offers, "c2")] == ["A", "B", "G"]


def test_equal_scores_go_to_the_more_bought_item_and_equal_reasons_to_the_first_key():
    # c1 bought B and A. C and D both score 0.5: D was bought by two customers, C by one, so D comes first.
    # D's two rules (from A and from B) are equally strong: the reason names A, the first key.
    history = bought([("c1", "B"), ("c1", "A"), ("c2", "C"), ("c2", "D"), ("c3", "D")])
    rules = pl.DataFrame(
        [("B", "D", 0.25, 2.0), ("A", "D", 0.25, 2.0), ("A", "C", 0.5, 2.0)], schema=RULES, orient="row"
    )
    offers = rank_offers(history, returned(), rules, pl.DataFrame(schema=SIMILAR), offer_count=2)
    assert offers_of(offers, "c1") == [("D", pytest.approx(0.5), "rule"), ("C", pytest.approx(0.5), "rule")]
    reason = offers.filter(pl.col("customer_id") == "c1", pl.col("item_id") == "D")["reason"][0]
    assert reason.startswith("Bought Item A;")


def test_scoring_a_group_of_customers_at_a_time_gives_the_same_offers(monkeypatch):
    # seven customers scored two at a time (four groups) get the offers they get all at once
    history = pl.concat([HISTORY, bought([("c4", "A"), ("c5", "A"), ("c6", "B"), ("c7", "A"), ("c7", "B")])])
    at_once = rank_offers(history, returned([("c5", "D")]), HAND_RULES, HAND_SIMILAR, offer_count=3)
    monkeypatch.setattr(offer_scoring, "CUSTOMERS_PER_GROUP", 2)
    in_passes = rank_offers(history, returned([("c5", "D")]), HAND_RULES, HAND_SIMILAR, offer_count=3)
    assert in_passes.sort("customer_id", "offer_rank").equals(at_once.sort("customer_id", "offer_rank"))
    assert at_once.filter(pl.col("source") != "popularity").height > 5


def test_each_offers_reason_is_the_first_edge_in_the_order_the_rule_states():
    # random evidence with many ties: every offer's reason is the edge that sorting its customer's evidence by
    # (rule before similarity, strongest, the bought item's key rank) puts first, worked out offer by offer
    import numpy as np
    from scipy import sparse

    rng = np.random.default_rng(5)
    customers, items = 300, 40
    bought = sparse.csr_array((np.ones(1500), (rng.integers(0, customers, 1500), rng.integers(0, items, 1500))),
                              shape=(customers, items))  # fmt: skip
    bought.sum_duplicates()
    pairs = rng.permutation(items * items)[:700]
    sources = rng.integers(0, 2, 700)
    # 100 pairs with an edge of each source, the similar item's first: a rule and a similar item often agree
    pairs, sources = np.r_[pairs[:100], pairs], np.r_[1 - sources[:100], sources]
    edges = offer_scoring.Edges(
        item=pairs // items, offered=pairs % items, source=sources,
        strength=rng.choice([0.25, 0.5, 0.75], 800),  # few strengths: ties are the rule, not the exception
    )  # fmt: skip
    key_order = rng.permutation(items)
    explained: dict[tuple, list] = {}
    for e, (i, o) in enumerate(zip(edges.item, edges.offered, strict=True)):
        explained.setdefault((i, o), []).append(e)
    owned = [bought.indices[bought.indptr[c] : bought.indptr[c + 1]] for c in range(customers)]
    offers = [(c, o) for c in range(customers) for o in range(items) if any((i, o) in explained for i in owned[c])]
    rows, offered = (np.array(column) for column in zip(*offers, strict=True))
    expected = []
    for c, o in offers:
        mine = sorted(e for i in owned[c] for e in explained.get((i, o), []))
        expected.append(min(mine, key=lambda e: (edges.source[e], -edges.strength[e], key_order[edges.item[e]])))
    lookup = offer_scoring._edge_lookup(edges, items)
    found = offer_scoring._reasons(bought, rows, offered, edges, lookup, key_order)["edge"]
    assert found.tolist() == expected
    assert len({edges.source[e] for e in expected}) == 2 and len(offers) > 1000


def test_each_customers_best_scores_are_picked_with_ties_to_the_lowest_item_number():
    # a sparse product leaves each customer's candidates in no particular order: random scores with many ties,
    # candidates shuffled within each customer; the picks are what sorting by (-score, item) gives, worked out
    # customer by customer
    import numpy as np

    rng = np.random.default_rng(11)
    rows = np.sort(rng.integers(0, 200, 3000))
    columns = np.concatenate([rng.permutation(50)[: (rows == row).sum()] for row in range(200)])
    values = rng.choice([0.0, 0.5, 1.0, 1.5], len(rows))
    picked = offer_scoring._best_per_row(rows, values, columns, 5)
    expected = []
    for row in np.unique(rows):
        mine = np.flatnonzero(rows == row)
        expected += sorted(mine, key=lambda at: (-values[at], columns[at]))[:5]
    assert picked.tolist() == expected
    assert not all(np.diff(columns[rows == rows[0]]) > 0), "the candidates are not in item order"


@pytest.mark.parametrize("scored", [True, False], ids=["model", "popularity"])
def test_the_offers_of_some_customers_are_theirs_in_the_whole_ranking(scored):
    # c5 returned D (so D is everyone's item still), c9 never bought (asked for, but has nothing to be offered on)
    history = pl.concat([HISTORY, bought([("c4", "A"), ("c5", "A"), ("c6", "B"), ("c7", "A"), ("c7", "B")])])
    evidence = (HAND_RULES, HAND_SIMILAR) if scored else _NO_EVIDENCE
    everyone = _offers(history, returned([("c5", "D")]), *evidence, 3, scored=scored)
    asked = pl.Series(["c5", "c2", "c9"])
    some = _offers(history, returned([("c5", "D")]), *evidence, 3, scored=scored, for_customers=asked)
    assert set(some["customer_id"]) == {"c2", "c5"}
    expected = everyone.filter(pl.col("customer_id").is_in(asked.implode()))
    assert some.sort("customer_id", "offer_rank").equals(expected.sort("customer_id", "offer_rank"))


def test_the_popularity_baseline_offers_the_most_bought_items_not_bought():
    offers = popularity_offers(HISTORY, returned([("c1", "F")]), offer_count=3)
    # c1 bought A, B and returned F: C, D, E are the next (1 of 3 customers each)
    assert offers_of(offers, "c1") == [("C", pytest.approx(1 / 3), "popularity")] + [
        (item, pytest.approx(1 / 3), "popularity") for item in "DE"
    ]
    assert offers_of(offers, "c3")[0] == ("A", pytest.approx(1 / 3), "popularity")


def test_similar_items_are_the_cosine_of_the_customer_sets():
    # A: c1, c2, c3, c5; B: c1, c2; D: c5; C: c4. N = 5 customers.
    # cos(A, B) = 2 / sqrt(4 * 2) = 0.7071; cos(A, D) = 1 / sqrt(4 * 1) = 0.5; lift(A, B) = 2 * 5 / (4 * 2) = 1.25;
    # share of A's buyers who bought B = 2/4, of B's who bought A = 2/2.
    purchases = bought([("c1", "A"), ("c1", "B"), ("c2", "A"), ("c2", "B"), ("c3", "A"), ("c4", "C"), ("c5", "A"),
                        ("c5", "D")])  # fmt: skip
    similar = similar_items(purchases, min_support=0.0)
    found = {(row["item"], row["neighbour"]): row for row in similar.iter_rows(named=True)}
    assert set(found) == {("A", "B"), ("B", "A"), ("A", "D"), ("D", "A")}
    assert found["A", "B"]["cosine"] == pytest.approx(2 / 8**0.5) and found["A", "D"]["cosine"] == pytest.approx(0.5)
    assert found["A", "B"]["lift"] == pytest.approx(1.25) and found["A", "B"]["customers_both"] == 2
    assert (found["A", "B"]["share"], found["B", "A"]["share"]) == (0.5, 1.0)
    nearest = similar_items(purchases, min_support=0.0, neighbours=1)
    assert nearest.filter(pl.col("item") == "A")["neighbour"].to_list() == ["B"]
    # only A and B are bought together by 2 of the 5 customers (0.4): the threshold keeps them, and nothing above it
    assert set(similar_items(purchases, min_support=0.4)["item"]) == {"A", "B"}
    assert similar_items(purchases, min_support=0.41).is_empty()


def test_hit_rate_and_precision_count_offers_bought_afterwards():
    offers = pl.DataFrame(
        [("x", 1, "P"), ("x", 2, "Q"), ("x", 3, "R"), ("y", 1, "P"), ("y", 2, "Q"), ("z", 1, "P")],
        schema=["customer_id", "offer_rank", "item_id"],
        orient="row",
    )
    new = pl.DataFrame(
        [("x", "Q"), ("x", "R"), ("y", "R"), ("z", "P"), ("v", "P")], schema=["customer_id", "item"], orient="row"
    )
    # x: Q hit at rank 2 (R at rank 3 is past k); y: no hit; z: hit; v made no offer-eligible history (not listed)
    figures = offer_hits(offers, new, pl.Series(["x", "y", "z", "w"]), k=2)
    assert figures == {"customers_evaluated": 3, "hit_rate_at_k": pytest.approx(2 / 3),
                       "precision_at_k": pytest.approx((1 / 2 + 0 + 1 / 2) / 3), "k": 2}  # fmt: skip
    assert offer_hits(offers, new.head(0), pl.Series(["x"]), k=2)["hit_rate_at_k"] is None


def tastes(holdout_item: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Two groups before 2026-01-01: g0..g4 bought A and B in one order (g0 also C); x1..x8 bought X (the most
    bought item). From 2026-01-01, g1..g4 each buy ``holdout_item``."""
    before, after = date(2025, 6, 1), date(2026, 2, 1)
    rows = [(f"g{i}", f"o{i}", item, before) for i in range(5) for item in ("A", "B")]
    rows += [("g0", "o0", "C", before)] + [(f"x{i}", f"p{i}", "X", before) for i in range(1, 9)]
    rows += [(f"g{i}", f"q{i}", holdout_item, after) for i in range(1, 5)]
    purchases = pl.DataFrame(rows, schema=["customer_id", "basket_id", "item", "purchased_on"], orient="row")
    purchases = purchases.with_columns(item_name=pl.col("item").replace_strict(NAMES))
    returns = pl.DataFrame(schema={"customer_id": pl.String, "item": pl.String, "returned_on": pl.Date})
    return purchases, returns


def choose(purchases: pl.DataFrame, returns: pl.DataFrame, holdout_days: int = 59):
    settings = {"min_support": 0.01, "min_confidence": 0.05, "min_lift": 1.0}
    rules = association_rules(purchases.select("basket_id", "item", "item_name"), **settings)
    return choose_offers(
        purchases, returns, rules, as_of=date(2026, 3, 1), holdout_days=holdout_days, offer_count=1, **settings
    )


def test_the_model_is_published_when_it_beats_popularity_on_the_holdout():
    # cutoff 2026-03-01 - 59 days = 2026-01-01. At the cutoff, g1..g4 own A and B: the model offers C (bought with
    # A and B by g0), popularity offers X (8 buyers). All four buy C: model 4/4, popularity 0/4.
    choice = choose(*tastes("C"))
    verdict = choice.verdict
    assert (verdict.score_source, verdict.beats_baseline) == ("model", True)
    assert verdict.metrics == {"customers_evaluated": 4, "hit_rate_at_k": 1.0, "precision_at_k": 1.0, "k": 1}
    assert verdict.baseline_metrics == {"customers_evaluated": 4, "hit_rate_at_k": 0.0, "precision_at_k": 0.0,
                                        "k": 1}  # fmt: skip
    assert choice.parameters["holdout_cutoff"] == date(2026, 1, 1)
    # published: ranked on everything before the as-of date; g1 now owns A, B, C: X is what is left
    assert offers_of(choice.offers, "x1")[0][0] == "A"  # x1 bought X: A, B have no evidence, A is the most bought
    assert offers_of(choice.offers, "g1")[0][0] == "X"


def test_the_check_counts_only_items_new_to_the_customer_at_the_cutoff():
    # as in tastes("C"), but before the cutoff g1 returned C and g2 bought it: neither C is new to them, so only g3
    # and g4 are counted (each buys C, which the model offers them)
    purchases, _ = tastes("C")
    purchases = pl.concat([purchases, purchases.filter(pl.col("basket_id") == "o2").with_columns(item=pl.lit("C"),
                           item_name=pl.lit(NAMES["C"]))])  # fmt: skip
    returns = pl.DataFrame({"customer_id": ["g1"], "item": ["C"], "returned_on": [date(2025, 7, 1)]})
    verdict = choose(purchases, returns).verdict
    assert verdict.metrics == {"customers_evaluated": 2, "hit_rate_at_k": 1.0, "precision_at_k": 1.0, "k": 1}


def test_popularity_is_published_when_the_model_does_not_beat_it():
    # the same customers buy X instead: popularity 4/4, the model 0/4
    choice = choose(*tastes("X"))
    assert (choice.verdict.score_source, choice.verdict.beats_baseline) == ("baseline", False)
    assert choice.verdict.metrics["hit_rate_at_k"] == 0.0 and choice.verdict.baseline_metrics["hit_rate_at_k"] == 1.0
    # published: popularity's, on everything before the as-of date: X (12 buyers), then A and B (5 each, A first by
    # name), then C (1); each customer gets the most bought item they do not own
    assert offers_of(choice.offers, "x1")[0][0] == "A"
    assert offers_of(choice.offers, "g0")[0][0] == "X"
    assert offers_of(choice.offers, "g1")[0][0] == "C"
    assert set(choice.offers["source"]) == {"popularity"}
    assert choice.verdict.notes[-1] == "The baseline's scores are published."


def test_no_history_before_the_holdout_publishes_popularity_and_says_why():
    # a holdout of 400 days starts on 2025-01-25, before the first purchase: nobody can be checked
    choice = choose(*tastes("C"), holdout_days=400)
    assert (choice.verdict.score_source, choice.verdict.beats_baseline) == ("baseline", False)
    assert choice.verdict.metrics["customers_evaluated"] == 0 and choice.verdict.metrics["hit_rate_at_k"] is None
    assert choice.verdict.notes[0] == "No customer who bought before 2025-01-25 bought an item new to them since"
    assert choice.offers.height == 13  # popularity's offer for each of the 13 customers


def test_one_item_only_leaves_nothing_to_offer_and_the_run_says_so():
    purchases = pl.DataFrame(
        {"customer_id": ["a", "b"], "basket_id": ["1", "2"], "item": ["CD", "CD"], "item_name": ["CD", "CD"],
         "purchased_on": [date(2025, 1, 1)] * 2}
    )  # fmt: skip
    returns = pl.DataFrame(schema={"customer_id": pl.String, "item": pl.String, "returned_on": pl.Date})
    with pytest.raises(InsufficientDataError, match=r"Only one item was ever bought \(CD\)"):
        choose(purchases, returns)
    run = run_next_best_offers(purchases, returns, HAND_RULES.head(0), as_of=date(2026, 3, 1), holdout_days=59,
                               offer_count=5, min_support=0.01, min_confidence=0.05, min_lift=1.0)  # fmt: skip
    offers = run.tables["next_best_offers"]
    assert offers.is_empty() and offers.columns == [*OFFER_SCHEMA, "item_level", "score_source"]
    assert run.verdict.score_source == "none"
    assert run.verdict.notes == (
        "Only one item was ever bought (CD): there is nothing else to offer anyone.",
        "No scores are published this run.",
    )
    assert (run.rows_used, run.training_from) == (2, date(2025, 1, 1))


def test_the_run_stamps_each_offer_with_its_level_and_whose_offers_they_are():
    purchases, returns = tastes("X")
    settings = {"min_support": 0.01, "min_confidence": 0.05, "min_lift": 1.0}
    rules = association_rules(purchases.select("basket_id", "item", "item_name"), **settings)
    run = run_next_best_offers(purchases, returns, rules, as_of=date(2026, 3, 1), holdout_days=59, offer_count=1,
                               **settings)  # fmt: skip
    offers = run.tables["next_best_offers"]
    assert run.verdict.score_source == "baseline"
    assert offers.select("item_level", "score_source").unique().rows() == [("product", "baseline")]
    assert offers.height == 13 and run.parameters["offer_count"] == 1


def test_a_missing_column_is_named():
    with pytest.raises(ValueError, match="choose_offers: input lacks column\\(s\\) purchased_on"):
        choose(pl.DataFrame({"customer_id": ["a"], "basket_id": ["1"], "item": ["A"], "item_name": ["A"]}),
               returned())  # fmt: skip


def test_a_night_reusing_the_stored_check_ranks_by_the_ranker_it_chose_without_checking_again():
    settings = {"holdout_days": 59, "offer_count": 1, "min_support": 0.01, "min_confidence": 0.05, "min_lift": 1.0}

    def run(purchases, returns, stored=None):
        rules = association_rules(purchases.select("basket_id", "item", "item_name"), min_support=0.01,
                                  min_confidence=0.05, min_lift=1.0)  # fmt: skip
        return run_next_best_offers(purchases, returns, rules, as_of=date(2026, 3, 1), stored=stored, **settings)

    checked = run(*tastes("C"))  # the model beats popularity: its check is kept
    assert checked.verdict.score_source == "model" and checked.fit_key == offers_fit_key(**settings)
    stored = StoredFit(date(2026, 2, 27), date(2026, 3, 6), pickle.loads(pickle.dumps(checked.fit)))
    again = run(*tastes("C"), stored=stored)
    assert again.tables["next_best_offers"].equals(checked.tables["next_best_offers"])
    assert (again.fit, again.fitted_as_of) == (None, date(2026, 2, 27))
    assert again.verdict.metrics == checked.verdict.metrics and again.parameters == checked.parameters
    assert again.verdict.notes[:-1] == checked.verdict.notes
    assert again.verdict.notes[-1].startswith("Scored with the holdout check made on the night of 2026-02-27")
    # where a check tonight would publish popularity (tastes("X")), the stored check's ranker still ranks
    assert run(*tastes("X")).verdict.score_source == "baseline"
    reused = run(*tastes("X"), stored=stored)
    assert reused.verdict.score_source == "model"
    assert set(reused.tables["next_best_offers"]["score_source"]) == {"model"}
    assert offers_fit_key(**{**settings, "offer_count": 2}) != offers_fit_key(**settings)
