"""One look for every page: the chart theme, colours that mean the same thing everywhere, and number formats.

Colours carry meaning, so they are fixed per value, not per chart: platinum is always the same grey-blue, a churn
risk of "high" always red, the model always blue beside its baseline's grey. Numbers and amounts are written in the
settings' ``display_locale`` and ``currency`` (Babel, the CLDR data): "1.234.567 €" in es_ES, "€1,234,567" in en_GB.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import altair as alt
import pandas as pd
from babel import Locale, numbers

from pipelines.settings import load_settings

FONT = "Source Sans Pro, sans-serif"
INK = "#262730"
MUTED = "#6B7280"
ACCENT = "#1F6FB2"
GRID = "#E5E7EB"

# Values that mean the same on every page.
TIER_COLOURS = {"platinum": "#4B5D73", "gold": "#C9A227", "silver": "#9AA5B1", "bronze": "#B0723A"}
RISK_COLOURS = {"high": "#C0392B", "medium": "#E6A23C", "low": "#2E8B57"}
MOVEMENT_COLOURS = {"upgrade candidate": "#2E8B57", "stable": "#9AA5B1", "downgrade risk": "#C0392B"}
SCORER_COLOURS = {"model": ACCENT, "baseline": "#9AA5B1"}
# RFM segments from the most to the least valuable (models_ml.rfm names them).
SEGMENT_COLOURS = {
    "champions": "#1F6FB2",
    "loyal customers": "#3F8FCF",
    "potential loyalists": "#6FB1E4",
    "new customers": "#2E8B57",
    "promising": "#7CC08F",
    "need attention": "#E6A23C",
    "about to sleep": "#F0C36B",
    "at risk": "#D9534F",
    "can't lose them": "#C0392B",
    "hibernating": "#9AA5B1",
    "lost": "#6B7280",
    "unscored": "#D1D5DB",
}
HEATMAP_SCHEME = "blues"


def colour_scale(colours: dict[str, str], present: list[str] | None = None) -> alt.Scale:
    """An Altair colour scale that gives each known value its colour; unknown values get the accent."""
    domain = list(colours) if present is None else list(present)
    return alt.Scale(domain=domain, range=[colours.get(value, ACCENT) for value in domain])


def chart_locale(currency: str, locale: str) -> dict:
    """Vega's number locale for ``locale`` and ``currency``: axes and tooltips write 1.234,5 where the tables do."""
    pattern = Locale.parse(locale).currency_formats["standard"].pattern.split(";")[0]
    symbol = numbers.get_currency_symbol(currency, locale=locale)
    before, _, after = pattern.partition("#")
    after = after.lstrip("#,0.")
    return {
        "number": {
            "decimal": numbers.get_decimal_symbol(locale),
            "thousands": numbers.get_group_symbol(locale),
            "grouping": [3],
            "currency": [before.replace("¤", symbol), after.replace("¤", symbol)],
        }
    }


def _crm_theme() -> alt.theme.ThemeConfig:
    settings = load_settings()
    label = {"labelFont": FONT, "titleFont": FONT, "labelColor": MUTED, "titleColor": INK, "titleFontWeight": 600}
    return {
        "config": {
            "font": FONT,
            "locale": chart_locale(settings.currency, settings.display_locale),
            "background": "white",
            "view": {"stroke": None},
            "axis": {**label, "gridColor": GRID, "domainColor": GRID, "tickColor": GRID, "labelFontSize": 12},
            "legend": {**label, "labelFontSize": 12, "orient": "bottom"},
            "title": {"font": FONT, "color": INK, "fontSize": 15, "anchor": "start"},
            "range": {"category": [ACCENT, "#E6A23C", "#2E8B57", "#C0392B", "#6F42C1", "#9AA5B1"]},
            "bar": {"color": ACCENT},
            "line": {"color": ACCENT, "strokeWidth": 2},
            "point": {"color": ACCENT},
        }
    }


alt.theme.register("crm", enable=True)(_crm_theme)


@dataclass(frozen=True)
class Formats:
    """Number, amount and share formats in the settings' locale and currency."""

    currency: str
    locale: str = "en_GB"

    def money(self, value: object, decimals: int = 0) -> str:
        if _missing(value):
            return "–"
        # the locale's own currency pattern (symbol before or after, its separators), without the decimals
        pattern = None if decimals else _whole_currency_pattern(self.locale)
        return numbers.format_currency(
            float(value), self.currency, format=pattern, locale=self.locale, currency_digits=decimals != 0
        )

    def count(self, value: object) -> str:
        return "–" if _missing(value) else numbers.format_decimal(round(float(value)), locale=self.locale)

    def number(self, value: object, decimals: int = 2) -> str:
        if _missing(value):
            return "–"
        return numbers.format_decimal(float(value), format=f"#,##0.{'0' * decimals}", locale=self.locale)

    def share(self, value: object, decimals: int = 1) -> str:
        if _missing(value):
            return "–"
        return numbers.format_percent(float(value), format=f"#,##0.{'0' * decimals}%", locale=self.locale)

    def points(self, value: object) -> str:
        """A change of a share, in percentage points."""
        return "–" if _missing(value) else f"{float(value) * 100:+.1f} pp"

    def styled(self, frame: pd.DataFrame, kinds: dict[str, str]):
        """``frame`` as a pandas Styler showing each listed column as ``money``, ``count``, ``number`` or ``share``
        (sorting still uses the numbers)."""
        formatters = {column: getattr(self, kind) for column, kind in kinds.items() if column in frame.columns}
        others = [column for column in frame.columns if column not in formatters]
        # a missing value reads "–" in every column, text ones too (Styler shows None otherwise)
        return frame.style.format(formatters, na_rep="–").format(None, na_rep="–", subset=others)


def _whole_currency_pattern(locale: str) -> str:
    pattern = Locale.parse(locale).currency_formats["standard"].pattern
    return re.sub(r"\.0+", "", pattern)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA
