"""Synthetic retailer: simulate customers with known latent behaviour and write the exports of its systems.

``generate`` writes the landing files (ERP, CRM, call centre, marketing tool, web analytics) as each system
would, and keeps the truth (latent parameters, identities, the 6 months after the cutoff) apart. The ERP's sales
come as its tables or as one invoice-line export (``sales_shape``), the same sales either way. The file contract
is docs/demo_data.md.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from .callcenter import write_calls
from .crm import write_crm
from .erp import customer_identity, draw_returns, write_erp, write_exchange_rates
from .invoices import write_invoice_lines
from .marketing import write_marketing
from .params import EFFECTS, Params
from .truth import write_truth
from .web import write_web
from .world import build_world

__all__ = ["EFFECTS", "SALES_SHAPES", "GenerationSummary", "Params", "generate"]

# How the ERP's sales are exported, and the files each shape writes (a file of the other shape left in the
# landing folder by an earlier run is removed: both would feed the same canonical tables).
SALES_FILES = {
    "tables": ("erp/customers.csv", "erp/products.csv", "erp/orders.csv", "erp/order_lines.csv", "erp/returns.csv"),
    "invoice-lines": ("sales/invoice_lines.csv",),
}
SALES_SHAPES = tuple(SALES_FILES)


@dataclass(frozen=True)
class GenerationSummary:
    """What ``generate`` wrote: rows per file, keyed ``<system>/<file>`` (landing) or ``truth/<file>``."""

    out: Path
    truth: Path
    rows: dict[str, int] = field(default_factory=dict)

    def path(self, key: str) -> Path:
        """Where the file ``key`` of ``rows`` is."""
        return self.truth / key.removeprefix("truth/") if key.startswith("truth/") else self.out / key

    @property
    def paths(self) -> dict[str, Path]:
        """Every file written, by the key used in ``rows``."""
        return {key: self.path(key) for key in self.rows}


def generate(
    customers: int,
    seed: int,
    as_of: dt.date,
    out: Path,
    truth: Path | None = None,
    effects: frozenset[str] = EFFECTS,
    sales_shape: str = "tables",
) -> GenerationSummary:
    """Simulate the retailer and write its exports to ``out`` and the truth to ``truth``.

    Parameters
    ----------
    customers
        Number of people who bought at least once before ``as_of`` (about 10% more exist as CRM leads).
    seed
        Seed of the only random source (a ``numpy.random.SeedSequence``): same arguments, same bytes.
    as_of
        Cutoff date: only what happened strictly before it is exported; the 6 months after go to the truth.
    out
        Landing folder, one sub-folder per system.
    truth
        Truth folder, ``out.parent / "truth"`` by default.
    effects
        Subset of ``EFFECTS`` to simulate; ``frozenset()`` gives pure BG/NBD (Fader, Hardie & Lee 2005)
        purchase timing and Gamma-Gamma (Colombo & Jiang 1999) order values.
    sales_shape
        ``"tables"``: the ERP's customers, products, orders, order lines and returns, one file each;
        ``"invoice-lines"``: the same sales as one invoice-line export, ``sales/invoice_lines.csv``, credit notes
        included (the minimal path: a company whose only export is its invoice lines). Every other file, the
        exchange rates and the truth are the same bytes in both shapes.
    """
    unknown = set(effects) - EFFECTS
    if unknown:
        raise ValueError(f"unknown effects {sorted(unknown)}; choose from {sorted(EFFECTS)}")
    if sales_shape not in SALES_SHAPES:
        raise ValueError(f"unknown sales_shape {sales_shape!r}; choose from {list(SALES_SHAPES)}")
    if customers < 10:
        raise ValueError(f"customers must be at least 10, got {customers}")
    out = Path(out)
    truth = Path(truth) if truth is not None else out.parent / "truth"
    for stale in (out / "web" / "events").glob("events_*.parquet"):
        stale.unlink()  # months of an earlier run with another cutoff must not linger
    for other_shape in set(SALES_SHAPES) - {sales_shape}:
        for name in SALES_FILES[other_shape]:
            (out / name).unlink(missing_ok=True)
    world = build_world(customers, seed, as_of, frozenset(effects), Params())
    returns = draw_returns(world, world.rngs["erp"])
    write_sales = write_erp if sales_shape == "tables" else write_invoice_lines
    rows = write_sales(world, out, returns) | write_exchange_rates(world, out)
    erp_identity = customer_identity(world)
    crm_rows, crm_identity, cases = write_crm(world, out)
    call_rows, call_identity = write_calls(world, out, cases, returns)
    web_rows, web_identity = write_web(world, out)
    rows |= crm_rows | call_rows | write_marketing(world, out) | web_rows
    rows |= write_truth(world, truth, [erp_identity, crm_identity, call_identity, web_identity])
    return GenerationSummary(out=out, truth=truth, rows=rows)
