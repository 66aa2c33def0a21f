"""The operational CRM's exports (SuiteCRM style): contacts and support cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from . import vocab
from .erp import customer_numbers
from .formats import write_crm_csv
from .identities import uuid4_strings
from .params import SECONDS_PER_DAY
from .world import World, local_datetimes

CRM_DATETIME = "%m/%d/%Y %I:%M %P"


def crm_datetimes(seconds: np.ndarray, timezone: str) -> pl.Series:
    """SuiteCRM's user-format datetimes in local time: ``MM/DD/YYYY hh:mm am``."""
    return local_datetimes(seconds, timezone).dt.strftime(CRM_DATETIME)


def write_crm(world: World, out: Path) -> tuple[dict[str, int], pl.DataFrame, pl.DataFrame]:
    """Write ``crm/contacts.csv`` and ``crm/cases.csv``.

    Returns rows per file, the identity rows of the contacts, and the cases (person, opened, category) the
    call centre hears about.
    """
    rng = world.rngs["crm"]
    folder = out / "crm"
    rows: dict[str, int] = {}
    contacts = world.contacts.frame
    tz = world.clock.timezone
    customer_no = customer_numbers(world.customers)
    person = contacts["person"].to_numpy()
    erp_no = np.where(contacts["erp_linked"].to_numpy(), person, -1)
    erp_text = pl.select(
        pl.when(pl.Series(erp_no) >= 0).then(customer_no.gather(np.maximum(erp_no, 0))).otherwise(pl.lit(""))
    ).to_series()
    order = np.argsort(contacts["created"].to_numpy(), kind="stable")
    frame = pl.DataFrame(
        {
            "ID": contacts["contact_id"],
            "ERP Customer No": erp_text,
            "First Name": contacts["first_name"],
            "Last Name": contacts["last_name"],
            "Email Address": contacts["email"],
            "Mobile Phone": contacts["mobile"],
            "Office Phone": contacts["office"],
            "Primary Address Postalcode": contacts["postcode"],
            "Primary Address City": contacts["city"],
            "Primary Address Country": contacts["country_label"],
            "Lead Source": contacts["lead_source"],
            "Date Created": crm_datetimes(contacts["created"].to_numpy(), tz),
            "Date Modified": crm_datetimes(contacts["modified"].to_numpy(), tz),
        }
    )[order]
    rows["crm/contacts.csv"] = write_crm_csv(frame, folder / "contacts.csv")
    person_ids = world.people.frame["person_id"]
    identity = pl.DataFrame(
        {
            "source_system": "crm",
            "source_table": "contacts",
            "source_record_id": contacts["contact_id"],
            "person_id": person_ids.gather(person),
        }
    )

    orders = world.orders
    h = orders.n_history
    opened = orders.case_open[:h]
    with_case = np.flatnonzero(opened < world.clock.cutoff)
    with_case = with_case[np.argsort(opened[with_case], kind="stable")]
    m = len(with_case)
    opened = opened[with_case]
    closed_at = orders.case_close[with_case]
    is_closed = closed_at < world.clock.cutoff
    shares = np.asarray(vocab.CASE_CATEGORY_SHARES)
    category = np.searchsorted(np.cumsum(shares) / shares.sum(), rng.random(m), side="right")
    category_name = np.asarray(vocab.CASE_CATEGORIES)[category]
    subject = np.empty(m, dtype=object)
    for name, options in vocab.CASE_SUBJECTS.items():
        hit = category_name == name
        subject[hit] = np.asarray(options)[rng.integers(0, len(options), hit.sum())]
    lines = world.lines
    first_line = np.searchsorted(lines.order, with_case)
    n_lines = np.searchsorted(lines.order, with_case, side="right") - first_line
    picked = first_line + (rng.random(m) * n_lines).astype(np.int64)
    sku = world.catalogue.frame["sku"].gather(lines.product[picked])
    about_product = np.isin(category_name, ["Product defect", "Returns"])
    answered = is_closed & (rng.random(m) < world.params.case_answer_rate)
    status = np.where(is_closed, "Closed", np.where(opened < world.clock.cutoff - SECONDS_PER_DAY, "Assigned", "New"))
    priority = np.asarray(["High", "Medium", "Low"])[np.searchsorted([0.2, 0.7], rng.random(m), side="right")]
    contact_ids = contacts["contact_id"]
    case_person = orders.person[with_case]
    frame = pl.DataFrame(
        {
            "Case Number": pl.Series(np.arange(1001, 1001 + m)).cast(pl.String),
            "ID": uuid4_strings(rng, m),
            "Contact ID": contact_ids.gather(world.contacts.primary[case_person]),
            "Subject": subject.astype(str),
            "Category": category_name,
            "Product SKU": pl.select(pl.when(pl.Series(about_product)).then(sku).otherwise(pl.lit(""))).to_series(),
            "Priority": priority,
            "Status": status,
            "Date Created": crm_datetimes(opened, world.clock.timezone),
            "Date Closed": pl.select(
                pl.when(pl.Series(is_closed))
                .then(crm_datetimes(np.where(is_closed, closed_at, opened), world.clock.timezone))
                .otherwise(pl.lit(""))
            ).to_series(),
            "Satisfaction": pl.select(
                pl.when(pl.Series(answered))
                .then(pl.Series(orders.satisfaction[with_case]).cast(pl.String))
                .otherwise(pl.lit(""))
            ).to_series(),
        }
    )
    rows["crm/cases.csv"] = write_crm_csv(frame, folder / "cases.csv")
    cases = pl.DataFrame({"person": case_person, "opened": opened, "category": category_name})
    return rows, identity, cases
