"""The pieces pages are built from: a formatted table with its downloads, a KPI tile with its change, charts.

Pages show formatted tables and charts, never a raw dataframe: :func:`table` takes the columns to show with their
labels and kinds (money, count, number, share, text) and offers the same rows as CSV and Excel, written by
pipelines/exports.py (formula-like text neutralised).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from dashboards.theme import HEATMAP_SCHEME, Formats
from pipelines.exports import write_csv, write_excel


def _file_stem(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_") or "table"


@st.cache_data(show_spinner=False, max_entries=64)
def _downloads(frame: pd.DataFrame, stem: str) -> tuple[bytes, bytes]:
    with tempfile.TemporaryDirectory() as folder:
        csv = write_csv(frame, Path(folder) / f"{stem}.csv").read_bytes()
        excel = write_excel(frame, Path(folder) / f"{stem}.xlsx", sheet=stem[:31]).read_bytes()
    return csv, excel


def download_buttons(frame: pd.DataFrame, title: str) -> None:
    """CSV and Excel downloads of ``frame`` (the columns as shown, with their labels)."""
    stem = _file_stem(title)
    csv, excel = _downloads(frame, stem)
    row = st.container(horizontal=True)
    # on_click="ignore": a download does not run the page again
    row.download_button(
        "CSV", csv, f"{stem}.csv", "text/csv", key=f"csv_{stem}", icon=":material/download:", on_click="ignore"
    )
    row.download_button(
        "Excel",
        excel,
        f"{stem}.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        key=f"xlsx_{stem}",
        icon=":material/download:",
        on_click="ignore",
    )


def table(
    frame: pd.DataFrame,
    columns: dict[str, tuple[str, str]],
    formats: Formats,
    title: str,
    *,
    downloads: bool = True,
    height: int | str = "auto",
) -> pd.DataFrame:
    """Show ``columns`` ({column: (label, kind)}) of ``frame`` as a formatted table titled ``title``, with its CSV
    and Excel downloads; returns the table as shown (labelled columns)."""
    labels = [label for label, _ in columns.values()]
    if len(set(labels)) < len(labels):
        raise ValueError(f"table {title!r}: two columns share a label ({labels}); each needs its own")
    shown = frame[list(columns)].rename(columns={name: label for name, (label, _) in columns.items()})
    kinds = {label: kind for label, kind in columns.values() if kind != "text"}
    st.dataframe(formats.styled(shown, kinds), hide_index=True, width="stretch", height=height)
    if downloads:
        download_buttons(shown, title)
    return shown


def kpi(container, label: str, value: str, change: str | None = None, help: str | None = None, inverse=False):
    """A KPI tile; ``change`` ("+4.1% against the 12 months before") is coloured green up, red down (``inverse``
    for figures where up is bad, such as revenue at risk)."""
    container.metric(label, value, delta=change, delta_color="inverse" if inverse else "normal", help=help, border=True)


def relative_change(current: object, previous: object) -> float | None:
    """current / previous - 1, or None when either is unknown or previous is zero."""
    if current is None or previous is None or pd.isna(current) or pd.isna(previous) or float(previous) == 0:
        return None
    return float(current) / float(previous) - 1


def chart(spec: alt.Chart | alt.LayerChart) -> None:
    """Show an Altair chart in the project's theme (not Streamlit's)."""
    st.altair_chart(spec, theme=None, width="stretch")


def heatmap(
    frame: pd.DataFrame, x: str, y: str, value: str, *, x_title: str, y_title: str, value_title: str, value_format: str
) -> alt.LayerChart:
    """A labelled heatmap of ``value`` over ``x`` and ``y`` (ordinal axes), with the value written in each cell."""
    base = alt.Chart(frame).encode(
        x=alt.X(f"{x}:O", title=x_title, axis=alt.Axis(labelAngle=0)),
        y=alt.Y(f"{y}:O", title=y_title, sort="descending"),
    )
    cells = base.mark_rect().encode(
        color=alt.Color(f"{value}:Q", title=value_title, scale=alt.Scale(scheme=HEATMAP_SCHEME),
                        legend=alt.Legend(format=value_format)),
        tooltip=[alt.Tooltip(f"{x}:O", title=x_title), alt.Tooltip(f"{y}:O", title=y_title),
                 alt.Tooltip(f"{value}:Q", title=value_title, format=value_format)],
    )  # fmt: skip
    text = base.mark_text(fontSize=11).encode(
        text=alt.Text(f"{value}:Q", format=value_format),
        color=alt.condition(f"datum['{value}'] > {frame[value].max() / 2 if len(frame) else 0}",
                            alt.value("white"), alt.value("#262730")),
    )  # fmt: skip
    return cells + text


def empty(message: str) -> None:
    """What a section shows when the data cannot support it: what is missing and what to do."""
    st.info(message, icon=":material/info:")
