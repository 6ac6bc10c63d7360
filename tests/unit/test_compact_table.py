"""``CompactTable`` gives, column by column, exactly the frame ``crm_after`` would have made:
the store's rows with the changed ones overlaid, the origin filled, a filled phone kept."""

from __future__ import annotations

import pandas as pd
import pytest

from etl.transform.sell import CompactTable, SellDelta, crm_after


def _stored(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows if rows else [],
        columns=["id", "owner_id", "name", "email_normalized", "phone", "origin", "created_run_id"],
    )
    for column in ("id", "owner_id", "created_run_id"):
        frame[column] = frame[column].astype("Int64")
    return frame


STORED = _stored(
    [
        (1, 10, "Ann", "a@example.com", "+1 555", "sell", None),
        (2, None, "Bo", "b@example.com", None, "sell", None),
        (-3, 11, "Chat Lead", "c@example.com", "+81 3", "chat", 4),
    ]
)
# the export: lead 1 again without its phone (chatsell filled it), lead 7 new; no origin column
CHANGED = pd.DataFrame(
    {
        "id": pd.array([1, 7], dtype="Int64"),
        "owner_id": pd.array([12, None], dtype="Int64"),
        "name": ["Ann B.", "Gus"],
        "email_normalized": ["a@example.com", None],
        "phone": ["", "+44 20"],
        "sell_hash": ["h1", "h7"],
    }
)


@pytest.mark.parametrize(
    "stored, changed",
    [(STORED, None), (STORED, CHANGED), (_stored([]), CHANGED), (STORED, CHANGED.iloc[0:0])],
    ids=["unchanged", "overlaid", "empty store", "nothing changed"],
)
def test_each_column_is_the_frame_crm_after_makes(stored, changed):
    delta = SellDelta({"leads": changed} if changed is not None else {})
    expected = crm_after({"leads": stored.copy()}, delta)["leads"]
    table = CompactTable(
        "leads", {c: stored[c].copy() for c in stored.columns}, len(stored), changed
    )
    assert len(table.index) == len(expected)
    for column in expected.columns:
        pd.testing.assert_series_equal(table[column], expected[column], check_names=False)
    assert "phone" in table and table.get("missing") is None
    del table["name"]
    assert "name" not in table and "name" not in table.columns


def _compact(frame: pd.DataFrame) -> dict:
    """``frame``'s columns as ``Store.crm_compact`` holds them: text in ``StringDType``."""
    import numpy as np

    from etl.load.store.crm import COMPACT_TEXT, CompactText

    text = np.dtypes.StringDType(na_object=None)
    return {
        c: CompactText(
            c, np.array(frame[c].astype(object).where(frame[c].notna(), None), dtype=text)
        )
        if c in COMPACT_TEXT
        else frame[c].copy()
        for c in frame.columns
    }


@pytest.mark.parametrize(
    "stored, changed",
    [(STORED, None), (STORED, CHANGED), (_stored([]), CHANGED), (STORED, CHANGED.iloc[0:0])],
    ids=["unchanged", "overlaid", "empty store", "nothing changed"],
)
@pytest.mark.parametrize(
    "values", [["sell"], ["chat", "sell", "other"], [], ["Ann", "Gus", "Bo"], ["a@example.com"]]
)
def test_text_isin_is_the_columns_isin_without_building_it(stored, changed, values):
    """Asked whether a text column's values are among some, a table answers as the built
    column would, overlay included, and builds no column to do it."""
    table = CompactTable("leads", _compact(stored), len(stored), changed)
    for column in ("origin", "name", "email_normalized"):
        found = table.text_isin(column, values)
        # none built (but the origin, which the overlay fills in)
        assert set(table._cache) <= {"origin"}
        expected = CompactTable("leads", _compact(stored), len(stored), changed)[column]
        assert found.dtype == bool and found.tolist() == expected.isin(values).tolist()
