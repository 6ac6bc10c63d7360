"""CrmIndex.lookup: every target of a chat's email, in the index's order, hash collisions apart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from etl.transform import match
from etl.transform.match import TARGET_COLUMNS, CrmIndex


def _index() -> CrmIndex:
    rows = [
        ("lead", 1, "b@example.com"),
        ("contact", 10, "a@example.com"),
        ("lead", 2, "a@example.com"),
        ("contact", 11, None),
        ("lead", 3, "c@example.com"),
        ("contact", 12, "b@example.com"),
    ]
    base = pd.DataFrame(
        {
            "record_type": [r[0] for r in rows],
            "record_id": [r[1] for r in rows],
            "email_normalized": [r[2] for r in rows],
        }
    )
    for column in TARGET_COLUMNS:
        if column not in base:
            base[column] = None
    empty = pd.DataFrame()
    return CrmIndex(base=base[list(TARGET_COLUMNS)], deals=empty, users=empty)


CHATS = pd.DataFrame(
    {
        "chat_id": ["x", "y", "z", "w"],
        "email_normalized": [
            "a@example.com",
            "nobody@example.com",
            "b@example.com",
            "a@example.com",
        ],
    }
)
EXPECTED = [
    ("x", "contact", 10), ("x", "lead", 2),
    ("z", "lead", 1), ("z", "contact", 12),
    ("w", "contact", 10), ("w", "lead", 2),
]  # fmt: skip


def _found(index: CrmIndex) -> list[tuple]:
    found = index.lookup(CHATS)
    return list(found[["chat_id", "record_type", "record_id"]].itertuples(index=False, name=None))


def test_lookup_gives_every_target_of_the_email_in_chat_then_index_order():
    assert _found(_index()) == EXPECTED


@pytest.mark.parametrize("collide", ["all-equal", "two-buckets"])
def test_lookup_tells_apart_emails_whose_hashes_collide(monkeypatch, collide):
    def colliding(emails: pd.Series) -> np.ndarray:
        values = emails.to_numpy(dtype=object)
        if collide == "all-equal":
            return np.zeros(len(values), dtype=np.uint64)
        return np.array([len(v) % 2 for v in values], dtype=np.uint64)

    monkeypatch.setattr(match, "_email_hashes", colliding)
    assert _found(_index()) == EXPECTED
