"""Who the people are: names, addresses, emails, phones, and the CRM contacts that describe them.

A person has one true identity (``people``); each source system records it its own way. This module builds
the true identity and the messy renderings (emails as typed, phones in national and international formats,
duplicate contact records) that identity resolution has to see through.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np
import polars as pl

from . import vocab
from .params import SECONDS_PER_DAY, Clock, Params
from .simulate import NEVER, Buyers

CHANNELS = ("email", "phone", "sms")


def ascii_fold(text: str) -> str:
    """Lower-case ASCII letters of a name, as people put it in an email address (``Müller`` -> ``muller``)."""
    text = text.replace("ß", "ss").replace("æ", "ae").replace("ø", "o")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii() and c.isalpha()).lower()


def strip_accents(text: str) -> str:
    """The name as typed on a keyboard without accents (``José Núñez`` -> ``Jose Nunez``)."""
    decomposed = unicodedata.normalize("NFKD", text.replace("ß", "ss"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@dataclass
class People:
    """True identity of every person: buyers first (index = buyer index), then CRM-only leads."""

    frame: pl.DataFrame  # person, person_id, country, first_name, last_name, email, phone_nsn, street, ...
    n_buyers: int

    @property
    def country(self) -> np.ndarray:
        return self.frame["country"].to_numpy()

    def __len__(self) -> int:
        return self.frame.height


def _pick_index(rng: np.random.Generator, country: np.ndarray, table: dict[str, tuple]) -> np.ndarray:
    """Position, in the country-by-country concatenation of ``table``, of one random entry per row."""
    index = np.zeros(len(country), np.int64)
    start = 0
    for code in vocab.COUNTRIES:
        rows = np.flatnonzero(country == code)
        index[rows] = start + rng.integers(0, len(table[code]), len(rows))
        start += len(table[code])
    return index


def _flat(table: dict[str, tuple]) -> list:
    return [entry for code in vocab.COUNTRIES for entry in table[code]]


def _pick(rng: np.random.Generator, country: np.ndarray, table: dict[str, tuple]) -> pl.Series:
    """One random entry per row from the row's country list in ``table``."""
    return pl.Series(_flat(table)).gather(_pick_index(rng, country, table))


def draw_people(rng: np.random.Generator, buyers: Buyers, params: Params) -> People:
    """True names, addresses, emails and phone numbers of buyers and leads."""
    n_buyers = len(buyers)
    n = n_buyers + round(params.lead_share * n_buyers)
    country = np.asarray(vocab.COUNTRIES)[
        np.searchsorted(np.cumsum(vocab.COUNTRY_SHARES), rng.random(n) * sum(vocab.COUNTRY_SHARES), side="right")
    ]
    first = _pick(rng, country, vocab.FIRST_NAMES)
    last = _pick(rng, country, vocab.LAST_NAMES)
    ascii_map = {
        name: ascii_fold(name)
        for table in (vocab.FIRST_NAMES, vocab.LAST_NAMES)
        for names in table.values()
        for name in names
    }
    city_index = _pick_index(rng, country, vocab.CITIES)
    city = pl.Series([c[0] for c in _flat(vocab.CITIES)]).gather(city_index)
    prefix = pl.Series([c[1] for c in _flat(vocab.CITIES)]).gather(city_index)
    street = _pick(rng, country, vocab.STREETS)
    house = pl.Series(rng.integers(1, 180, n)).cast(pl.String)
    postcode = _postcodes(rng, country, prefix)
    domain = _pick(rng, country, vocab.EMAIL_DOMAINS)
    frame = pl.DataFrame(
        {
            "person": np.arange(n, dtype=np.int32),
            "country": country,
            "first_name": first,
            "last_name": last,
            "street_name": street,
            "house": house,
            "postcode": postcode,
            "city": city,
            "domain": domain,
            "style": rng.integers(0, 5, n),
            "year": rng.integers(60, 106, n) % 100,
        }
    )
    frame = frame.with_columns(
        pl.col("first_name").replace_strict(ascii_map).alias("first_ascii"),
        pl.col("last_name").replace_strict(ascii_map).alias("last_ascii"),
        pl.when(pl.col("country").is_in(["ES", "DE"]))
        .then(pl.concat_str("street_name", pl.lit(" "), "house"))
        .otherwise(pl.concat_str("house", pl.lit(" "), "street_name"))
        .alias("street"),
    )
    local = (
        pl.when(pl.col("style") == 0)
        .then(pl.concat_str("first_ascii", pl.lit("."), "last_ascii"))
        .when(pl.col("style") == 1)
        .then(pl.concat_str("first_ascii", "last_ascii"))
        .when(pl.col("style") == 2)
        .then(pl.concat_str(pl.col("first_ascii").str.slice(0, 1), "last_ascii"))
        .when(pl.col("style") == 3)
        .then(pl.concat_str("last_ascii", pl.lit("."), "first_ascii"))
        .otherwise(pl.concat_str("first_ascii", "last_ascii", pl.col("year").cast(pl.String).str.zfill(2)))
    )
    frame = frame.with_columns(local.alias("local"))
    # Two people never share an address: the n-th holder of the same local part gets a number.
    frame = frame.with_columns(pl.int_range(pl.len()).over("local", "domain").alias("clash"))
    frame = frame.with_columns(
        pl.concat_str(
            "local",
            pl.when(pl.col("clash") > 0).then(pl.col("clash").cast(pl.String)).otherwise(pl.lit("")),
            pl.lit("@"),
            "domain",
        ).alias("email"),
        phone_numbers(rng, country).alias("phone_nsn"),
        pl.Series("person_id", _person_ids(rng, n)),
    )
    return People(
        frame.select(
            "person",
            "person_id",
            "country",
            "first_name",
            "last_name",
            "email",
            "phone_nsn",
            "street",
            "postcode",
            "city",
        ),
        n_buyers,
    )


def _person_ids(rng: np.random.Generator, n: int) -> pl.Series:
    """``P0000001``... in random order, so a person id says nothing about the customer number."""
    number = pl.Series(rng.permutation(n) + 1).cast(pl.String).str.zfill(7)
    return pl.select(pl.concat_str(pl.lit("P"), number)).to_series()


def _postcodes(rng: np.random.Generator, country: np.ndarray, prefix: pl.Series) -> pl.Series:
    n = len(country)
    digits = pl.Series(rng.integers(0, 1000, n)).cast(pl.String).str.zfill(3)
    letters = np.asarray(list("ABDEFGHJLNPQRSTUWXYZ"))
    inward = pl.Series(rng.integers(1, 10, n)).cast(pl.String)
    l1 = pl.Series(letters[rng.integers(0, len(letters), n)])
    l2 = pl.Series(letters[rng.integers(0, len(letters), n)])
    frame = pl.DataFrame({"country": country, "prefix": prefix, "digits": digits, "inward": inward, "l1": l1, "l2": l2})
    return frame.select(
        pl.when(pl.col("country") == "GB")
        .then(pl.concat_str("prefix", pl.lit(" "), "inward", "l1", "l2"))
        .when(pl.col("country") == "US")
        .then(pl.concat_str("prefix", pl.col("digits").str.slice(1, 2)))
        .otherwise(pl.concat_str("prefix", pl.col("digits")))
    ).to_series()


def phone_numbers(rng: np.random.Generator, country: np.ndarray, kind: str = "mobile") -> pl.Series:
    """National significant numbers of a ``kind`` (``mobile``, ``landline``, ``other``: disjoint ranges).

    Numbers drawn in one call are distinct per country (an affine permutation of the subscriber range).
    """
    out = np.empty(len(country), dtype=object)
    for code in vocab.COUNTRIES:
        plan = vocab.PHONE_PLANS[code]
        rows = np.flatnonzero(country == code)
        if len(rows) == 0:
            continue
        mobile = np.asarray(plan[kind])
        lead = mobile[rng.integers(0, len(mobile), len(rows))]
        width = plan["nsn_len"] - len(mobile[0])
        space = 10**width
        step = 7_919_113 if space > 7_919_113 else 7
        number = (np.arange(len(rows), dtype=np.int64) * step + int(rng.integers(0, space))) % space
        out[rows] = np.char.add(lead.astype(str), np.char.zfill(number.astype(str), width))
    return pl.Series(out.astype(str))


def render_phones(rng: np.random.Generator, nsn: pl.Series, country: np.ndarray, kind: np.ndarray) -> pl.Series:
    """Render national significant numbers the way people type or networks deliver them.

    ``kind`` per row: ``national`` / ``international`` (a random template of the country, as in
    ``vocab.PHONE_FORMATS``), ``network`` (digits only: trunk prefix, ``+cc`` or ``00cc``), ``junk`` or
    ``empty``.
    """
    parts: list[pl.DataFrame] = []
    nsn_frame = pl.DataFrame({"nsn": nsn})
    for code in vocab.COUNTRIES:
        plan = vocab.PHONE_PLANS[code]
        length = plan["nsn_len"]
        network = ((plan["trunk"], (0, length)), ("+" + plan["cc"], (0, length)), ("00" + plan["cc"], (0, length)))
        templates = {**vocab.PHONE_FORMATS[code], "network": network}
        for name, options in templates.items():
            rows = np.flatnonzero((country == code) & (kind == name))
            if len(rows) == 0:
                continue
            choice = rng.integers(0, len(options), len(rows))
            for j, template in enumerate(options):
                sub = rows[choice == j]
                if len(sub) == 0:
                    continue
                pieces = [
                    pl.col("nsn").str.slice(piece[0], piece[1] - piece[0])
                    if isinstance(piece, tuple)
                    else pl.lit(piece)
                    for piece in template
                ]
                rendered = nsn_frame[sub].select(pl.concat_str(pieces).alias("phone"))
                parts.append(rendered.with_columns(pl.Series("row", sub)))
    junk_rows = np.flatnonzero(kind == "junk")
    junk = np.asarray(vocab.JUNK_PHONES)[rng.integers(0, len(vocab.JUNK_PHONES), len(junk_rows))]
    parts.append(pl.DataFrame({"phone": junk, "row": junk_rows}))
    empty_rows = np.flatnonzero(kind == "empty")
    parts.append(pl.DataFrame({"phone": [""] * len(empty_rows), "row": empty_rows}))
    combined = pl.concat([p.select("phone", pl.col("row").cast(pl.Int64)) for p in parts]).sort("row")
    return combined["phone"]


def mess_email(
    rng: np.random.Generator, email: pl.Series, mixed: float, spaces: float, placeholder: float
) -> pl.Series:
    """Emails as typed: some Title.Case or UPPER, some with stray spaces, some placeholders."""
    n = len(email)
    u = rng.random(n)
    case = rng.integers(0, 2, n)
    frame = pl.DataFrame(
        {
            "email": email,
            "mixed": u < mixed,
            "case": case,
            "space": rng.random(n) < spaces,
            "lead": rng.integers(0, 2, n),
            "placeholder": rng.random(n) < placeholder,
            "which": pl.Series(np.asarray(vocab.PLACEHOLDER_EMAILS)[rng.integers(0, len(vocab.PLACEHOLDER_EMAILS), n)]),
        }
    )
    cased = (
        pl.when(~pl.col("mixed"))
        .then(pl.col("email"))
        .when(pl.col("case") == 0)
        .then(pl.col("email").str.to_titlecase())
        .otherwise(pl.col("email").str.to_uppercase())
    )
    spaced = (
        pl.when(~pl.col("space"))
        .then(cased)
        .when(pl.col("lead") == 0)
        .then(pl.concat_str(pl.lit(" "), cased))
        .otherwise(pl.concat_str(cased, pl.lit("  ")))
    )
    return frame.select(pl.when(pl.col("placeholder")).then(pl.col("which")).otherwise(spaced)).to_series()


@dataclass
class Contacts:
    """CRM contact records and their consents.

    ``frame`` has one row per contact: contact (index), person, contact_id (UUID), is_primary, erp_linked,
    created, modified (Unix seconds), email (as in the CRM), mobile, office, first_name, last_name,
    country_label, lead_source, email_usable, mobile_usable. ``primary`` maps person -> contact index (-1 if
    none). ``opt_in`` (contacts x channels) is the consent given at creation, ``opt_out_at`` when it is
    withdrawn (``NEVER`` if not); channels are ``CHANNELS``.
    """

    frame: pl.DataFrame
    primary: np.ndarray
    opt_in: np.ndarray
    opt_out_at: np.ndarray

    def __len__(self) -> int:
        return self.frame.height


def uuid4_strings(rng: np.random.Generator, n: int) -> pl.Series:
    """Random (version 4) UUIDs as 36-character strings."""
    raw = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexed = pl.Series(np.frombuffer(raw.tobytes(), dtype="S16")).bin.encode("hex")
    return pl.select(
        pl.concat_str(
            [
                hexed.str.slice(0, 8),
                hexed.str.slice(8, 4),
                hexed.str.slice(12, 4),
                hexed.str.slice(16, 4),
                hexed.str.slice(20, 12),
            ],
            separator="-",
        )
    ).to_series()


def draw_contacts(rng: np.random.Generator, people: People, buyers: Buyers, params: Params, clock: Clock) -> Contacts:
    """CRM contacts: most buyers, a few twice (a duplicate), and every lead; consents per channel."""
    n_people, n_buyers = len(people), people.n_buyers
    is_buyer = np.arange(n_people) < n_buyers
    has_primary = ~is_buyer | (rng.random(n_people) < params.contact_share)
    duplicate = has_primary & (rng.random(n_people) < params.duplicate_contact_share)
    person = np.concatenate([np.flatnonzero(has_primary), np.flatnonzero(duplicate)]).astype(np.int32)
    is_primary = np.concatenate([np.ones(has_primary.sum(), bool), np.zeros(duplicate.sum(), bool)])
    n = len(person)
    buyer_row = person < n_buyers
    t0 = np.where(buyer_row, buyers.t0[np.minimum(person, n_buyers - 1)], clock.origin)
    lead_created = clock.origin + (rng.random(n) * (clock.cutoff - clock.origin)).astype(np.int64)
    primary_created = np.where(
        buyer_row, t0 - (rng.exponential(10.0, n) * SECONDS_PER_DAY).astype(np.int64), lead_created
    )
    later = primary_created + (rng.random(n) * np.maximum(clock.cutoff - primary_created, 0)).astype(np.int64)
    created = np.where(is_primary, primary_created, later)
    modified = created + (rng.random(n) * np.maximum(clock.cutoff - created, 0) * rng.random(n)).astype(np.int64)
    erp_linked = buyer_row & (rng.random(n) < np.where(is_primary, params.contact_has_erp_number_share, 0.2))

    truth = people.frame[person]
    country = truth["country"].to_numpy()
    # The CRM sometimes holds another address of the same person (work or an old account).
    other_domain = rng.random(n) < 0.05
    email = truth.select(
        pl.when(pl.Series(other_domain))
        .then(pl.concat_str(pl.col("email").str.split("@").list.first(), pl.lit("@outlook.com")))
        .otherwise(pl.col("email"))
    ).to_series()
    email_crm = mess_email(rng, email, mixed=0.15, spaces=0.06, placeholder=0.05)
    mobile_kind = np.asarray(["national", "international", "junk", "empty"])[
        np.searchsorted([0.52, 0.88, 0.94], rng.random(n), side="right")
    ]
    mobile = render_phones(rng, truth["phone_nsn"], country, mobile_kind)
    office_kind = np.where(rng.random(n) < 0.15, "national", "empty")
    office_nsn = phone_numbers(rng, country, "landline")
    office = render_phones(rng, office_nsn, country, office_kind)
    accent = rng.random(n)
    first = truth["first_name"]
    last = truth["last_name"]
    plain_first = _map_names(first, strip_accents)
    plain_last = _map_names(last, strip_accents)
    frame = pl.DataFrame(
        {
            "first_name": first,
            "last_name": last,
            "plain_first": plain_first,
            "plain_last": plain_last,
            "accent": accent,
        }
    ).select(
        pl.when(pl.col("accent") < 0.12)
        .then(pl.col("plain_first"))
        .when(pl.col("accent") < 0.15)
        .then(pl.col("first_name").str.to_uppercase())
        .otherwise(pl.col("first_name"))
        .alias("first_name"),
        pl.when(pl.col("accent") < 0.12)
        .then(pl.col("plain_last"))
        .when(pl.col("accent") < 0.15)
        .then(pl.col("last_name").str.to_uppercase())
        .otherwise(pl.col("last_name"))
        .alias("last_name"),
    )
    label_choice = np.searchsorted([0.8, 0.95], rng.random(n), side="right")
    labels = {code: vocab.COUNTRY_NAMES[code] for code in vocab.COUNTRIES}
    country_label = np.empty(n, dtype=object)
    for code in vocab.COUNTRIES:
        rows = country == code
        country_label[rows] = np.asarray(labels[code])[label_choice[rows]]
    lead_source = np.where(
        buyer_row & is_primary,
        np.where(rng.random(n) < 0.6, "Existing Customer", "Web Site"),
        np.asarray(vocab.LEAD_SOURCES)[rng.integers(0, len(vocab.LEAD_SOURCES), n)],
    )
    email_plain = email_crm.str.strip_chars().str.to_lowercase()
    email_usable = (email_plain.str.contains("@") & (email_plain != "noemail@example.com")).to_numpy()
    mobile_usable = np.isin(mobile_kind, ["national", "international"])
    frame = frame.with_columns(
        pl.Series("contact", np.arange(n, dtype=np.int32)),
        pl.Series("person", person),
        uuid4_strings(rng, n).alias("contact_id"),
        pl.Series("is_primary", is_primary),
        pl.Series("erp_linked", erp_linked),
        pl.Series("created", created),
        pl.Series("modified", modified),
        email_crm.alias("email"),
        mobile.alias("mobile"),
        office.alias("office"),
        truth["postcode"],
        truth["city"],
        pl.Series("country_label", country_label.astype(str)),
        pl.Series("lead_source", lead_source.astype(str)),
        pl.Series("email_usable", email_usable),
        pl.Series("mobile_usable", mobile_usable),
    )
    primary = np.full(n_people, -1, np.int64)
    primary[person[is_primary]] = np.flatnonzero(is_primary)
    opt_in = rng.random((n, 3)) < np.asarray(params.consent_opt_in)
    years = rng.exponential(params.consent_mean_years_to_opt_out, (n, 3))
    opt_out_at = np.where(opt_in, created[:, None] + (years * 365.25 * SECONDS_PER_DAY).astype(np.int64), NEVER)
    return Contacts(frame, primary, opt_in, opt_out_at)


def _map_names(names: pl.Series, function) -> pl.Series:
    mapping = {name: function(name) for name in names.unique().to_list()}
    return names.replace_strict(mapping, return_dtype=pl.String)
