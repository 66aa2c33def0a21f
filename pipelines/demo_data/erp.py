"""The ERP's exports: customers, products, orders, order lines, returns and exchange rates.

These are the sales as the ERP's tables (``sales_shape="tables"``); :mod:`invoices` writes the same sales as one
invoice-line export instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from . import vocab
from .formats import prefixed_numbers, write_erp_csv
from .identities import mess_email, render_phones
from .params import SECONDS_PER_DAY
from .world import CURRENCIES, SALES_CHANNELS, STORE_CODES, World, local_datetimes

# Fashion and shoes come back far more often than coffee.
_RETURN_FACTOR = {"Fashion": 2.5, "Electronics": 1.2, "Sports": 1.0, "Home": 0.8, "Kitchen": 0.6, "Garden": 0.6,
                  "Beauty": 0.4, "Toys": 0.7}  # fmt: skip


def customer_numbers(n: int) -> pl.Series:
    return pl.select(prefixed_numbers("C", np.arange(1, n + 1), 7)).to_series()


def order_numbers(index: np.ndarray) -> pl.Series:
    return pl.select(prefixed_numbers("SO", np.asarray(index) + 1, 8)).to_series()


@dataclass
class Returns:
    """Returned lines (indexes into ``world.lines``), in the order the ERP numbers them."""

    line: np.ndarray
    returned_at: np.ndarray  # Unix seconds
    quantity: np.ndarray
    refund_cents: np.ndarray
    reason: np.ndarray


def draw_returns(world: World, rng: np.random.Generator) -> Returns:
    """Lines returned before the cutoff: at most once each, wholly or partly; order values stay as invoiced."""
    lines = world.lines
    factor_of_product = np.asarray([_RETURN_FACTOR[d] for d in world.catalogue.frame["department"]])
    factor = factor_of_product[lines.product]
    n = len(lines.order)
    returned = rng.random(n) < world.params.return_rate_per_line * factor
    delay = ((3 + rng.exponential(10.0, n)) * SECONDS_PER_DAY).astype(np.int64)
    returned_at = world.orders.t[lines.order] + delay
    partial = rng.integers(1, np.maximum(lines.quantity, 2))
    quantity = np.where((lines.quantity > 1) & (rng.random(n) < 0.5), partial, lines.quantity)
    reason = np.asarray(vocab.RETURN_REASONS)[rng.integers(0, len(vocab.RETURN_REASONS), n)]
    keep = np.flatnonzero(returned & (returned_at < world.clock.cutoff))
    keep = keep[np.argsort(returned_at[keep], kind="stable")]
    return Returns(keep, returned_at[keep], quantity[keep], quantity[keep] * lines.unit_cents[keep], reason[keep])


def write_erp(world: World, out: Path, returns: Returns) -> dict[str, int]:
    """Write the sales tables ``erp/{customers,products,orders,order_lines,returns}.csv``; return rows per file."""
    rng = world.rngs["erp"]
    folder = out / "erp"
    rows: dict[str, int] = {}
    n = world.customers
    people = world.people.frame[:n]
    country = people["country"].to_numpy()
    customer_no = customer_numbers(n)
    email = mess_email(rng, people["email"], mixed=0.1, spaces=0.0, placeholder=0.0)
    kind = np.asarray(["national", "international", "empty"])[np.searchsorted([0.6, 0.85], rng.random(n), "right")]
    phone = render_phones(rng, people["phone_nsn"], country, kind)
    registered_early = rng.random(n) < 0.3
    created = world.buyers.t0 - np.where(registered_early, rng.exponential(30.0, n) * SECONDS_PER_DAY, 0).astype(
        np.int64
    )
    customers = pl.DataFrame(
        {
            "customer_no": customer_no,
            "first_name": people["first_name"],
            "last_name": people["last_name"],
            "email": email,
            "phone": phone.replace("", None),
            "street": people["street"],
            "postcode": people["postcode"],
            "city": people["city"],
            "country_code": people["country"],
            "created_on": local_datetimes(created, world.clock.timezone).dt.date(),
            "currency_code": people["country"].replace_strict(vocab.CURRENCY_BY_COUNTRY, return_dtype=pl.String),
        }
    )
    rows["erp/customers.csv"] = write_erp_csv(customers, folder / "customers.csv")

    catalogue = world.catalogue.frame
    rows["erp/products.csv"] = write_erp_csv(catalogue.sort("sku"), folder / "products.csv")

    orders = world.orders
    h = orders.n_history
    order_no = order_numbers(np.arange(h))
    frame = pl.DataFrame(
        {
            "order_no": order_no,
            "customer_no": customer_no.gather(orders.person[:h]),
            "ordered_at": local_datetimes(orders.t[:h], world.clock.timezone),
            "sales_channel": pl.Series(SALES_CHANNELS).gather(orders.channel[:h]),
            "store_code": pl.Series(STORE_CODES).gather(np.maximum(orders.store[:h], 0)),
            "currency_code": pl.Series(CURRENCIES).gather(orders.currency[:h]),
            "order_status": "invoiced",
        }
    )
    frame = frame.with_columns(pl.when(pl.Series(orders.store[:h] >= 0)).then(pl.col("store_code")))
    rows["erp/orders.csv"] = write_erp_csv(frame, folder / "orders.csv")
    del frame

    lines = world.lines
    sku = catalogue["sku"]
    frame = pl.DataFrame(
        {
            "order_no": order_no.gather(lines.order),
            "line_no": lines.line_no,
            "sku": sku.gather(lines.product),
            "quantity": lines.quantity,
            "unit_price": lines.unit_cents / 100.0,
            "line_amount": lines.line_cents / 100.0,
        }
    )
    rows["erp/order_lines.csv"] = write_erp_csv(frame, folder / "order_lines.csv")
    del frame

    frame = pl.DataFrame(
        {
            "return_no": pl.select(prefixed_numbers("RT", np.arange(1, len(returns.line) + 1), 7)).to_series(),
            "order_no": order_no.gather(lines.order[returns.line]),
            "line_no": lines.line_no[returns.line],
            "sku": sku.gather(lines.product[returns.line]),
            "returned_on": local_datetimes(returns.returned_at, world.clock.timezone).dt.date(),
            "quantity": returns.quantity,
            "refund_amount": returns.refund_cents / 100.0,
            "reason": returns.reason,
        }
    )
    rows["erp/returns.csv"] = write_erp_csv(frame, folder / "returns.csv")
    return rows


def write_exchange_rates(world: World, out: Path) -> dict[str, int]:
    """Write ``erp/exchange_rates.csv``, the months before the cutoff (not sales: the same in either shape)."""
    published = world.rates.filter(pl.col("rate_month") < world.clock.as_of).select(
        "currency_code", "rate_month", "eur_per_unit"
    )
    return {"erp/exchange_rates.csv": write_erp_csv(published, out / "erp" / "exchange_rates.csv", decimals=6)}


def customer_identity(world: World) -> pl.DataFrame:
    """The identity truth of the ERP's customers: each customer number is one buyer."""
    return pl.DataFrame(
        {
            "source_system": "erp",
            "source_table": "customers",
            "source_record_id": customer_numbers(world.customers),
            "person_id": world.people.frame["person_id"][: world.customers],
        }
    )
