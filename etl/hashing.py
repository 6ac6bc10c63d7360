"""Content hashes of frame rows: how chatsell tells a changed row from the one it stored."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pandas as pd


def content_hash(frame: pd.DataFrame) -> pd.Series:
    """A stable 64-bit hash (16 hex characters) of each row's values, vectorized.

    Strings, integers and missing values hash as they are; timestamps by their microseconds.
    Nested values must be canonical text already (chatsell keeps them as sorted-key JSON).
    """
    combined = row_hashes(frame)
    return pd.Series(combined.astype(">u8").view("S8"), index=frame.index).map(bytes.hex)


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """``content_hash``'s 64 bits, as unsigned integers (one per row)."""
    combined = np.zeros(len(frame), dtype=np.uint64)
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_datetime64_any_dtype(column.dtype):
            values = pd.util.hash_array(column.to_numpy(dtype="datetime64[us]").view("int64"))
        else:
            values = _hash_objects(column.to_numpy(dtype=object, na_value=None))
        combined = (combined * np.uint64(1_000_003)) ^ values
    return combined


_MISSING = np.uint64(np.iinfo(np.uint64).max)  # what ``hash_array`` gives a missing value


def _hash_objects(values: np.ndarray) -> np.ndarray:
    """``pd.util.hash_array(values)``, faster on text that is mostly distinct (transcripts,
    links): hashing it as it is skips factorizing it first, and gives the same hashes."""
    sample = values[:1000]
    if (
        len(values)
        and len(set(sample)) * 2 > len(sample)
        and pd.api.types.infer_dtype(values, skipna=True) == "string"
    ):
        missing = pd.isna(values)
        if not missing.any():
            return pd.util.hash_array(values, categorize=False)
        out = np.full(len(values), _MISSING, dtype=np.uint64)
        out[~missing] = pd.util.hash_array(values[~missing], categorize=False)
        return out
    return pd.util.hash_array(values)


def email_hash(salt: str, email: str) -> str:
    """The keyed hash an erased email is remembered by (SPEC 10): HMAC-SHA256 of the normalized
    email under the store's random salt, so the store holds no list of who asked to be erased
    and a hash taken from it matches nothing in another store."""
    return hmac.new(salt.encode(), email.encode(), hashlib.sha256).hexdigest()
