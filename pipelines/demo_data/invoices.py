"""The ERP's sales as one invoice-line export (``sales_shape="invoice-lines"``): what a company delivers when its
only export is its invoice lines, in place of the ERP's customers, products, orders, order lines and returns.

One row per invoice line, in the ERP's dialect. A return is a credit note, a document of its own in its own number
series (``CN``) with a negative quantity and amount, dated when the goods came back and naming neither the invoice
nor the line it credits, as most ERPs' line reports write them. Rows come in order of their document's
date-time, as a report of a period's invoice lines lists them. The sales are exactly those of the tables shape:
invoice ``INV`` + the order's 8 digits (``SO`` in the tables shape), credit note ``CN`` + the return's 7 digits
(``RT``), the same customer numbers, lines, quantities, prices and refunds to the cent.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from .erp import Returns, customer_numbers
from .formats import prefixed_numbers, write_erp_csv
from .world import CURRENCIES, SALES_CHANNELS, STORE_CODES, World, local_datetimes

FILE = "sales/invoice_lines.csv"
INVOICE_PREFIX = "INV"
CREDIT_NOTE_PREFIX = "CN"
# The report's columns and their headers (docs/demo_data.md); the built-in contract sales/invoice_lines reads them.
HEADERS = {
    "invoice_no": "Invoice No",
    "invoice_line": "Line",
    "invoiced_at": "Invoice Date",
    "customer_no": "Customer No",
    "country_code": "Country",
    "sku": "Item No",
    "description": "Description",
    "category": "Item Category",
    "quantity": "Quantity",
    "unit_price": "Unit Price",
    "line_amount": "Amount",
    "currency": "Currency",
    "sales_channel": "Channel",
    "store_code": "Store",
}
# Rows rendered and written at a time: the memory the file takes does not grow with the number of customers.
CHUNK_LINES = 500_000


def write_invoice_lines(world: World, out: Path, returns: Returns) -> dict[str, int]:
    """Write ``sales/invoice_lines.csv`` chunk by chunk; return its rows (invoice lines plus credit-note lines)."""
    return {FILE: write_erp_csv(_chunks(world, returns), out / FILE)}


def _chunks(world: World, returns: Returns) -> Iterator[pl.DataFrame]:
    """The file's rows by consecutive runs of orders, each with the credit notes dated before the next run."""
    orders, lines = world.orders, world.lines
    h = orders.n_history
    first_line = np.searchsorted(lines.order, np.arange(h + 1))  # lines are grouped by order, in order
    cuts = np.searchsorted(first_line, np.arange(0, len(lines.order), CHUNK_LINES), side="right") - 1
    bounds = np.unique(np.concatenate([cuts, [0, h]]))
    context = _Context.of(world)
    for lo, hi in itertools.pairwise(bounds):
        # credit notes from this run's first order up to the next run's: each comes after its sale
        since = 0 if lo == 0 else np.searchsorted(returns.returned_at, orders.t[lo], side="left")
        until = len(returns.line) if hi == h else np.searchsorted(returns.returned_at, orders.t[hi], side="left")
        invoices = _invoice_rows(world, context, slice(first_line[lo], first_line[hi]))
        credits = _credit_note_rows(world, context, returns, slice(since, until))
        # stable: invoices before credit notes of the same second, each series in its own order
        yield pl.concat([invoices, credits]).sort("_at", "_credit", maintain_order=True).drop("_at", "_credit")


@dataclass(frozen=True)
class _Context:
    """Per-customer and per-product text, rendered once and gathered by every chunk."""

    customer_no: pl.Series
    country: pl.Series
    sku: pl.Series
    description: pl.Series
    category: pl.Series

    @classmethod
    def of(cls, world: World) -> _Context:
        catalogue = world.catalogue.frame
        return cls(
            customer_numbers(world.customers),
            world.people.frame["country"][: world.customers],
            catalogue["sku"],
            catalogue["product_name"],
            catalogue["category"],
        )


def _rows(
    world: World,
    context: _Context,
    at: np.ndarray,
    number: pl.Series,
    line: np.ndarray,
    order: np.ndarray,
    product: np.ndarray,
    quantity: np.ndarray,
    unit_cents: np.ndarray,
    amount_cents: np.ndarray,
    credit: bool,
) -> pl.DataFrame:
    """Rows of the report; ``order`` gives each row its customer, currency, channel and store."""
    orders = world.orders
    person, store = orders.person[order], orders.store[order]
    columns = {
        "invoice_no": number,
        "invoice_line": pl.Series(line, dtype=pl.Int64),
        "invoiced_at": local_datetimes(at, world.clock.timezone),
        "customer_no": context.customer_no.gather(person),
        "country_code": context.country.gather(person),
        "sku": context.sku.gather(product),
        "description": context.description.gather(product),
        "category": context.category.gather(product),
        "quantity": pl.Series(quantity, dtype=pl.Int64),
        "unit_price": pl.Series(unit_cents / 100.0),
        "line_amount": pl.Series(amount_cents / 100.0),
        "currency": pl.Series(CURRENCIES).gather(orders.currency[order]),
        "sales_channel": pl.Series(SALES_CHANNELS).gather(orders.channel[order]),
        "store_code": pl.Series(STORE_CODES).gather(np.maximum(store, 0)),
    }
    frame = pl.DataFrame(columns).with_columns(pl.when(pl.Series(store >= 0)).then(pl.col("store_code")))
    return frame.rename(HEADERS).with_columns(_at=pl.Series(at, dtype=pl.Int64), _credit=pl.lit(credit))


def _invoice_rows(world: World, context: _Context, lines_slice: slice) -> pl.DataFrame:
    lines = world.lines
    order = lines.order[lines_slice]
    number = pl.select(prefixed_numbers(INVOICE_PREFIX, order + 1, 8)).to_series()
    return _rows(
        world, context, world.orders.t[order], number, lines.line_no[lines_slice], order,
        lines.product[lines_slice], lines.quantity[lines_slice], lines.unit_cents[lines_slice],
        lines.line_cents[lines_slice], credit=False,
    )  # fmt: skip


def _credit_note_rows(world: World, context: _Context, returns: Returns, returns_slice: slice) -> pl.DataFrame:
    """One credit note per returned line (its only line): minus the units returned and the refund."""
    lines = world.lines
    returned = returns.line[returns_slice]
    index = np.arange(returns_slice.start, returns_slice.stop)
    number = pl.select(prefixed_numbers(CREDIT_NOTE_PREFIX, index + 1, 7)).to_series()
    return _rows(
        world, context, returns.returned_at[returns_slice], number, np.ones(len(returned), np.int64),
        lines.order[returned], lines.product[returned], -returns.quantity[returns_slice], lines.unit_cents[returned],
        -returns.refund_cents[returns_slice], credit=True,
    )  # fmt: skip
