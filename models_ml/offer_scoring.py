"""The scoring of next best offers (models_ml.offers) as sparse matrix products, a group of customers at a time.

Customers and items are numbered 0..n-1 by the caller, the items in the order that breaks ties between equal scores
(more bought first, then by key). A customer's score for an item is the sum, over the items the customer bought, of
the strengths of the evidence edges from the bought item to it: the row of (bought items) x (edge strengths), one
sparse matrix product. Summed this way a customer's candidates are never written out one row per piece of evidence
(customers x items bought x edges: 180 million rows at a million customers), which is what made the same sum by SQL
group by take minutes and spill gigabytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

# Customers a group: the group's scores are at most this many customers x their candidates, a few hundred MB.
CUSTOMERS_PER_GROUP = 50_000


@dataclass(frozen=True)
class Edges:
    """Evidence that an item points to another, one edge a position: ``source`` 0 for a basket rule, 1 for a
    similar item (a rule is preferred as the reason) and ``strength``, what it adds to the score."""

    item: np.ndarray
    offered: np.ndarray
    source: np.ndarray
    strength: np.ndarray


def top_offers(
    owned: tuple[np.ndarray, np.ndarray],
    excluded: tuple[np.ndarray, np.ndarray],
    edges: Edges,
    *,
    customers: int,
    items: int,
    offer_count: int,
    key_order: np.ndarray,
) -> dict[str, np.ndarray]:
    """Each customer's ``offer_count`` best scored items, with the evidence that speaks for each.

    Parameters
    ----------
    owned, excluded
        (customer, item) numbers: what each customer bought, and what they may not be offered (bought or returned).
    edges
        The evidence edges between item numbers.
    customers, items
        How many customers and items are numbered.
    offer_count
        Offers a customer at most.
    key_order
        For each item number, the rank of its key: the reason's tie-break (rule before similarity, then the
        strongest, then the bought item's key).

    Returns
    -------
    dict
        Arrays ``customer``, ``item``, ``score`` and ``edge`` (the position of the evidence that speaks for the
        offer), one row per offer, a customer's best first; an item with no evidence for the customer is never
        among them.
    """
    weights = sparse.csr_array((edges.strength, (edges.item, edges.offered)), shape=(items, items))
    bought = _pairs(owned, customers, items)
    barred = _pairs(excluded, customers, items)
    evidence = _edge_lookup(edges, items)
    found = []
    for start in range(0, customers, CUSTOMERS_PER_GROUP):
        group = slice(start, start + CUSTOMERS_PER_GROUP)
        found.append(
            _group_offers(bought[group], barred[group], weights, edges, evidence, key_order, start, offer_count)
        )
    return {name: np.concatenate([group[name] for group in found]) for name in found[0]} if found else {}


def _pairs(pairs: tuple[np.ndarray, np.ndarray], customers: int, items: int) -> sparse.csr_array:
    rows, columns = pairs
    matrix = sparse.csr_array((np.ones(len(rows)), (rows, columns)), shape=(customers, items))
    matrix.sum_duplicates()
    return matrix


def _edge_lookup(edges: Edges, items: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per source (rule, similarity): the edges' keys (item * items + offered), sorted, and their positions."""
    lookup = {}
    for source in (0, 1):
        positions = np.flatnonzero(edges.source == source)
        keys = edges.item[positions].astype(np.int64) * items + edges.offered[positions]
        order = np.argsort(keys, kind="stable")
        lookup[source] = (keys[order], positions[order])
    return lookup


def _group_offers(
    bought: sparse.csr_array,
    barred: sparse.csr_array,
    weights: sparse.csr_array,
    edges: Edges,
    evidence: dict[int, tuple[np.ndarray, np.ndarray]],
    key_order: np.ndarray,
    first_customer: int,
    offer_count: int,
) -> dict[str, np.ndarray]:
    items = weights.shape[0]
    scores = bought @ weights
    # by customer, then by item number: among equal scores the first is the better (item numbers are tie order)
    scores.sort_indices()
    scores = scores.tocoo()
    rows, columns, values = scores.row.astype(np.int64), scores.col.astype(np.int64), scores.data
    # what the customer bought or returned is never offered
    candidate_keys = rows * items + columns
    barred = barred.tocoo()
    barred_keys = np.sort(barred.row.astype(np.int64) * items + barred.col)
    at = np.minimum(np.searchsorted(barred_keys, candidate_keys), max(len(barred_keys) - 1, 0))
    open_ = barred_keys[at] != candidate_keys if len(barred_keys) else np.ones(len(rows), dtype=bool)
    rows, columns, values = rows[open_], columns[open_], values[open_]
    chosen = _best_per_row(rows, values, offer_count)
    offer_rows, offer_items = rows[chosen], columns[chosen]
    reasons = _reasons(bought, offer_rows, offer_items, edges, evidence, key_order)
    return {"customer": offer_rows + first_customer, "item": offer_items, "score": values[chosen], **reasons}


def _best_per_row(rows: np.ndarray, values: np.ndarray, count: int) -> np.ndarray:
    """Positions of each row's ``count`` highest values (rows sorted; ties: the earlier position), best first."""
    if len(rows) == 0:
        return np.empty(0, dtype=np.int64)
    starts = _run_starts(rows)
    lengths = np.diff(np.r_[starts, len(rows)])
    remaining = values.astype(np.float64, copy=True)
    picked = []
    for _ in range(count):
        best = np.maximum.reduceat(remaining, starts)
        at_best = np.flatnonzero((remaining == np.repeat(best, lengths)) & (remaining > -np.inf))
        if len(at_best) == 0:
            break
        first = at_best[_run_starts(rows[at_best])]
        picked.append(first)
        remaining[first] = -np.inf
    positions = np.concatenate(picked)
    # best first within each customer: customers in order, then the round a position was picked in
    rounds = np.concatenate([np.full(len(found), number) for number, found in enumerate(picked)])
    return positions[np.lexsort((rounds, rows[positions]))]


def _reasons(
    bought: sparse.csr_array,
    offer_rows: np.ndarray,
    offer_items: np.ndarray,
    edges: Edges,
    evidence: dict[int, tuple[np.ndarray, np.ndarray]],
    key_order: np.ndarray,
) -> dict[str, np.ndarray]:
    """For each offer, the edge from an item the customer bought that speaks for it: a rule before a similarity,
    then the strongest, then by the bought item's key."""
    items = bought.shape[1]
    counts = bought.indptr[offer_rows + 1] - bought.indptr[offer_rows]
    offer = np.repeat(np.arange(len(offer_rows)), counts)
    # each offer's customer's bought items: one run of the matrix's column numbers per offer
    run_starts = np.repeat(bought.indptr[offer_rows] - np.cumsum(np.r_[0, counts[:-1]]), counts)
    because = bought.indices[run_starts + np.arange(len(offer))].astype(np.int64)
    keys = because * items + offer_items[offer]
    # every offer has evidence (its score is the sum of it): each is explained by the rules if one speaks for it,
    # else by the similar items
    chosen = np.full(len(offer_rows), -1, dtype=np.int64)
    for source in sorted(evidence):
        sorted_keys, positions = evidence[source]
        at = np.minimum(np.searchsorted(sorted_keys, keys), max(len(sorted_keys) - 1, 0))
        hit = sorted_keys[at] == keys if len(sorted_keys) else np.zeros(len(keys), dtype=bool)
        hit &= chosen[offer] < 0
        found, edge, reason = offer[hit], positions[at[hit]], because[hit]
        best = _first_best(found, edges.strength[edge], key_order[reason])
        chosen[found[best]] = edge[best]
    return {"edge": chosen}


def _first_best(groups: np.ndarray, strength: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Per run of equal ``groups`` (sorted), the position of the strongest, the lowest ``rank`` among equally strong,
    the first among those: what sorting by (group, -strength, rank) and taking each group's first would give,
    in one pass rather than a sort of every (offer, bought item) pair."""
    if len(groups) == 0:
        return np.empty(0, dtype=np.int64)
    starts = _run_starts(groups)
    lengths = np.diff(np.r_[starts, len(groups)])
    strongest = strength == np.repeat(np.maximum.reduceat(strength, starts), lengths)
    ranks = np.where(strongest, rank, np.iinfo(np.int64).max).astype(np.int64)
    winners = np.flatnonzero(strongest & (ranks == np.repeat(np.minimum.reduceat(ranks, starts), lengths)))
    return winners[_run_starts(groups[winners])]


def _run_starts(values: np.ndarray) -> np.ndarray:
    """Where each run of equal ``values`` starts (positions; ``values`` not empty)."""
    return np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
