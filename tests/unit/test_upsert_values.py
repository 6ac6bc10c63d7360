"""Frames to driver values: timestamps formatted in one numpy pass equal strftime's text."""

import numpy as np
import pandas as pd
import pytest

from etl.load.upsert import _db_values

FORMATS = {"sqlite": "%Y-%m-%d %H:%M:%S.%f", "postgresql": "%Y-%m-%dT%H:%M:%S.%f+00:00"}


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_timestamps_as_the_store_keeps_them(dialect):
    stamps = pd.Series(
        pd.to_datetime(
            [
                "2026-11-02T09:00:00.123456Z",
                None,
                "2026-11-02T18:00:00+09:00",
                "0999-01-01T00:00:00Z",
            ],
            utc=True,
            format="ISO8601",
        )
    ).astype("datetime64[us, UTC]")
    expected = [None if pd.isna(v) else v.strftime(FORMATS[dialect]) for v in stamps[:3]]
    values = _db_values(stamps, dialect)
    assert values[:3] == expected
    assert values[3].startswith("0999-01-01")  # four-digit years, as both stores parse them
    assert expected[0].startswith("2026-11-02") and expected[2] == expected[2].replace("18:", "09:")
    many = pd.Series(pd.date_range("1970-01-01", periods=5_000, freq="7919s", tz="UTC"))
    assert _db_values(many, dialect) == [v.strftime(FORMATS[dialect]) for v in many]


def test_naive_and_empty_columns():
    naive = pd.Series(pd.to_datetime(["2026-11-02 09:00:00", None]))
    assert _db_values(naive, "sqlite") == ["2026-11-02 09:00:00.000000", None]
    assert _db_values(pd.Series([], dtype="datetime64[us, UTC]"), "postgresql") == []
    assert _db_values(pd.Series([pd.NaT, pd.NaT], dtype="datetime64[us, UTC]"), "sqlite") == [
        None,
        None,
    ]


def test_a_year_past_9999_still_formats():
    far = pd.Series(
        np.array(["2026-01-01T00:00:00", "12000-01-01T00:00:00"], dtype="datetime64[us]")
    )
    values = _db_values(far, "sqlite")
    assert values[0] == "2026-01-01 00:00:00.000000" and values[1].startswith("12000-01-01")
