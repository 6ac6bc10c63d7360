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
