"""Write countries.csv: every ISO 3166-1 country with its calling code, trunk prefix, region and spellings.

Run once, by hand, when the standard changes; the warehouse reads the committed CSV and needs none of these
packages at run time:

    pip install --target /tmp/countries pycountry phonenumbers
    PYTHONPATH=/tmp/countries .venv/bin/python dbt_project/seeds/generate_countries.py

Sources (all facts, not code): ISO 3166-1 codes and English names from pycountry (LGPL-2.1, data of Debian's
iso-codes); calling codes and national (trunk) prefixes from phonenumbers (Apache-2.0, Google's libphonenumber
metadata); names in Spanish, French, German, Italian, Portuguese and Dutch from Babel (BSD-3-Clause, Unicode
CLDR data under the Unicode licence); regions are the UN M49 sub-regions (intermediate regions for Africa south
of the Sahara and Latin America), written out below, with "Northern America" named "North America" as before.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from pathlib import Path

import phonenumbers
import pycountry
from babel import Locale
from phonenumbers import PhoneMetadata

OUT = Path(__file__).with_name("countries.csv")
LANGUAGES = ("en", "es", "fr", "de", "it", "pt", "nl")

REGIONS = {
    "Northern Africa": "DZ EG LY MA SD TN EH",
    "Eastern Africa": "IO BI KM DJ ER ET TF KE MG MW MU YT MZ RE RW SC SO SS UG TZ ZM ZW",
    "Middle Africa": "AO CM CF TD CG CD GQ GA ST",
    "Southern Africa": "BW SZ LS NA ZA",
    "Western Africa": "BJ BF CV CI GM GH GN GW LR ML MR NE NG SH SN SL TG",
    "Caribbean": "AI AG AW BS BB BQ VG KY CU CW DM DO GD GP HT JM MQ MS PR BL KN LC MF VC SX TT TC VI",
    "Central America": "BZ CR SV GT HN MX NI PA",
    "South America": "AR BO BV BR CL CO EC FK GF GY PY PE GS SR UY VE",
    "North America": "BM CA GL PM US",
    "Antarctica": "AQ",
    "Central Asia": "KZ KG TJ TM UZ",
    "Eastern Asia": "CN HK MO KP JP MN KR TW",
    "South-eastern Asia": "BN KH ID LA MY MM PH SG TH TL VN",
    "Southern Asia": "AF BD BT IN IR MV NP PK LK",
    "Western Asia": "AM AZ BH CY GE IQ IL JO KW LB OM QA SA PS SY TR AE YE",
    "Eastern Europe": "BY BG CZ HU PL MD RO RU SK UA",
    "Northern Europe": "AX DK EE FO FI GG IS IE IM JE LV LT NO SJ SE GB",
    "Southern Europe": "AL AD BA HR GI GR VA IT MT ME MK PT SM RS SI ES",
    "Western Europe": "AT BE FR DE LI LU MC NL CH",
    "Australia and New Zealand": "AU CX CC HM NZ NF",
    "Melanesia": "FJ NC PG SB VU",
    "Micronesia": "GU KI MH FM NR MP PW UM",
    "Polynesia": "AS CK PF NU PN WS TK TO TV WF",
}

# Spellings the seed carried before it covered every country: kept, whatever the sources say.
KEPT_SPELLINGS = {
    "ES": "spain|españa|espana|es|esp",
    "FR": "france|fr|fra",
    "DE": "germany|deutschland|alemania|allemagne|de|deu",
    "GB": "united kingdom|uk|gb|gbr|great britain|england|reino unido|royaume-uni",
    "US": "united states|usa|us|united states of america|estados unidos|états-unis",
    "PT": "portugal|pt|prt",
    "IT": "italy|italia|it|ita",
    "NL": "netherlands|nederland|nl|nld|holland",
    "BE": "belgium|belgique|belgië|be|bel",
    "IE": "ireland|éire|ie|irl",
}
# Trunk prefixes the seed carried (the demo's phone plan reads US numbers without the leading 1).
KEPT_TRUNK_PREFIXES = {"ES": "", "FR": "0", "DE": "0", "GB": "0", "US": "", "PT": "", "IT": "", "NL": "0",
                       "BE": "0", "IE": "0"}  # fmt: skip


def spelling_key(text: str) -> str:
    """How the warehouse compares spellings (macro text_key): lower case, no accents, words of [a-z0-9]."""
    return re.sub(r"[^a-z0-9]+", " ", unaccented(text.lower())).strip()


def unaccented(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text)
    return "".join(char for char in plain if not unicodedata.combining(char))


def main() -> None:
    region_of = {code: region for region, codes in REGIONS.items() for code in codes.split()}
    locales = [Locale(language) for language in LANGUAGES]
    countries = sorted(pycountry.countries, key=lambda country: country.alpha_2)
    missing = {country.alpha_2 for country in countries} ^ set(region_of)
    if missing:
        raise SystemExit(f"regions out of step with ISO 3166-1: {sorted(missing)}")

    # Spellings by priority: codes and kept spellings, then English names, then names in other languages.
    candidates: dict[str, list[tuple[int, str]]] = {}
    for country in countries:
        code = country.alpha_2
        spellings = [(0, code), (0, country.alpha_3), *((0, s) for s in KEPT_SPELLINGS.get(code, "").split("|") if s)]
        for name in (getattr(country, "common_name", None), country.name, getattr(country, "official_name", None)):
            if name:
                spellings.append((1, name))
        spellings += [(1 if locale.language == "en" else 2, locale.territories.get(code)) for locale in locales]
        candidates[code] = [(rank, spelling.lower()) for rank, spelling in spellings if spelling]
    # A spelling two countries share would read either way: it stays with the country that has it at a higher
    # priority, and is dropped when the priorities tie.
    best: dict[str, list[tuple[int, str]]] = {}
    for code, spellings in candidates.items():
        for rank, spelling in spellings:
            best.setdefault(spelling_key(spelling), []).append((rank, code))
    owner = {}
    for key, claims in best.items():
        top = min(rank for rank, _ in claims)
        codes = {code for rank, code in claims if rank == top}
        if len(codes) == 1:
            owner[key] = codes.pop()

    with OUT.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["country_code", "country_name", "calling_code", "trunk_prefix", "region_name", "aliases"])
        for country in countries:
            code = country.alpha_2
            calling_code = phonenumbers.country_code_for_region(code) or ""
            metadata = PhoneMetadata.metadata_for_region(code)
            trunk_prefix = KEPT_TRUNK_PREFIXES.get(code, (metadata.national_prefix if metadata else None) or "")
            aliases: list[str] = []
            for _, spelling in sorted(candidates[code], key=lambda item: item[0]):
                if owner.get(spelling_key(spelling)) != code:
                    continue
                # and without its accents, for engines whose text_key cannot strip them
                for variant in (spelling, unaccented(spelling)):
                    if variant not in aliases:
                        aliases.append(variant)
            name = getattr(country, "common_name", None) or country.name
            writer.writerow([code, name, calling_code, trunk_prefix, region_of[code], "|".join(aliases)])


if __name__ == "__main__":
    main()
