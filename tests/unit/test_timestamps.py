"""Timestamps as the exports write them: the all-text fast path parses as the cleaning path does."""

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from etl.extract.timestamps import _parse_mixed, parse_utc

SHAPES = [
    "2021-04-26T13:54:02Z",
    "2021-04-26T13:54:02.123456Z",
    "2021-04-26T13:54:02.5Z",
    "2021-04-26T13:54:02+00:00",
    "2021-04-26T22:54:02+09:00",
    "2021-04-26T13:54:02+00:00Z",  # seen in real exports
    "2021-04-26T22:54:02.25+09:00Z",
    " 2021-04-26T13:54:02Z ",
    "2021-04-26",
    "2021-04-26 13:54:02",
    "not a time",
    "",
    None,
]


def _slow(values) -> pd.Series:
    return _parse_mixed(pd.Series(values, dtype="object")).astype("datetime64[us, UTC]")


def test_every_shape_parses_to_utc_microseconds():
    parsed = parse_utc(SHAPES)
    assert str(parsed.dtype) == "datetime64[us, UTC]"
    z = pd.Timestamp("2021-04-26T13:54:02Z")
    assert list(parsed[[0, 3, 4, 5, 7]]) == [z] * 5
    assert parsed[1] == pd.Timestamp("2021-04-26T13:54:02.123456Z")
    assert parsed[6] == pd.Timestamp("2021-04-26T13:54:02.25Z")
    assert parsed[10:].isna().all()


def test_numbers_are_epoch_seconds_beside_text():
    parsed = parse_utc([1619445242, "2021-04-26T13:54:02Z", 1619445242.5, True])
    assert parsed[0] == parsed[1] == pd.Timestamp("2021-04-26T13:54:02Z")
    assert parsed[2] == pd.Timestamp("2021-04-26T13:54:02.5Z")
    assert pd.isna(parsed[3])


@given(st.lists(st.sampled_from(SHAPES), max_size=30))
def test_fast_path_equals_the_cleaning_path(values):
    pd.testing.assert_series_equal(parse_utc(values), _slow(values), check_index_type=False)


def test_a_nanosecond_stamp_beside_year_1_or_9999_costs_neither():
    """pandas parses a batch in one unit; nanoseconds beside year 1 made the whole batch raise
    (every chat of it lost), and beside year 9999 turned the far one into NaT (a reject)."""
    nanos = "2021-04-26T13:54:02.123456789Z"
    parsed = parse_utc([nanos, "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "garbage", None])
    assert str(parsed.dtype) == "datetime64[us, UTC]"
    assert parsed[0] == pd.Timestamp("2021-04-26T13:54:02.123456Z")
    assert parsed[1] == pd.Timestamp("0001-01-01T00:00:00Z")
    assert parsed[2] == pd.Timestamp("9999-12-31T23:59:59Z")
    assert parsed[3:].isna().all()
    mixed = parse_utc([" " + nanos, "9999-12-31T23:59:59+00:00Z", 1619445242])
    assert mixed[1] == pd.Timestamp("9999-12-31T23:59:59Z")
    assert mixed[2] == pd.Timestamp("2021-04-26T13:54:02Z")
