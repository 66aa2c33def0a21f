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


def _edge_lookup(edges: Edges, items: int) -> sparse.csr_array:
    """An (item, offered) matrix of the edge that explains an offer of ``offered`` to a buyer of ``item``: the
    rule if there is one, else the similar item (of several of one source, the first), stored as its position + 1
    (0: no edge). Read a pair at a time (matrix[items, offered]), each read searches one item's few edges."""
    keys = edges.item.astype(np.int64) * items + edges.offered
    # rules first, then by position: each key's first is the edge that explains it
    order = np.lexsort((np.arange(len(keys)), edges.source, keys))
    keys, first = np.unique(keys[order], return_index=True)
    positions = order[first]
    return sparse.csr_array(((positions + 1).astype(np.float64), (keys // items, keys % items)), shape=(items, items))


def _group_offers(
    bought: sparse.csr_array,
    barred: sparse.csr_array,
    weights: sparse.csr_array,
    edges: Edges,
    evidence: sparse.csr_array,
    key_order: np.ndarray,
    first_customer: int,
    offer_count: int,
) -> dict[str, np.ndarray]:
    scores = bought @ weights
    # one entry per (customer, candidate item), by customer; within a customer in no particular order
    rows = np.repeat(np.arange(scores.shape[0], dtype=np.int64), np.diff(scores.indptr))
    columns, values = scores.indices.astype(np.int64), scores.data
    # what the customer bought or returned is never offered
    open_ = _values_at(barred, rows, columns) == 0
    rows, columns, values = rows[open_], columns[open_], values[open_]
    # among equal scores the lower item number is the better (item numbers are tie order)
    chosen = _best_per_row(rows, values, columns, offer_count)
    offer_rows, offer_items = rows[chosen], columns[chosen]
    reasons = _reasons(bought, offer_rows, offer_items, edges, evidence, key_order)
    return {"customer": offer_rows + first_customer, "item": offer_items, "score": values[chosen], **reasons}


def _best_per_row(rows: np.ndarray, values: np.ndarray, ties: np.ndarray, count: int) -> np.ndarray:
    """Positions of each row's ``count`` highest values (rows sorted; among equal values the lowest of ``ties``,
    unique within a row), best first."""
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
        runs = _run_starts(rows[at_best])
        tied = ties[at_best]
        lowest = np.repeat(np.minimum.reduceat(tied, runs), np.diff(np.r_[runs, len(at_best)]))
        first = at_best[tied == lowest]
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
    evidence: sparse.csr_array,
    key_order: np.ndarray,
) -> dict[str, np.ndarray]:
    """For each offer, the edge from an item the customer bought that speaks for it: a rule before a similarity,
    then the strongest, then by the bought item's key."""
    counts = bought.indptr[offer_rows + 1] - bought.indptr[offer_rows]
    offer = np.repeat(np.arange(len(offer_rows)), counts)
    # each offer's customer's bought items: one run of the matrix's column numbers per offer
    run_starts = np.repeat(bought.indptr[offer_rows] - np.cumsum(np.r_[0, counts[:-1]]), counts)
    because = bought.indices[run_starts + np.arange(len(offer))].astype(np.int64)
    found = _values_at(evidence, because, offer_items[offer])
    # every offer has evidence (its score is the sum of it): each is explained by the rules if one speaks for it,
    # else by the similar items
    hit = np.flatnonzero(found > 0)
    offer, edge, because = offer[hit], found[hit].astype(np.int64) - 1, because[hit]
    chosen = np.full(len(offer_rows), -1, dtype=np.int64)
    if len(offer):
        source = edges.source[edge]
        starts = _run_starts(offer)
        first_source = np.repeat(np.minimum.reduceat(source, starts), np.diff(np.r_[starts, len(offer)]))
        kept = source == first_source
        offer, edge, because = offer[kept], edge[kept], because[kept]
        best = _first_best(offer, edges.strength[edge], key_order[because])
        chosen[offer[best]] = edge[best]
    return {"edge": chosen}


def _values_at(matrix: sparse.csr_array, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``matrix``'s values at the positions (rows, columns), 0 where it holds none; each read searches one row."""
    if len(rows) == 0:  # scipy answers no positions with a sparse array, not an empty one
        return np.zeros(0, dtype=matrix.dtype)
    return matrix[rows, columns]


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
