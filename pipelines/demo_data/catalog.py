"""The product catalogue and how an order's value is split into lines.

An order's value comes from Gamma-Gamma and is never changed here: it is converted to the order's currency,
rounded once to cents, and split into lines whose amounts add up to exactly that total. Categories of the
lines come in baskets when the affinities effect is on (a customer's favourite basket group, and lines of one
order mostly from one group), and are drawn independently by popularity when it is off.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from . import vocab
from .params import Params

_IRREGULAR = {
    "Glasses": "Wine glass set",
    "Dresses": "Dress",
    "Coffee beans": "Coffee beans",
    "Seeds": "Seed mix",
    "Trousers": "Trousers",
    "Chinos": "Chinos",
    "Running apparel": "Running top",
    "Styling": "Styling gel",
    "Shampoo": "Shampoo",
    "Storage": "Drive",
    "Charcoal": "Charcoal",
    "Cases and chargers": "Charger",
    "Keyboards and mice": "Keyboard",
    "Cutlery sets": "Cutlery set",
    "Brick sets": "Brick set",
    "Water toys": "Water blaster",
    "Puzzles": "Puzzle",
    "Bike accessories": "Bike light",
    "BBQ accessories": "Grill tongs",
    "Resistance bands": "Resistance band",
}


@dataclass
class Catalogue:
    """Products sorted by category then list price, with the lookup arrays the line split needs."""

    frame: pl.DataFrame  # sku, product_name, department, category, subcategory, list_price, unit_cost, ...
    category_names: list[str]
    product_category: np.ndarray  # category index per product
    list_price: np.ndarray  # EUR per product
    category_start: np.ndarray  # first product of each category
    category_end: np.ndarray  # one past the last product of each category
    category_weight: np.ndarray  # popularity
    group_names: list[str]
    category_group: np.ndarray  # basket group index per category
    group_weight: np.ndarray

    def group_members(self, group: int) -> np.ndarray:
        return np.flatnonzero(self.category_group == group)


def _product_noun(subcategory: str) -> str:
    if subcategory in _IRREGULAR:
        return _IRREGULAR[subcategory]
    return subcategory[:-1] if subcategory.endswith("s") and not subcategory.endswith("ss") else subcategory


def build_catalogue(rng: np.random.Generator, history_start: dt.date) -> Catalogue:
    """A few hundred SKUs over 8 departments and 26 categories, prices log-uniform per subcategory."""
    rows = []
    for department, categories in vocab.CATALOGUE.items():
        for category, subcategories in categories.items():
            for subcategory, low, high in subcategories:
                count = int(rng.integers(4, 8))
                prices = np.exp(rng.uniform(np.log(low), np.log(high), count))
                for price in prices:
                    rows.append((department, category, subcategory, float(price)))
    n = len(rows)
    brand = np.asarray(vocab.BRANDS)[rng.integers(0, len(vocab.BRANDS), n)]
    adjective = np.asarray(vocab.PRODUCT_ADJECTIVES)[rng.integers(0, len(vocab.PRODUCT_ADJECTIVES), n)]
    number = rng.choice(np.arange(10_000, 100_000), n, replace=False)
    margin = rng.uniform(0.35, 0.7, n)
    launched = [history_start - dt.timedelta(days=int(d)) for d in rng.integers(30, 3000, n)]
    list_price = np.array([_retail_price(r[3]) for r in rows])
    frame = pl.DataFrame(
        {
            "sku": [f"{r[0][:3].upper()}-{num}" for r, num in zip(rows, number, strict=True)],
            "product_name": [f"{b} {a} {_product_noun(r[2])}" for r, b, a in zip(rows, brand, adjective, strict=True)],
            "department": [r[0] for r in rows],
            "category": [r[1] for r in rows],
            "subcategory": [r[2] for r in rows],
            "list_price": list_price,
            "unit_cost": np.round(list_price * margin, 2),
            "currency_code": ["EUR"] * n,
            "launched_on": launched,
        }
    )
    category_names = [c for categories in vocab.CATALOGUE.values() for c in categories]
    frame = frame.with_columns(
        pl.col("category").replace_strict({c: i for i, c in enumerate(category_names)}).alias("category_index")
    ).sort("category_index", "list_price", "sku")
    product_category = frame["category_index"].to_numpy()
    k = len(category_names)
    group_names = list(vocab.BASKET_GROUPS)
    category_group = np.empty(k, np.int64)
    for g, members in enumerate(vocab.BASKET_GROUPS.values()):
        for member in members:
            category_group[category_names.index(member)] = g
    category_weight = rng.gamma(4.0, 1.0, k)
    group_weight = np.bincount(category_group, weights=category_weight, minlength=len(group_names))
    return Catalogue(
        frame=frame.drop("category_index"),
        category_names=category_names,
        product_category=product_category,
        list_price=frame["list_price"].to_numpy(),
        category_start=np.searchsorted(product_category, np.arange(k), side="left"),
        category_end=np.searchsorted(product_category, np.arange(k), side="right"),
        category_weight=category_weight / category_weight.sum(),
        group_names=group_names,
        category_group=category_group,
        group_weight=group_weight / group_weight.sum(),
    )


def _retail_price(price: float) -> float:
    """Round to a shelf price: .99 endings, whole tens above 200."""
    if price >= 200:
        return float(round(price, -1) - 0.01)
    return float(np.floor(price) + 0.99)


def _draw_in_groups(rng: np.random.Generator, group: np.ndarray, catalogue: Catalogue) -> np.ndarray:
    """A category per row from its basket group, by popularity within the group."""
    tables, keys = [], []
    for g in range(len(catalogue.group_names)):
        members = catalogue.group_members(g)
        weight = catalogue.category_weight[members]
        keys.append(g + np.cumsum(weight) / weight.sum())
        tables.append(members)
    key = np.concatenate(keys)
    flat = np.concatenate(tables)
    position = np.searchsorted(key, group + rng.random(len(group)) * (1 - 1e-12), side="right")
    return flat[np.minimum(position, len(flat) - 1)]


def _draw_by_popularity(rng: np.random.Generator, n: int, weight: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(weight) / weight.sum()
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(weight) - 1)


@dataclass
class Lines:
    """Order lines: ``order`` indexes the orders passed to :func:`split_orders`."""

    order: np.ndarray
    line_no: np.ndarray
    product: np.ndarray
    quantity: np.ndarray
    unit_cents: np.ndarray
    line_cents: np.ndarray


def split_orders(
    rng: np.random.Generator,
    value_eur: np.ndarray,
    eur_per_unit: np.ndarray,
    favourite_group: np.ndarray,
    forced_category: np.ndarray,
    catalogue: Catalogue,
    params: Params,
    affinities: bool,
) -> tuple[np.ndarray, Lines]:
    """Split each order's value into lines that add up to it exactly, in the order's currency.

    Parameters
    ----------
    value_eur
        Gamma-Gamma order values in EUR.
    eur_per_unit
        Exchange rate of each order's currency in its month (1 for EUR).
    favourite_group
        Basket group the customer prefers (used only with affinities).
    forced_category
        Category of the first line (a campaign's offer), -1 for none.

    Returns
    -------
    total_cents, lines
        The order total in cents of its currency (``round(value_eur / eur_per_unit, 2)``) and the lines.
        Lines other than the largest one get a unit price of at most the list price of a product picked to
        fit; the largest line (quantity 1) takes the remaining cents, so the sum is exact.
    """
    n_orders = len(value_eur)
    total_cents = np.maximum(np.rint(value_eur / eur_per_unit * 100.0).astype(np.int64), 1)
    most = np.maximum(1, np.floor(value_eur / params.min_line_value_eur).astype(np.int64))
    n_lines = np.minimum(1 + rng.poisson(params.mean_extra_lines, n_orders), most)
    order = np.repeat(np.arange(n_orders), n_lines)
    starts = np.cumsum(n_lines) - n_lines
    line_no = np.arange(len(order)) - starts[order] + 1
    share = rng.gamma(3.0, 1.0, len(order))
    share /= np.add.reduceat(share, starts)[order]
    largest = share == np.maximum.reduceat(share, starts)[order]
    # keep one remainder line per order even if two shares tie
    running = np.cumsum(largest)
    largest &= running - np.concatenate([[0], running])[starts][order] == 1
    value = value_eur[order] * share

    if affinities:
        group = np.where(
            rng.random(n_orders) < params.favourite_group_prob,
            favourite_group,
            _draw_by_popularity(rng, n_orders, catalogue.group_weight),
        )
        forced_group = catalogue.category_group[np.maximum(forced_category, 0)]
        group = np.where(forced_category >= 0, forced_group, group)
        in_group = rng.random(len(order)) < params.in_group_line_prob
        category = np.where(
            in_group,
            _draw_in_groups(rng, group[order], catalogue),
            _draw_by_popularity(rng, len(order), catalogue.category_weight),
        )
    else:
        category = _draw_by_popularity(rng, len(order), catalogue.category_weight)
    first_line = line_no == 1
    category = np.where(first_line & (forced_category[order] >= 0), forced_category[order], category)

    product, quantity = _fit_products(category, value, largest, catalogue, affinities)

    rate = eur_per_unit[order]
    unit_cents = np.maximum(1, np.floor(value / rate * 100.0 / quantity)).astype(np.int64)
    line_cents = np.where(largest, 0, unit_cents * quantity)
    others = np.add.reduceat(line_cents, starts)
    remainder = total_cents - others
    if np.any(remainder < 1):
        raise AssertionError("an order's largest line would be empty")
    unit_cents = np.where(largest, remainder[order], unit_cents)
    line_cents = unit_cents * quantity
    return total_cents, Lines(order, line_no, product, quantity, unit_cents, line_cents)


class _PriceIndex:
    """Products sorted by (segment, list price): find the cheapest product of a segment covering a price."""

    def __init__(self, segment: np.ndarray, price: np.ndarray, n_segments: int):
        order = np.lexsort((price, segment))
        self.product = order
        self.key = segment[order] * 1e6 + price[order]
        self.end = np.searchsorted(segment[order], np.arange(n_segments), side="right")

    def covering(self, segment: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        end = self.end[segment]
        position = np.searchsorted(self.key, segment * 1e6 + target, side="left")
        return self.product[np.minimum(position, end - 1)], position < end


def _fit_products(
    category: np.ndarray, value: np.ndarray, single: np.ndarray, catalogue: Catalogue, affinities: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Pick a product and quantity per line so that the unit price is at most, and close to, the list price.

    A line buys ``q`` units of the cheapest product of its category whose list price covers ``value / q``,
    with ``q`` chosen for the best fit (a small penalty per extra unit); when even the dearest product is too
    cheap it buys as many of it as needed. A line whose fit stays poor (a cheap line in a dear category), and
    the line that takes the order's remainder (quantity 1), move to the cheapest product covering it within
    the category's basket group (affinities on) or the whole catalogue (off).
    """
    price = catalogue.list_price
    by_category = _PriceIndex(catalogue.product_category, price, len(catalogue.category_names))
    best_product = catalogue.category_end[category] - 1
    best_quantity = np.maximum(1, np.ceil(value / price[best_product])).astype(np.int64)
    best_score = np.where(
        single & (best_quantity > 1), -1.0, value / (best_quantity * price[best_product]) - 0.08 * (best_quantity - 1)
    )
    for quantity in range(1, 7):
        product, ok = by_category.covering(category, value / quantity)
        score = value / (quantity * price[product]) - 0.08 * (quantity - 1)
        better = ok & (score > best_score) & (~single | (quantity == 1))
        best_product = np.where(better, product, best_product)
        best_quantity = np.where(better, quantity, best_quantity)
        best_score = np.where(better, score, best_score)
    poor = (best_score < 0.6) | (single & (best_quantity > 1))
    if affinities:
        by_group = _PriceIndex(catalogue.category_group[catalogue.product_category], price, len(catalogue.group_names))
        product, ok = by_group.covering(catalogue.category_group[category], value)
        better = poor & ok & (value / price[product] > best_score)
        best_product = np.where(better, product, best_product)
        best_quantity = np.where(better, 1, best_quantity)
        best_score = np.where(better, value / price[product], best_score)
        poor &= ~better
    anywhere = _PriceIndex(np.zeros(len(price), np.int64), price, 1)
    product, ok = anywhere.covering(np.zeros(len(value), np.int64), value)
    better = poor & (~ok | (value / price[product] > best_score))
    best_product = np.where(better, product, best_product)
    best_quantity = np.where(better, 1, best_quantity)
    return best_product, best_quantity
