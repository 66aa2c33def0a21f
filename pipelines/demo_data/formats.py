"""How each source system writes its files (the dialects of docs/demo_data.md), and small renderers."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import polars as pl


def write_erp_csv(frames: pl.DataFrame | Iterable[pl.DataFrame], path: Path, decimals: int = 2) -> int:
    """ERP: ``;`` delimiter, decimal comma, UTF-8 without BOM, ``\\n``, ISO dates and local timestamps.

    ``frames`` is one frame, or the chunks of one file in order (the header is written once), so a file of
    tens of millions of rows never has to be in memory whole.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks = [frames] if isinstance(frames, pl.DataFrame) else frames
    rows, first = 0, True
    with path.open("wb") as handle:
        for chunk in chunks:
            chunk.write_csv(
                handle,
                include_header=first,
                separator=";",
                decimal_comma=True,
                float_precision=decimals,
                date_format="%Y-%m-%d",
                datetime_format="%Y-%m-%d %H:%M:%S",
                line_terminator="\n",
                quote_style="necessary",
            )
            rows, first = rows + chunk.height, False
    return rows


def write_crm_csv(frame: pl.DataFrame, path: Path) -> int:
    """SuiteCRM: ``,`` delimiter, every field quoted, ``\\r\\n``, UTF-8 with BOM (values pre-rendered as text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path, separator=",", quote_style="always", line_terminator="\r\n", include_bom=True)
    return frame.height


def write_asterisk_csv(frame: pl.DataFrame, path: Path) -> int:
    """Asterisk ``cdr_csv``: no header, strings quoted, integers bare, ``\\n``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path, include_header=False, quote_style="non_numeric", line_terminator="\n")
    return frame.height


def write_tool_csv(frames: pl.DataFrame | Iterable[pl.DataFrame], path: Path) -> int:
    """Marketing tool and web analytics: ``,``, quoted when needed, UTF-8, ISO 8601 UTC ``...Z`` timestamps.

    ``frames`` is one frame or the chunks of one file in order (the header is written once).
    """
    with ToolCsv(path) as writer:
        for chunk in [frames] if isinstance(frames, pl.DataFrame) else frames:
            writer.write(chunk)
    return writer.rows


class ToolCsv:
    """One marketing-tool or web-analytics CSV written chunk by chunk (``with ToolCsv(path) as w: w.write(f)``),
    for files too large to hold whole; the header comes with the first chunk."""

    def __init__(self, path: Path):
        self.path = path
        self.rows = 0
        self._first = True

    def __enter__(self) -> ToolCsv:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("wb")
        return self

    def __exit__(self, *exc) -> None:
        self._handle.close()

    def write(self, frame: pl.DataFrame) -> None:
        frame.write_csv(
            self._handle,
            include_header=self._first,
            separator=",",
            quote_style="necessary",
            date_format="%Y-%m-%d",
            datetime_format="%Y-%m-%dT%H:%M:%SZ",
            line_terminator="\n",
        )
        self.rows += frame.height
        self._first = False


def write_parquet(frame: pl.DataFrame, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path, compression="zstd", statistics=True)
    return frame.height


def prefixed_numbers(prefix: str, numbers, width: int) -> pl.Expr:
    """``prefix`` followed by the zero-padded numbers (``C0000001``)."""
    return pl.concat_str(pl.lit(prefix), pl.Series(numbers).cast(pl.String).str.zfill(width))
