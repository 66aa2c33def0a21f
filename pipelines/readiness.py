"""Data readiness: which capabilities the data supports, and in plain words why not where it does not.

As Dynamics 365 Customer Insights reports data readiness, `crm doctor` says, for the landing zone as it is, which
contracts matched which files, the rows and date range of each table, and for every capability of the warehouse
(the ``CAPABILITIES`` registry below) whether it is ready, partial or not ready and why: "churn needs two 90-day
windows of history before the as-of date, this data has 70 days".

Three layers, so each can be used alone:

- ``collect_facts`` reads figures from the raw tables of any DuckDB connection (schema ``raw``, as the ingest
  writes them): the working warehouse opened read-only, or a scratch database loaded from the landing zone;
- ``assess`` is a pure function from those facts and the settings to one verdict per capability;
- ``landing_zone_report`` loads the landing zone's files through the contracts into a temporary DuckDB (never the
  working warehouse) and reports sources, tables and verdicts together.

``readiness(connection, as_of, settings)`` (facts + verdicts) is what the ML assets and dashboards can call.
docs/readiness.md lists the capabilities and what each needs.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb

from pipelines.settings import Settings
from pipelines.sql import identifier, qualified

DAYS_PER_MONTH = 365.25 / 12  # as models_ml.clv: months of the settings become days the same way
READY, PARTIAL, NOT_READY = "ready", "partial", "not ready"
# The least data with which a capability's output means something (docs/readiness.md says why each).
MIN_RFM_BUYERS = 5  # quintile scores need at least one customer per quintile
MIN_SEGMENT_BUYERS = 50  # k-means over fewer customers describes individuals, not segments
MIN_CLV_REPEAT_BUYERS = 20  # BG/NBD learns the purchase rate from customers who came back
MIN_BASKETS = 20  # orders with two or more distinct products, for product pairs to count more than once
TIER_HISTORY_DAYS = 365  # tiers rank trailing 12-month spend
STALE_DAYS = 7  # exports whose last order is this many days before the as-of date are worth a word
# The column that dates a canonical table's rows (a table not listed is dated by its first date column).
DATE_COLUMNS = {
    "erp__orders": "ordered_at",
    "erp__customers": "created_on",
    "erp__products": "launched_on",
    "erp__returns": "returned_on",
    "erp__exchange_rates": "rate_month",
    "crm__contacts": "created_at",
    "crm__cases": "opened_at",
    "callcenter__calls": "started_at",
    "marketing__campaigns": "starts_on",
    "marketing__campaign_members": "assigned_at",
    "marketing__sends": "sent_at",
    "marketing__responses": "responded_at",
    "marketing__consents": "updated_at",
    "web__sessions": "started_at",
    "web__events": "event_at",
}
# The systems whose records identity resolution matches with ERP customers, by the table that holds them.
PERSON_RECORDS = {
    "crm": "crm__contacts",
    "callcenter": "callcenter__calls",
    "web": "web__sessions",
    "marketing": "marketing__campaign_members",
}


# --- facts ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TableFacts:
    rows: int
    first_date: date | None = None
    last_date: date | None = None
    date_column: str | None = None
    rows_as_of: int | None = None  # dated before the as-of date (or undated): what a run as of it uses

    @property
    def usable_rows(self) -> int:
        return self.rows if self.rows_as_of is None else self.rows_as_of


@dataclasses.dataclass(frozen=True)
class CutoffFacts:
    """Customers who had bought before a cutoff, and how many of them bought again in the window after it."""

    cutoff: date
    customers: int
    returned: int


@dataclasses.dataclass(frozen=True)
class DataFacts:
    """What the raw tables hold, as of a cutoff: the figures every verdict is decided on."""

    as_of: date
    tables: Mapping[str, TableFacts]
    orders: int = 0  # placed before as_of
    order_lines: int = 0  # of those orders
    orders_after_as_of: int = 0
    buyers: int = 0
    repeat_buyers: int = 0  # bought on two or more days
    first_order: date | None = None
    last_order: date | None = None
    multi_product_orders: int = 0
    channels: tuple[str, ...] = ()
    control_members: int = 0
    clv_calibration: CutoffFacts | None = None  # returned: customers with two or more purchase days before it
    churn_anchor: date | None = None
    churn_cutoffs: tuple[CutoffFacts, ...] = ()  # training, test

    def rows(self, table: str) -> int:
        """Rows of a table that a run as of ``as_of`` uses (none when the table is absent)."""
        facts = self.tables.get(table)
        return facts.usable_rows if facts else 0

    @property
    def history_days(self) -> int:
        """Days from the first order to the as-of date (or to the day after the last order, if earlier)."""
        if self.first_order is None:
            return 0
        end = min(self.as_of, self.last_order + timedelta(days=1)) if self.last_order else self.as_of
        return (end - self.first_order).days


def _raw_columns(connection: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    columns: dict[str, dict[str, str]] = {}
    for table, column, kind in connection.execute(
        "select table_name, column_name, data_type from information_schema.columns where table_schema = 'raw' "
        "order by table_name, ordinal_position"
    ).fetchall():
        columns.setdefault(table, {})[column] = kind
    return columns


def _table_facts(
    connection: duckdb.DuckDBPyConnection, table: str, columns: Mapping[str, Mapping[str, str]], as_of: date
) -> TableFacts:
    if table == "erp__order_lines" and _has(columns, table, "order_no") and _has(columns, "erp__orders", "order_no"):
        # lines carry no date of their own: they are dated by their orders
        source = "raw.erp__order_lines as lines left join raw.erp__orders as orders using (order_no)"
        dated, shown = "orders.ordered_at", "erp__orders.ordered_at"
    else:
        source, shown = qualified("raw", table), DATE_COLUMNS.get(table)
        if shown not in columns[table]:
            shown = next((name for name, kind in columns[table].items() if kind in ("DATE", "TIMESTAMP")), None)
        dated = identifier(shown) if shown else None
    if dated is None:
        return TableFacts(connection.execute(f"select count(*) from {source}").fetchone()[0])
    rows, first, last, usable = connection.execute(
        f"""select count(*), min({dated})::date, max({dated})::date,
            count(*) filter (where {dated} is null or {dated}::date < $as_of)
        from {source}""",
        {"as_of": as_of},
    ).fetchone()
    return TableFacts(rows, first, last, shown, usable)


def _has(columns: Mapping[str, Mapping[str, str]], table: str, *needed: str) -> bool:
    return table in columns and all(column in columns[table] for column in needed)


def _sales_facts(connection: duckdb.DuckDBPyConnection, as_of: date, settings: Settings) -> dict[str, Any]:
    """Orders before the cutoff, per customer and per purchase day: what the scores are computed from."""
    connection.execute(
        """create or replace temp table _purchases as
        select order_no, customer_no, ordered_at::date as order_date from raw.erp__orders
        where ordered_at < $as_of and customer_no is not null""",
        {"as_of": as_of},
    )
    orders, buyers, first, last = connection.execute(
        "select count(*), count(distinct customer_no), min(order_date), max(order_date) from _purchases"
    ).fetchone()
    after = connection.execute("select count(*) from raw.erp__orders where ordered_at >= $as_of", {"as_of": as_of})
    facts: dict[str, Any] = {
        "orders": orders,
        "buyers": buyers,
        "first_order": first,
        "last_order": last,
        "orders_after_as_of": after.fetchone()[0],
        "repeat_buyers": _repeat_buyers(connection, as_of),
    }
    holdout_days = round(settings.clv_holdout_months * DAYS_PER_MONTH)
    calibration = as_of - timedelta(days=holdout_days)
    facts["clv_calibration"] = CutoffFacts(
        calibration,
        connection.execute(
            "select count(distinct customer_no) from _purchases where order_date < $c", {"c": calibration}
        ).fetchone()[0],
        _repeat_buyers(connection, calibration),
    )
    # As the churn model does: labels need the window after a cutoff to have happened, so the cutoffs step back
    # from the day after the last order when the exports stop before the as-of date.
    window = settings.churn_window_days
    anchor = min(as_of, last + timedelta(days=1)) if last else as_of
    facts["churn_anchor"] = anchor
    facts["churn_cutoffs"] = tuple(
        _churn_cutoff(connection, anchor - timedelta(days=steps * window), window) for steps in (2, 1)
    )
    return facts


def _repeat_buyers(connection: duckdb.DuckDBPyConnection, cutoff: date) -> int:
    return connection.execute(
        """select count(*) from (select customer_no from _purchases where order_date < $cutoff
        group by customer_no having count(distinct order_date) >= 2)""",
        {"cutoff": cutoff},
    ).fetchone()[0]


def _churn_cutoff(connection: duckdb.DuckDBPyConnection, cutoff: date, window: int) -> CutoffFacts:
    customers, returned = connection.execute(
        """with before as (select distinct customer_no from _purchases where order_date < $cutoff),
        after as (select distinct customer_no from _purchases
                  where order_date >= $cutoff and order_date < $cutoff + to_days($window))
        select count(*), count(after.customer_no) from before left join after using (customer_no)""",
        {"cutoff": cutoff, "window": window},
    ).fetchone()
    return CutoffFacts(cutoff, customers, returned)


def _lines_facts(connection: duckdb.DuckDBPyConnection) -> dict[str, int]:
    lines, baskets = connection.execute(
        """with lines as (
            select lines.order_no, lines.sku from raw.erp__order_lines as lines
            where lines.order_no in (select order_no from _purchases)
        )
        select (select count(*) from lines),
            (select count(*) from (select order_no from lines group by order_no having count(distinct sku) >= 2))"""
    ).fetchone()
    return {"order_lines": lines, "multi_product_orders": baskets}


def _values(connection: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any] | None = None) -> set[str]:
    """The distinct non-empty values of a one-column query (made distinct in DuckDB: the query may be every send)."""
    return {row[0] for row in connection.execute(f"select distinct * from ({sql})", params or {}).fetchall() if row[0]}


def _channels(
    connection: duckdb.DuckDBPyConnection,
    columns: Mapping[str, Mapping[str, str]],
    tables: Mapping[str, TableFacts],
    as_of: date,
    sales: bool,
) -> tuple[str, ...]:
    """The channels customers interacted through before ``as_of``: where they ordered, were sent campaigns to,
    called and browsed."""
    found: set[str] = set()
    if sales and _has(columns, "erp__orders", "sales_channel"):
        found |= _values(
            connection,
            "select lower(trim(sales_channel)) from raw.erp__orders "
            "where order_no in (select order_no from _purchases)",
        )
    if _has(columns, "marketing__sends", "channel", "sent_at"):
        found |= _values(
            connection, "select lower(trim(channel)) from raw.marketing__sends where sent_at < $as_of", {"as_of": as_of}
        )
    for table, channel in (("callcenter__calls", "phone"), ("web__sessions", "web"), ("web__events", "web")):
        if table in tables and tables[table].usable_rows:
            found.add(channel)
    return tuple(sorted(found))


def collect_facts(connection: duckdb.DuckDBPyConnection, as_of: date, settings: Settings) -> DataFacts:
    """The figures of the raw tables (schema ``raw``) that the verdicts are decided on. Reads only."""
    columns = _raw_columns(connection)
    tables = {table: _table_facts(connection, table, columns, as_of) for table in columns}
    facts: dict[str, Any] = {}
    sales = _has(columns, "erp__orders", "order_no", "customer_no", "ordered_at")
    if sales:
        facts |= _sales_facts(connection, as_of, settings)
        if _has(columns, "erp__order_lines", "order_no", "sku"):
            facts |= _lines_facts(connection)
    facts["channels"] = _channels(connection, columns, tables, as_of, sales)
    if _has(columns, "marketing__campaign_members", "member_group"):
        facts["control_members"] = connection.execute(
            "select count(*) from raw.marketing__campaign_members where lower(trim(member_group)) = 'control'"
        ).fetchone()[0]
    if sales:
        connection.execute("drop table _purchases")
    return DataFacts(as_of=as_of, tables=tables, **facts)


# --- the registry -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Verdict:
    capability: str
    name: str
    status: str
    reason: str


Judge = Callable[[DataFacts, Settings], tuple[str, str]]


@dataclasses.dataclass(frozen=True)
class Capability:
    """A capability of the warehouse, the least data it needs (in words), and the judge of a data set."""

    key: str
    name: str
    needs: str
    judge: Judge


def _span(facts: DataFacts) -> str:
    return f"{facts.first_order} to {facts.last_order}"


def _no_sales(facts: DataFacts) -> str | None:
    if facts.orders == 0:
        after = f" ({facts.orders_after_as_of:,} orders are on or after it)" if facts.orders_after_as_of else ""
        return f"needs sales (erp/orders and erp/order_lines); there are no orders before {facts.as_of}{after}"
    if facts.order_lines == 0:
        return f"needs order lines (erp/order_lines) for the {facts.orders:,} orders; none were found"
    return None


def _star_schema(facts: DataFacts, _settings: Settings) -> tuple[str, str]:
    if missing := _no_sales(facts):
        return NOT_READY, missing
    figures = (
        f"{facts.orders:,} orders with {facts.order_lines:,} lines from {facts.buyers:,} customers ({_span(facts)})"
    )
    notes = [
        note
        for table, note in (
            ("erp__customers", "without customer details (erp/customers) customers are known by their orders only"),
            ("erp__products", "without the product catalogue (erp/products) products are 'Unclassified'"),
        )
        if not facts.rows(table)
    ]
    if notes:
        return PARTIAL, f"{figures}; {'; '.join(notes)}"
    return READY, figures


def _rfm(facts: DataFacts, settings: Settings) -> tuple[str, str]:
    if missing := _no_sales(facts):
        return NOT_READY, missing
    if facts.buyers < MIN_RFM_BUYERS:
        return (
            NOT_READY,
            f"RFM quintiles need at least {MIN_RFM_BUYERS} customers with orders; there are {facts.buyers}",
        )
    return READY, f"{facts.buyers:,} customers with orders, scored on the last {settings.rfm_window_days} days"


def _tiers(facts: DataFacts, _settings: Settings) -> tuple[str, str]:
    if missing := _no_sales(facts):
        return NOT_READY, missing
    if facts.history_days < TIER_HISTORY_DAYS:
        return PARTIAL, (
            f"tiers rank trailing 12-month spend; this data has {facts.history_days} days of sales "
            f"(from {facts.first_order}), so spend and tiers are understated"
        )
    return READY, f"12 months of sales before {facts.as_of} ({facts.history_days:,} days in all)"


def _clv(facts: DataFacts, settings: Settings) -> tuple[str, str]:
    if missing := _no_sales(facts):
        return NOT_READY, missing
    calibration, months = facts.clv_calibration, settings.clv_holdout_months
    if calibration is None or calibration.customers == 0:
        cutoff = calibration.cutoff if calibration else facts.as_of
        return NOT_READY, (
            f"CLV fits on the sales before {cutoff} and checks itself on the {months} months after "
            f"(the clv_holdout_months setting); this data starts {facts.first_order} "
            f"({facts.history_days} days of history)"
        )
    if calibration.returned < MIN_CLV_REPEAT_BUYERS:
        return NOT_READY, (
            f"CLV learns purchase rates from customers who came back: {calibration.returned} bought on two or more "
            f"days before {calibration.cutoff}; it needs at least {MIN_CLV_REPEAT_BUYERS}"
        )
    return READY, (
        f"fits on {calibration.customers:,} customers ({calibration.returned:,} repeat buyers) before "
        f"{calibration.cutoff}, validated on the {months} months after"
    )


def _churn(facts: DataFacts, settings: Settings) -> tuple[str, str]:
    if missing := _no_sales(facts):
        return NOT_READY, missing
    window = settings.churn_window_days
    anchor = facts.churn_anchor or facts.as_of
    gap = (facts.as_of - facts.last_order).days if facts.last_order else 0
    stale = (
        f" (the exports stop at {facts.last_order}, {gap} days before the as-of date, so the windows end there)"
        if gap >= STALE_DAYS and not facts.orders_after_as_of
        else ""
    )
    if facts.history_days <= 2 * window:
        return NOT_READY, (
            f"churn needs two {window}-day windows of history before {anchor}, one to learn from and one to test on; "
            f"this data has {facts.history_days} days{stale}"
        )
    for name, cutoff in zip(("training", "test"), facts.churn_cutoffs, strict=False):
        if cutoff.returned == 0 or cutoff.returned == cutoff.customers:
            outcome = "none of them" if cutoff.returned == 0 else "all of them"
            return NOT_READY, (
                f"churn needs both outcomes at its {name} cutoff {cutoff.cutoff}: of {cutoff.customers:,} customers, "
                f"{outcome} bought again within {window} days{stale}"
            )
    train, test = facts.churn_cutoffs[0], facts.churn_cutoffs[-1]
    return READY, (
        f"trained at {train.cutoff} ({train.returned:,} of {train.customers:,} came back within {window} days), "
        f"tested at {test.cutoff}{stale}"
    )


def _segments(facts: DataFacts, _settings: Settings) -> tuple[str, str]:
    if missing := _no_sales(facts):
        return NOT_READY, missing
    if facts.buyers < MIN_SEGMENT_BUYERS:
        return NOT_READY, f"segments need at least {MIN_SEGMENT_BUYERS} customers with orders; there are {facts.buyers}"
    enrichments = {
        "erp/products (category mix)": facts.rows("erp__products"),
        "crm/cases (service contacts)": facts.rows("crm__cases"),
        "marketing/sends (campaign response)": facts.rows("marketing__sends"),
        "web/sessions (web activity)": facts.rows("web__sessions"),
    }
    absent = [name for name, rows in enrichments.items() if not rows]
    figures = f"{facts.buyers:,} customers"
    if absent:
        return PARTIAL, f"{figures}; without {', '.join(absent)}, segments describe purchases only"
    return READY, f"{figures}, on purchases, categories, service, campaigns and web activity"


def _identity(facts: DataFacts, _settings: Settings) -> tuple[str, str]:
    others = [system for system, table in PERSON_RECORDS.items() if facts.rows(table)]
    if not facts.rows("erp__customers"):
        return NOT_READY, "identity resolution matches other systems' records with ERP customers (erp/customers); none"
    if not others:
        return NOT_READY, (
            "identity resolution matches ERP customers with the records of other systems (CRM contacts, call-center "
            "calls, web sessions, campaign members); this landing zone has only the ERP's"
        )
    absent = [system for system in PERSON_RECORDS if system not in others]
    matched = f"ERP customers with {', '.join(others)} records"
    return READY, matched + (f" (no {', '.join(absent)} records)" if absent else "")


def _campaigns(facts: DataFacts, _settings: Settings) -> tuple[str, str]:
    campaigns, members = facts.rows("marketing__campaigns"), facts.rows("marketing__campaign_members")
    if not campaigns or not members:
        return NOT_READY, (
            "campaign measurement needs marketing/campaigns and their members (marketing/campaign_members); "
            f"found {campaigns:,} campaigns and {members:,} members"
        )
    if missing := _no_sales(facts):
        return NOT_READY, f"campaign results are measured in sales: {missing}"
    figures = f"{campaigns:,} campaigns, {members:,} members"
    if not facts.control_members:
        return PARTIAL, f"{figures}, but no control group: responses are counted, uplift cannot be measured"
    return READY, f"{figures}, {facts.control_members:,} of them in control groups"


def _channel_preference(facts: DataFacts, _settings: Settings) -> tuple[str, str]:
    if len(facts.channels) < 2:
        found = f"one only ({facts.channels[0]})" if facts.channels else "none"
        return NOT_READY, f"a preferred channel needs interactions through two or more channels; found {found}"
    return READY, f"interactions through {len(facts.channels)} channels: {', '.join(facts.channels)}"


def _market_basket(facts: DataFacts, _settings: Settings) -> tuple[str, str]:
    if missing := _no_sales(facts):
        return NOT_READY, missing
    share = f"{facts.multi_product_orders / facts.orders:.0%} of orders" if facts.orders else "no orders"
    if facts.multi_product_orders < MIN_BASKETS:
        return NOT_READY, (
            f"market basket needs at least {MIN_BASKETS} orders with two or more distinct products; "
            f"there are {facts.multi_product_orders} ({share})"
        )
    return READY, f"{facts.multi_product_orders:,} orders with two or more distinct products ({share})"


CAPABILITIES: tuple[Capability, ...] = (
    Capability("star_schema", "Customer 360 and star schema", "sales: orders and their lines", _star_schema),
    Capability("rfm", "RFM segments", f"sales of at least {MIN_RFM_BUYERS} customers", _rfm),
    Capability("tiers", "Loyalty tiers", "12 months of sales before the as-of date", _tiers),
    Capability(
        "clv",
        "Customer lifetime value",
        f"sales before the holdout (clv_holdout_months) with at least {MIN_CLV_REPEAT_BUYERS} repeat buyers",
        _clv,
    ),
    Capability(
        "churn",
        "Churn risk",
        "two churn_window_days windows of sales history; at each cutoff, customers who came back and who did not",
        _churn,
    ),
    Capability("segments", "Behavioural segments", f"sales of at least {MIN_SEGMENT_BUYERS} customers", _segments),
    Capability(
        "identity",
        "Identity resolution across systems",
        "ERP customers and the records of another system (CRM contacts, calls, web sessions, campaign members)",
        _identity,
    ),
    Capability(
        "campaigns",
        "Campaign measurement",
        "marketing campaigns and their members, with a control group, and sales",
        _campaigns,
    ),
    Capability("channels", "Channel preference", "interactions through two or more channels", _channel_preference),
    Capability(
        "market_basket",
        "Market basket and cross-sell",
        f"at least {MIN_BASKETS} orders with two or more distinct products",
        _market_basket,
    ),
)


def assess(facts: DataFacts, settings: Settings, capabilities: Sequence[Capability] = CAPABILITIES) -> list[Verdict]:
    """One verdict per capability: ready, partial or not ready, and the figures or the missing data why."""
    verdicts = []
    for capability in capabilities:
        status, reason = capability.judge(facts, settings)
        verdicts.append(Verdict(capability.key, capability.name, status, reason))
    return verdicts


@dataclasses.dataclass(frozen=True)
class Readiness:
    facts: DataFacts
    verdicts: tuple[Verdict, ...]

    def status(self, capability: str) -> str:
        return next(verdict.status for verdict in self.verdicts if verdict.capability == capability)

    def as_dict(self) -> dict[str, Any]:
        facts = self.facts
        return {
            "as_of": facts.as_of.isoformat(),
            "tables": {
                name: {
                    "rows": table.rows,
                    "first_date": _iso(table.first_date),
                    "last_date": _iso(table.last_date),
                    "date_column": table.date_column,
                }
                for name, table in sorted(facts.tables.items())
            },
            "sales": {
                "orders": facts.orders,
                "order_lines": facts.order_lines,
                "orders_after_as_of": facts.orders_after_as_of,
                "customers": facts.buyers,
                "repeat_customers": facts.repeat_buyers,
                "first_order": _iso(facts.first_order),
                "last_order": _iso(facts.last_order),
                "history_days": facts.history_days,
                "orders_with_two_or_more_products": facts.multi_product_orders,
            },
            "channels": list(facts.channels),
            "capabilities": [dataclasses.asdict(verdict) for verdict in self.verdicts],
        }


def readiness(connection: duckdb.DuckDBPyConnection, as_of: date, settings: Settings) -> Readiness:
    """What the raw tables of ``connection`` support as of ``as_of``: facts and one verdict per capability."""
    facts = collect_facts(connection, as_of, settings)
    return Readiness(facts, tuple(assess(facts, settings)))


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


# --- the landing zone as it is ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SourceReport:
    """One contract: the files it matched, what became of each, and the raw tables its rows went to."""

    contract: str
    path: str
    built_in: bool
    files: tuple[Mapping[str, Any], ...] = ()
    tables: tuple[str, ...] = ()
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class LandingZoneReport:
    landing_dir: Path
    sources: tuple[SourceReport, ...]
    unread_files: tuple[str, ...]
    readiness: Readiness

    def as_dict(self) -> dict[str, Any]:
        return {
            "landing_dir": str(self.landing_dir),
            "sources": [dataclasses.asdict(source) for source in self.sources],
            "files_no_contract_reads": list(self.unread_files),
            **self.readiness.as_dict(),
        }


def _load_source(connection: duckdb.DuckDBPyConnection, contract: Any, landing_dir: Path, built_in: Path):
    from pipelines.ingest.loader import load_table

    common = {"contract": contract.name, "path": str(contract.path), "built_in": contract.path.is_relative_to(built_in)}
    try:
        loads = load_table(connection, contract, landing_dir, "doctor")
    except Exception as error:  # a doctor reports the source it cannot load, and examines the others
        return SourceReport(**common, error=f"{type(error).__name__}: {error}")
    files = tuple(
        {
            "file": load.file,
            "status": load.status,
            "rows_read": load.rows_read,
            "rows_loaded": load.rows_loaded,
            "rows_quarantined": load.rows_quarantined,
            "message": load.message,
        }
        for load in loads
    )
    # the loader says which tables each file wrote to: no need to count every raw table before and after
    fed = tuple(sorted({table for load in loads for table, rows in load.tables if rows}))
    return SourceReport(**common, files=files, tables=fed)


def _unread(landing_dir: Path, read: Iterable[str]) -> tuple[str, ...]:
    if not landing_dir.is_dir():
        return ()
    every = {
        path.relative_to(landing_dir).as_posix()
        for path in landing_dir.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(landing_dir).parts)
    }
    return tuple(sorted(every - set(read)))


def landing_zone_report(landing_dir: Path, contracts: Sequence[Any], as_of: date, settings: Settings):
    """Load the landing zone's files by their contracts into a scratch DuckDB and judge what they support."""
    from pipelines.ingest.contracts import BUILT_IN_DIR

    with tempfile.TemporaryDirectory(prefix="crm-doctor-") as scratch:
        connection = duckdb.connect(str(Path(scratch) / "doctor.duckdb"))
        try:
            connection.execute("set TimeZone = 'UTC'")  # as the warehouse: timestamps are wall time, never shifted
            sources = tuple(_load_source(connection, contract, landing_dir, BUILT_IN_DIR) for contract in contracts)
            found = readiness(connection, as_of, settings)
        finally:
            connection.close()
    read = [file["file"] for source in sources for file in source.files]
    return LandingZoneReport(landing_dir, sources, _unread(landing_dir, read), found)


# --- in words ---------------------------------------------------------------------------------------------


def _files_line(source: SourceReport) -> str:
    if source.error:
        return f"could not be loaded: {source.error}"
    if not source.files:
        return "no files"
    names = [file["file"] for file in source.files]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    loaded = sum(file["rows_loaded"] for file in source.files)
    quarantined = sum(file["rows_quarantined"] for file in source.files)
    text = f"{len(names)} file{'s' if len(names) > 1 else ''} ({shown}): {loaded:,} rows loaded"
    if quarantined:
        text += f", {quarantined:,} quarantined"
    if source.tables:
        text += f" -> {', '.join(f'raw.{table}' for table in source.tables)}"
    return text


def format_report(report: LandingZoneReport) -> str:
    """The report as a readable text table."""
    facts = report.readiness.facts
    lines = [f"Data readiness of {report.landing_dir} as of {facts.as_of}", "", "Sources (contract: files -> tables)"]
    width = max((len(source.contract) for source in report.sources), default=10)
    for source in report.sources:
        origin = "" if source.built_in else f"  [yours: {source.path}]"
        lines.append(f"  {source.contract:<{width}}  {_files_line(source)}{origin}")
        for file in source.files:
            if file["status"] == "refused":
                lines.append(f"  {'':<{width}}    REFUSED {file['message']}")
    if report.unread_files:
        shown = ", ".join(report.unread_files[:5]) + (
            f" and {len(report.unread_files) - 5} more" if len(report.unread_files) > 5 else ""
        )
        lines.append(f"  Files no contract reads: {shown} (see `crm contracts`, docs/contracts.md)")
    lines += ["", f"  {'table':<30} {'rows':>10}  {'from':<10}  {'to':<10}  dated by"]
    for name, table in sorted(facts.tables.items()):
        if table.rows or name in DATE_COLUMNS:
            first, last = _iso(table.first_date) or "-", _iso(table.last_date) or "-"
            lines.append(f"  {name:<30} {table.rows:>10,}  {first:<10}  {last:<10}  {table.date_column or ''}")
    if facts.orders_after_as_of:
        lines.append(f"  ({facts.orders_after_as_of:,} orders on or after {facts.as_of} are not used as of that date)")
    lines += ["", "Capabilities"]
    width = max(len(verdict.name) for verdict in report.readiness.verdicts)
    for verdict in report.readiness.verdicts:
        lines.append(f"  {verdict.status.upper():<9}  {verdict.name:<{width}}  {verdict.reason}")
    ready = sum(verdict.status == READY for verdict in report.readiness.verdicts)
    lines += ["", f"{ready} of {len(report.readiness.verdicts)} capabilities ready (docs/readiness.md)"]
    return "\n".join(lines)
