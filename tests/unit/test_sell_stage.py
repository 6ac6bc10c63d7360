"""The Sell stage: full rows wait on disk, the run keeps only the index columns."""

import pandas as pd

from etl.stage.sell import SellStage, read_part, spill


def _part(ids, title, updated):
    return pd.DataFrame(
        {
            "id": pd.array(ids, dtype="Int64"),
            "email_normalized": [f"p{i}@example.com" for i in ids],
            "title": title,
            "updated_at": pd.to_datetime(updated, utc=True),
            "sell_hash": [f"{title}{i}" for i in ids],
        }
    )


def test_keeps_index_columns_and_gives_back_every_full_frame():
    keep = ("id", "email_normalized", "updated_at", "sell_hash")
    with SellStage() as stage:

        def add(name, resource, frame, keep=None):  # as a worker does: spill, then adopt
            path = stage.directory / name
            stage.adopt(resource, path, spill(frame, path, keep))

        add("a.pickle", "leads", _part([3, 1], "old", "2026-10-01"), keep)
        add("b.pickle", "leads", _part([2, 3], "new", "2026-10-05"), keep)
        add("c.pickle", "users", _part([9], "admin", "2026-10-01"))  # no keep: every column
        index = stage.index("leads")
        assert list(index.columns) == ["id", "email_normalized", "updated_at", "sell_hash"]
        # one row per id, its newest version, in id order
        assert index["id"].tolist() == [1, 2, 3]
        assert index["sell_hash"].tolist() == ["old1", "new2", "new3"]
        assert "title" in stage.index("users").columns
        full = [read_part(path) for path in stage.paths("leads")]
        assert [f["title"].iloc[0] for f in full] == ["old", "new"]
        assert all("title" in f.columns for f in full)
        directory = stage.directory
        assert any(directory.iterdir())
    assert not directory.exists()  # scratch files go with the stage


def test_index_columns_of_few_values_share_one_object_per_value():
    """A million records' statuses parsed are a million strings; the kept index holds each
    distinct value once (and a pickle to the run carries it once). Values are unchanged."""
    statuses = ["".join(["N", "e", "w"]) for _ in range(3000)] + [None]  # each its own object
    frame = pd.DataFrame(
        {
            "id": pd.array(range(3001), dtype="Int64"),
            "status": pd.Series(statuses, dtype="str"),
            "owner_ref": pd.Series(
                [f"{i % 3}@example.com" for i in range(3000)] + [None], dtype=object
            ),
            "email_normalized": [f"p{i}@example.com" for i in range(3001)],
        }
    )
    before = frame.copy()
    with SellStage() as stage:
        index = spill(frame, stage.directory / "a.pickle")
    pd.testing.assert_frame_equal(index, before)
    assert len({id(v) for v in index["status"].iloc[:3000]}) == 1
    assert len({id(v) for v in index["owner_ref"].iloc[:3000]}) == 3
    assert index["owner_ref"].iloc[3000] is None  # a missing value stays as it was
    assert len({id(v) for v in index["email_normalized"]}) == 3001  # many values: left alone
