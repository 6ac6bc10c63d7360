"""Frames to driver values: timestamps formatted in one numpy pass equal strftime's text."""

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import bindparam
from sqlalchemy.dialects import sqlite

from etl.load import schema
from etl.load.upsert import BATCH, Rows, _db_values, prepare_rows

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


def test_prepared_rows_frozen_give_the_same_batches_in_any_column_order():
    """``prepare_rows``: one row per key (the last), in key order, constants added; frozen to
    tuples (as the planner sends them to a writer process), the batches are the same, for the
    statement's own parameter order too."""
    count = BATCH + 7
    frame = pd.DataFrame(
        {
            "chat_id": [f"c{i % (count - 3):06d}" for i in range(count)][::-1],
            "outcome": ["matched"] * count,
            "match_count": np.arange(count),
            "reason": [None, "why"] * (count // 2) + [None] * (count % 2),
            "not_a_column": 0,
        }
    )
    rows = prepare_rows(frame, schema.run_outcomes, ["run_id", "chat_id"], "sqlite", {"run_id": 7})
    # in the table's order, the constant's place included: the order an INSERT binds them in
    assert rows.columns == ["run_id", "chat_id", "outcome", "reason", "match_count"]
    stmt = sqlite.insert(schema.run_outcomes).values({c: bindparam(c) for c in rows.columns})
    assert list(stmt.compile(dialect=sqlite.dialect()).positiontup) == rows.columns
    assert len(rows) == count - 3
    every = [
        dict(zip(rows.columns, row, strict=True))
        for batch in rows.batches(rows.columns)
        for row in batch
    ]
    assert [row["chat_id"] for row in every] == sorted({f"c{i:06d}" for i in range(count - 3)})
    assert {row["run_id"] for row in every} == {7}
    # the last row of a repeated key wins (the frame runs backwards: the smaller number)
    assert [every[i]["match_count"] for i in (0, 1, 3)] == [count - 1, count - 2, count - 4]
    frozen = rows.freeze()
    assert frozen.freeze() is frozen and not frozen.values
    for names in (rows.columns, ["run_id", "reason", "chat_id", "match_count", "outcome"]):
        assert list(frozen.batches(names)) == list(rows.batches(names))
    assert [len(batch) for batch in frozen.batches(rows.columns)] == [BATCH, count - 3 - BATCH]


def test_frozen_rows_pickle_to_the_same_rows_without_the_picklers_memo():
    """Frozen rows go to the writer process in a pickle of their own, made without the memo
    (a dict entry per string and tuple: the planner's costliest step at a million chats). Every
    value a row holds comes back equal, a string shared by rows included; rows not yet frozen
    pickle as they are."""
    import pickle
    import pickletools

    shared = "shared@example.com"
    values = {
        "text": np.array([shared, shared, None, "日本語", ""], dtype=object),
        "number": np.array([1, -(2**62), 0, 7, 3], dtype=object),
        "real": np.array([0.5, None, float("inf"), -0.0, 1e300], dtype=object),
        "flag": np.array([True, False, None, True, False], dtype=object),
        "blob": np.array([b"\x00\xff", None, b"", b"a", b"b"], dtype=object),
    }
    rows = Rows(list(values), values, 5)
    frozen = rows.freeze()
    back = pickle.loads(pickle.dumps(("plan", frozen), protocol=pickle.HIGHEST_PROTOCOL))[1]
    assert back == frozen and back.tuples[0][0] == back.tuples[1][0] == shared
    assert back.tuples[2] == (None, 0, float("inf"), None, b"")
    inner = frozen.__reduce__()[1][2]  # the rows' own pickle
    assert pickle.loads(inner) == frozen.tuples  # noqa: S301
    assert not [
        op for op, _arg, _pos in pickletools.genops(inner) if "MEMO" in op.name or "PUT" in op.name
    ]
    unfrozen = pickle.loads(pickle.dumps(rows))
    assert unfrozen.tuples is None and list(unfrozen.batches(rows.columns)) == list(
        rows.batches(rows.columns)
    )
