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


def _colliding(collide: str):
    """An email hash under which emails collide: all of them, or two buckets by length."""

    def colliding(emails: pd.Series) -> np.ndarray:
        values = emails.to_numpy(dtype=object)
        if collide == "all-equal":
            return np.zeros(len(values), dtype=np.uint64)
        return np.array([len(v) % 2 for v in values], dtype=np.uint64)

    return colliding


@pytest.mark.parametrize("collide", ["all-equal", "two-buckets"])
def test_lookup_tells_apart_emails_whose_hashes_collide(monkeypatch, collide):
    monkeypatch.setattr(match, "_email_hashes", _colliding(collide))
    assert _found(_index()) == EXPECTED


# -- CreatedLeads: the run's own leads, by email ----------------------------------------------


def _leads(start: int, count: int) -> pd.DataFrame:
    ids = [-(start + i) for i in range(count)]
    return pd.DataFrame(
        {
            "id": ids,
            "email_normalized": [f"v{-i}@example.com" for i in ids],
            "name": [f"Visitor {-i}" for i in ids],
            "owner_id": pd.array([None if i % 3 == 0 else 100 - i for i in ids], dtype="Int64"),
        }
    )


def _expected(emails: list[str]) -> list[tuple]:
    out = []
    for email in emails:
        n = int(email[1:].split("@")[0]) if email.startswith("v") else None
        if n is None or n >= 1 + 7 * 40:  # only v1 .. v280 were added
            out.append((False, None, None))
        else:
            out.append((True, -n, f"Visitor {n}", None if n % 3 == 0 else 100 + n))
    return out


def _found_leads(created: match.CreatedLeads, emails: list[str]) -> list[tuple]:
    found = created.find(pd.Series(emails, index=range(100, 100 + len(emails))))
    assert list(found.index) == list(range(100, 100 + len(emails)))
    return [
        (True, row.id, row.name, None if pd.isna(row.owner_id) else int(row.owner_id))
        if row.found
        else (False, None, None)
        for row in found.itertuples()
    ]


@pytest.mark.parametrize("collide", [None, "all-equal", "two-buckets"])
def test_created_leads_are_found_by_email_across_every_chunk_they_were_added_in(
    monkeypatch, collide
):
    if collide:
        monkeypatch.setattr(match, "_email_hashes", _colliding(collide))
    created = match.CreatedLeads()
    assert _found_leads(created, ["v1@example.com"]) == [(False, None, None)]
    for chunk in range(7):  # chunks of 40, 40, ...: merged into fewer, larger segments
        created.add(_leads(1 + 40 * chunk, 40))
        created.add(_leads(1, 0))  # a chunk that created nothing
    assert len(created) == 280
    assert len(created._segments) < 7  # merged as it grew
    emails = ["v280@example.com", "nobody@example.com", "v1@example.com", "v281@example.com",
              "v3@example.com", "v140@example.com", "v41@example.com", "v1@example.com"]  # fmt: skip
    assert _found_leads(created, emails) == _expected(emails)
    every = [f"v{n}@example.com" for n in range(1, 281)]
    assert _found_leads(created, every) == _expected(every)


def test_the_phones_of_created_leads_are_kept_by_id_beside_the_changes_of_others():
    index = _index()
    index.set_phone("lead", 1, "+81 3 0000 0001")  # a Sell lead's phone the run changed
    index.add_created(-5, ["+81 90 0000 0005", None])  # leads -5 and -6
    index.add_created(-7, [None])
    assert [index.phone_of("lead", i) for i in (-5, -6, -7)] == ["+81 90 0000 0005", None, None]
    index.set_phone("lead", -7, "+81 90 0000 0007")
    assert index.phone_of("lead", -7) == "+81 90 0000 0007"
    assert index.phone_of("lead", 1) == "+81 3 0000 0001"
    assert index.phone_of("contact", 10) is None
    assert index.phones == {("lead", 1): "+81 3 0000 0001"}  # the created leads are not here
    with pytest.raises(ValueError, match="does not follow"):
        index.add_created(-9, [None])  # -8 is next


# -- the index holds its targets compact ------------------------------------------------------


def test_the_index_lets_its_frame_go_and_gives_back_rows_as_the_frame_had_them():
    base = pd.DataFrame(
        {
            "record_type": pd.Series(["lead", "contact", "lead", "contact"], dtype="str"),
            "record_id": pd.array([1, 10, 2, 11], dtype="Int64"),
            "email_normalized": ["b@example.com", "a@example.com", "a@example.com", None],
            "record_name": pd.Series(["Bé", None, "Ann ✓", "X"], dtype="str"),
            "owner_id": pd.array([101, None, 102, 103], dtype="Int64"),
            "phone": pd.Series([None, "+81 3 0000 0010", "+1 555 0100", "+1"], dtype=object),
            "origin": pd.Series(["sell", "sell", "chat", "sell"], dtype="str"),
            "new_this_run": [False, False, True, False],
        }
    )
    index = CrmIndex(base=base.copy(), deals=pd.DataFrame(), users=pd.DataFrame())
    assert index.base is None  # the frame's Python strings are not held by the run
    found = index.lookup(CHATS).drop(columns="chat_id")
    expected = base.iloc[[1, 2, 0, 1, 2]].reset_index(drop=True)  # x, z, w (y matches nothing)
    pd.testing.assert_frame_equal(found, expected)
    assert index.phone_of("contact", 10) == "+81 3 0000 0010"
    assert index.phone_of("lead", 1) is None
    assert index.phone_of("lead", 2) == "+1 555 0100"
    assert index.phone_of("lead", 99) is None


def test_build_index_keeps_what_a_frame_of_its_targets_would():
    from tests.unit.test_planner import crm  # (the CRM frames as the store gives them)

    frames = crm(
        leads=[(1, "a@example.com", 101, None), (2, "b@example.com", None, "+1 555"),
               (3, None, 102, "+2")],
        contacts=[(10, "a@example.com", 103, "+3"), (11, "c@example.com", None, None)],
    )  # fmt: skip
    index = match.build_index(
        frames["leads"], frames["contacts"], frames["deals"], frames["users"],
        frames["lead_conversions"], ["Converted"], run_id=7,
    )  # fmt: skip
    found = index.lookup(
        pd.DataFrame(
            {
                "chat_id": ["p", "q", "r"],
                "email_normalized": ["a@example.com", "c@example.com", "b@example.com"],
            }
        )
    )
    rows = list(found[["chat_id", "record_type", "record_id", "record_name", "owner_id", "phone", "origin"]]
                .astype(object).where(found.notna(), None).itertuples(index=False, name=None))  # fmt: skip
    assert rows == [
        ("p", "lead", 1, "Lead 1", 101, None, "sell"),
        ("p", "contact", 10, "Contact 10", 103, "+3", "sell"),
        ("q", "contact", 11, "Contact 11", None, None, "sell"),
        ("r", "lead", 2, "Lead 2", None, "+1 555", "sell"),
    ]
    assert found["record_id"].dtype == "Int64" and found["new_this_run"].dtype == bool
    assert index.phone_of("lead", 2) == "+1 555" and index.phone_of("contact", 10) == "+3"


def test_build_index_consuming_its_frames_drops_their_text_and_matches_the_same():
    from tests.unit.test_planner import crm

    def frames():
        return crm(
            leads=[(1, "a@example.com", 101, "+1"), (2, "b@example.com", None, None)],
            contacts=[(10, "a@example.com", 103, "+3")],
        )

    def index(given, consume):
        return match.build_index(
            given["leads"], given["contacts"], given["deals"], given["users"],
            given["lead_conversions"], ["Converted"], run_id=7, consume=consume,
        )  # fmt: skip

    kept, consumed = frames(), frames()
    chats = pd.DataFrame(
        {"chat_id": ["p", "q"], "email_normalized": ["a@example.com", "b@example.com"]}
    )
    pd.testing.assert_frame_equal(
        index(consumed, True).lookup(chats), index(kept, False).lookup(chats)
    )
    assert "name" in kept["leads"] and "email_normalized" in kept["contacts"]  # left as given
    for name in ("leads", "contacts"):  # the text the index took is let go with the frames
        assert not {"name", "email_normalized", "phone", "status"} & set(consumed[name].columns)
    assert list(consumed["leads"]["id"]) == [1, 2]  # ids stay (the run's lowest lead id)


@pytest.mark.parametrize("at_once", [65_536, 3, 1], ids=["one piece", "pieces", "one each"])
def test_the_index_pickled_to_the_run_is_the_same_and_its_text_goes_packed(monkeypatch, at_once):
    """A worker builds the index and the run unpickles it: numpy would pickle each text value
    as a Python object (seconds and hundreds of MB a million values); the index packs each text
    column into strings of ``_PACKED_AT_ONCE`` values and rebuilds the same arrays, the emails
    once."""
    import pickle

    monkeypatch.setattr(match, "_PACKED_AT_ONCE", at_once)

    base = pd.DataFrame(
        {
            "record_type": pd.Series(["lead", "contact", "lead", "contact"], dtype="str"),
            "record_id": pd.array([1, 10, 2, 11], dtype="Int64"),
            "email_normalized": ["b@example.com", "a@example.com", "a@example.com", "ü@例え.jp"],
            "record_name": pd.Series(["Bé", None, "", "X"], dtype="str"),
            "owner_id": pd.array([101, None, 102, 103], dtype="Int64"),
            "phone": pd.Series([None, "+81 3 0000 0010", "+1 555 0100", "+1"], dtype=object),
            "origin": pd.Series(["sell", "sell", "chat", "sell"], dtype="str"),
            "new_this_run": [False, False, True, False],
        }
    )
    index = CrmIndex(base=base, deals=pd.DataFrame(), users=pd.DataFrame())
    payload = pickle.dumps(index, protocol=pickle.HIGHEST_PROTOCOL)
    if at_once > 4:  # one string per column, not one per value
        assert b"+81 3 0000 0010+1 555 0100" in payload
    back = pickle.loads(payload)  # noqa: S301 - the test's own bytes
    chats = pd.DataFrame(
        {"chat_id": ["p", "q", "r"], "email_normalized": ["a@example.com", "ü@例え.jp", "z@x"]}
    )
    pd.testing.assert_frame_equal(back.lookup(chats), index.lookup(chats))
    targets = back._targets
    assert targets.columns["email_normalized"].values is targets.emails
    assert back.phone_of("contact", 10) == "+81 3 0000 0010" and back.phone_of("lead", 1) is None
    every = np.arange(len(index._targets.hashes))
    for name, column in index._targets.columns.items():
        pd.testing.assert_series_equal(targets.columns[name].take(every), column.take(every))
