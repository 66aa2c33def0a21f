"""What every model checks at entry, and the one error a model raises when the data cannot support it.

Two kinds of failure, kept apart on purpose:

- A frame that breaks a function's contract (a column missing, a key duplicated, text where numbers belong) is a
  defect in the caller: :func:`validate_columns` raises ``ValueError`` naming the column, and the night should
  fail loudly.
- Data that honour the contract but cannot support a model (every customer bought once, one outcome only, a
  feature no source fills, less history than the holdout) are a fact about the company's data, not a defect:
  the model raises :class:`InsufficientDataError` with the reason in plain words, and the caller publishes the
  baseline (or no scores) with that reason in its model run. A model never fails the night for such data.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

__all__ = ["KEY", "InsufficientDataError", "validate_columns"]

KEY = "customer_id"


class InsufficientDataError(ValueError):
    """The data honour the model's contract but cannot support the model; ``reason`` says why in plain words.

    A ``ValueError`` so that callers written against the contract errors still catch it; callers that publish a
    baseline catch this type only, so that a contract error still fails loudly.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def validate_columns(
    frame: pl.DataFrame,
    columns: Sequence[str],
    caller: str,
    *,
    key: str | None = KEY,
    numeric: Sequence[str] = (),
    not_null: Sequence[str] = (),
    finite: Sequence[str] = (),
    non_negative: Sequence[str] = (),
    name: str = "input",
    advice: str = "",
) -> None:
    """Check that ``frame`` has ``columns``, a unique non-null ``key``, and the values each rule asks for.

    The one entry check of every model (as pymc-marketing's ``_validate_cols``); models add the rules of their own
    method (recency within T, a known tier) after it.

    Parameters
    ----------
    frame
        One row per ``key``.
    columns
        Columns the caller reads; ``key`` is required too and need not be listed.
    caller
        Prefix of the error message, e.g. ``"rfm"`` or ``"fit_clv"``.
    key
        The column that must be unique and non-null, or None for a frame without one.
    numeric
        Columns that must hold numbers (booleans are accepted).
    not_null
        Numeric columns that must have a value for every row: null and NaN are refused.
    finite
        Numeric columns without infinite values.
    non_negative
        Numeric columns without negative values.
    name
        What the frame is, for the message (``"actual"``, ``"training data"``).
    advice
        What to do about a null, appended to its message (e.g. ``"fill them before segmenting"``).

    Raises
    ------
    ValueError
        Naming the missing column(s), the duplicated keys, or the column that breaks a rule.
    """
    required = list(dict.fromkeys([*([key] if key else []), *columns, *numeric, *not_null, *finite, *non_negative]))
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise ValueError(f"{caller}: {name} lacks column(s) {', '.join(missing)}; needs {', '.join(required)}")
    if key is not None:
        if frame[key].null_count():
            raise ValueError(f"{caller}: {key} has {frame[key].null_count()} null(s)")
        if frame[key].is_duplicated().any():
            duplicated = frame.filter(pl.col(key).is_duplicated())[key].unique(maintain_order=True).head(3)
            raise ValueError(f"{caller}: {key} must be unique; duplicated: {duplicated.to_list()}")
    for column in dict.fromkeys([*numeric, *not_null, *finite, *non_negative]):
        dtype = frame.schema[column]
        if not (dtype.is_numeric() or dtype == pl.Boolean or dtype == pl.Null):
            raise ValueError(f"{caller}: {column} is {dtype}, not numeric")
    for column in not_null:
        values = frame[column].cast(pl.Float64)
        nulls = values.fill_nan(None).null_count()
        if nulls:
            raise ValueError(f"{caller}: {column} has {nulls} null or NaN value(s)" + (f"; {advice}" if advice else ""))
    for column in finite:
        if frame[column].cast(pl.Float64).is_infinite().any():
            raise ValueError(f"{caller}: {column} has infinite values")
    for column in non_negative:
        if (frame[column].cast(pl.Float64) < 0).any():
            raise ValueError(f"{caller}: {column} has negative values")
