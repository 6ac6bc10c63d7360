"""ISO-8601 timestamps as the Chat and Sell APIs write them, vectorized."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

# "2021-04-26T13:54:02+00:00Z" (seen in real exports): an offset followed by a stray Z.
_OFFSET_THEN_Z = r"([+-]\d\d:?\d\d)Z$"


def parse_utc(values: Sequence[object] | pd.Series) -> pd.Series:
    """Parse to tz-aware UTC (microseconds); unparseable or missing values become NaT.

    Accepts whole seconds or fractions, ``Z`` or an offset, the ``+00:00Z`` form, and epoch
    seconds given as numbers.
    """
    series = pd.Series(values, dtype="object")
    if pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        # the usual export: all text. Parse it as it is; only what that refuses (padding, the
        # +00:00Z form, garbage) takes the slower cleaning path below
        parsed = _to_datetime(series)
        retry = parsed.isna() & series.notna()
        if retry.any():
            parsed = parsed.where(~retry, _parse_mixed(series[retry]))
        return parsed.astype("datetime64[us, UTC]")
    return _parse_mixed(series).astype("datetime64[us, UTC]")


def _to_datetime(text: pd.Series) -> pd.Series:
    """ISO 8601 text to UTC timestamps in microseconds (as stored), NaT where it is not one.

    pandas picks one unit for the whole batch: beside a stamp with nanoseconds, one of year 1 or
    9999 does not fit it, and is coerced to NaT or makes the batch raise. What the batch did not
    parse is therefore parsed again value by value, each in its own unit (only those: garbage
    is rare)."""
    try:
        parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
        parsed = parsed.astype("datetime64[us, UTC]")
    except pd.errors.OutOfBoundsDatetime:
        parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us, UTC]")
    missing = parsed.isna() & text.notna()
    if missing.any():
        again = [_one(value) for value in text[missing]]
        parsed[missing] = pd.Series(again, index=text.index[missing], dtype=parsed.dtype)
    return parsed


def _one(value: object) -> pd.Timestamp:
    one = pd.to_datetime(pd.Series([value]), utc=True, format="ISO8601", errors="coerce")
    return one.astype("datetime64[us, UTC]").iloc[0]


def _parse_mixed(series: pd.Series) -> pd.Series:
    """Text (cleaned of padding and a stray Z after an offset) and epoch seconds."""
    numeric = series.map(lambda v: isinstance(v, int | float) and not isinstance(v, bool))
    text = series.where(~numeric).astype("string").str.strip()
    text = text.str.replace(_OFFSET_THEN_Z, r"\1", regex=True)
    parsed = _to_datetime(text)
    if numeric.any():
        epochs = pd.to_datetime(
            pd.to_numeric(series.where(numeric), errors="coerce"),
            unit="s",
            utc=True,
            errors="coerce",
        )
        parsed = parsed.where(~numeric, epochs)
    return parsed


def iso(values: pd.Series) -> pd.Series:
    """Fixed-width ISO strings (``2021-04-26T13:54:02.000000Z``), sortable as text; NaT -> None.

    numpy's formatter, not ``strftime`` (three times as fast); the same text for every year
    a microsecond timestamp holds (0001 to 9999, zero-padded).
    """
    stamps = values.dt.tz_convert("UTC").to_numpy(dtype="datetime64[us]")
    text = np.char.add(np.datetime_as_string(stamps, unit="us"), "Z").astype(object)
    return pd.Series(text, index=values.index, dtype=object).where(values.notna(), None)
