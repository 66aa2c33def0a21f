"""The identity keys of dbt_project/macros/identity.sql in Python: what someone types in a search, normalised the
way the warehouse normalised the records, so that a search by email, phone or name finds them.

Each function returns exactly what its macro returns in DuckDB, None where the macro gives NULL (junk values,
placeholders, numbers too short); tests/unit/test_identity_keys.py and tests/integration/test_contacts_publish.py
compare them with the macros. DuckDB's own text functions are matched character for character: ``trim`` removes
space separators (Unicode Zs) only, ``lower`` maps İ to i, ``strip_accents`` drops combining marks, regular
expressions are RE2's (``\\s`` is ``[\\t\\n\\f\\r ]``, ``$`` the end of the text).
"""

from __future__ import annotations

import csv
import re
import unicodedata
from functools import cache

from pipelines.settings import PROJECT_ROOT

COUNTRIES_SEED = PROJECT_ROOT / "dbt_project" / "seeds" / "countries.csv"

_EMAIL = re.compile(r"[^@\t\n\f\r ]+@[^@\t\n\f\r ]+\.[a-z]{2,}")
_PLACEHOLDER_EMAIL = re.compile(
    r"(no-?e?mail|noreply|no-reply|none|test|unknown|invalid|nomail|sin-?correo|x+)@.*", re.DOTALL
)
_PLACEHOLDER_DOMAINS = ("example.com", "example.org", "test.com", "email.com")
_NOT_A_DIGIT = re.compile(r"[^0-9]")
_NOT_A_NAME_LETTER = re.compile(r"[^a-z ]")


def _trim(text: str) -> str:
    """DuckDB's trim: space separators (Unicode category Zs) off both ends; tabs and line breaks stay."""
    start, end = 0, len(text)
    while start < end and unicodedata.category(text[start]) == "Zs":
        start += 1
    while end > start and unicodedata.category(text[end - 1]) == "Zs":
        end -= 1
    return text[start:end]


def _lower(text: str) -> str:
    """DuckDB's lower: character by character (no final-sigma rule), İ to a plain i."""
    return "".join("i" if character == "\u0130" else character.lower() for character in text)


def _strip_accents(text: str) -> str:
    """DuckDB's strip_accents: combining marks dropped; text that is not plain ASCII ends at a NUL character."""
    if text.isascii():
        return text
    text = text.split("\x00", 1)[0]
    return "".join(
        character
        for character in unicodedata.normalize("NFD", text)
        if not unicodedata.category(character).startswith("M")
    )


def email_key(text: str | None) -> str | None:
    """The macro normalise_email: the address in lower case without surrounding spaces, None for one that is not
    an address or is a placeholder (noreply@..., test@..., ...@example.com)."""
    if text is None:
        return None
    email = _lower(_trim(text))
    if not _EMAIL.fullmatch(email) or _PLACEHOLDER_EMAIL.fullmatch(email):
        return None
    if email.split("@")[1] in _PLACEHOLDER_DOMAINS:
        return None
    return email


@cache
def _countries() -> dict[str, tuple[str | None, str | None]]:
    """country code -> (calling code, trunk prefix), from the seed the warehouse uses (empty cells are NULL there)."""
    with COUNTRIES_SEED.open(encoding="utf-8", newline="") as seed:
        return {
            row["country_code"]: (row["calling_code"] or None, row["trunk_prefix"] or None)
            for row in csv.DictReader(seed)
        }


def phone_key(text: str | None, default_country: str, country: str | None = None) -> str | None:
    """The macro phone_e164: the number in E.164 (+<calling code><national number>), None for one with fewer than
    7 digits or only zeros. A national number is read in ``country`` (the record's, when known) and else in
    ``default_country`` (the setting); as in the warehouse, the calling code and the trunk prefix each fall back to
    the default country's when ``country`` has none."""
    if text is None:
        return None
    digits = _NOT_A_DIGIT.sub("", text)
    if not digits.strip("0") or len(digits) < 7:
        return None
    if _trim(text).startswith("+"):
        return "+" + digits
    if digits.startswith("00"):
        return "+" + digits[2:]
    countries = _countries()
    calling_code, trunk_prefix = countries.get(country or "", (None, None))
    default_calling_code, default_trunk_prefix = countries.get(default_country, (None, None))
    calling_code = calling_code or default_calling_code or ""
    trunk_prefix = trunk_prefix or default_trunk_prefix
    if trunk_prefix is not None and digits.startswith(trunk_prefix):
        return "+" + calling_code + digits[len(trunk_prefix) :]
    return "+" + calling_code + digits


def name_key(first_name: str | None, last_name: str | None = None) -> str | None:
    """The macro name_key: first and last name without case, accents or anything but letters a-z and spaces
    ('José  Muñoz-Pérez' -> 'jose  munozperez'); None when nothing is left. A search may pass the whole name as
    ``first_name``."""
    joined = " ".join(part for part in (first_name, last_name) if part is not None)
    return _trim(_NOT_A_NAME_LETTER.sub("", _lower(_strip_accents(joined)))) or None
