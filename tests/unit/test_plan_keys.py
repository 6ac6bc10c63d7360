"""``etl.transform.plankey``: a chat's key changes with every input of its rows, and with
nothing else (not the other chats of its chunk, not the order of its records)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl.transform.plan import PlanContext
from etl.transform.plankey import context_key, plan_keys

CHATS = pd.DataFrame(
    {
        "chat_id": ["c1", "c2", "c3", "c4"],
        "version": ["2026-11-02T09:10:00.000000Z/aa", "2026-11-02T09:11:00.000000Z/bb",
                    "2026-11-02T09:12:00.000000Z/cc", "2026-11-02T09:13:00.000000Z/dd"],
        "content_hash": ["aa11", "bb22", None, "dd44"],
        "email_normalized": ["a@example.com", "b@example.com", None, "a@example.com"],
        "department": ["Sales", None, None, "Sales"],
        "agent": ["Aiko", "Ken", None, None],
    }
)  # fmt: skip
PAIRS = pd.DataFrame(
    {
        "chat_id": ["c1", "c1", "c2", "c4"],
        "record_type": ["lead", "contact", "contact", "lead"],
        "record_id": [1, 10, 11, -1],
        "record_name": ["Ann Archer", "Acme", None, "New Visitor"],
        "owner_id": pd.array([101, 102, None, 101], dtype="Int64"),
        "new_this_run": [False, False, False, True],
    }
)
CONTEXT = context_key(PlanContext(now=pd.Timestamp("2026-12-01", tz="UTC")))


def _keys(chats=CHATS, pairs=PAIRS, expired=None, context=CONTEXT) -> dict[str, int]:
    at = pd.Index(chats["chat_id"]).get_indexer(pairs["chat_id"])
    if expired is None:
        expired = pd.Series(False, index=chats.index)
    keys = plan_keys(chats, pairs, at, expired, context)
    return dict(zip(chats["chat_id"], keys.tolist(), strict=True))


def test_a_chats_key_is_its_own_whatever_the_chunk_it_is_planned_in():
    whole = _keys()
    assert len(set(whole.values())) == 4 and 0 not in whole.values()
    for ids in (["c3"], ["c1"], ["c2", "c3"], ["c4", "c1"], ["c3", "c4"]):
        chats = CHATS[CHATS["chat_id"].isin(ids)]
        pairs = PAIRS[PAIRS["chat_id"].isin(ids)].reset_index(drop=True)
        assert _keys(chats, pairs) == {i: whole[i] for i in ids}, ids


@settings(max_examples=40, deadline=None)
@given(st.permutations(range(len(PAIRS))), st.permutations(range(len(CHATS))))
def test_the_order_of_chats_and_records_does_not_matter(pair_order, chat_order):
    pairs = PAIRS.iloc[list(pair_order)].reset_index(drop=True)
    chats = CHATS.iloc[list(chat_order)]
    assert _keys(chats, pairs) == _keys()


@pytest.mark.parametrize(
    ("column", "row", "value"),
    [
        ("version", 0, "2026-11-02T09:10:00.000000Z/ab"),
        ("content_hash", 0, "aa12"),
        ("email_normalized", 0, "other@example.com"),
        ("department", 0, "Support"),
        ("agent", 0, "Ken"),
        ("content_hash", 2, "cc33"),  # a missing value is a value too
    ],
)
def test_what_the_chat_shows_changes_its_key(column, row, value):
    chats = CHATS.copy()
    chats.loc[row, column] = value
    before, after = _keys(), _keys(chats)
    changed = CHATS.loc[row, "chat_id"]
    assert after[changed] != before[changed]
    assert {k: v for k, v in after.items() if k != changed} == {
        k: v for k, v in before.items() if k != changed
    }


@pytest.mark.parametrize(
    ("column", "row", "value"),
    [
        ("record_id", 0, 2),
        ("record_type", 1, "lead"),
        ("record_name", 0, "Ann Archer-Smith"),
        ("record_name", 2, "Bea Brown"),
        ("owner_id", 0, 103),
        ("owner_id", 2, 101),
    ],
)
def test_the_records_a_chat_attaches_to_change_its_key(column, row, value):
    pairs = PAIRS.copy()
    pairs.loc[row, column] = value
    changed = PAIRS.loc[row, "chat_id"]
    assert _keys(pairs=pairs)[changed] != _keys()[changed]


def test_a_record_more_or_less_changes_its_key_but_not_whether_it_is_new():
    more = pd.concat(
        [PAIRS, PAIRS.iloc[[0]].assign(record_type="deal", record_id=30)], ignore_index=True
    )
    assert _keys(pairs=more)["c1"] != _keys()["c1"]
    assert _keys(pairs=PAIRS.iloc[1:].reset_index(drop=True))["c1"] != _keys()["c1"]
    # whether a record is new this run decides an outcome, planned every time, not a row
    assert _keys(pairs=PAIRS.assign(new_this_run=True)) == _keys()


def test_retention_changes_the_key_of_the_chats_past_it():
    expired = pd.Series([False, True, False, False], index=CHATS.index)
    after = _keys(expired=expired)
    assert after["c2"] != _keys()["c2"] and after["c1"] == _keys()["c1"]


@pytest.mark.parametrize(
    "change",
    [
        {"transcript_url_template": "https://chat.example/{chat_id}"},
        {"subdomain": "acme"},
        {"agent_users": pd.Series([7], index=["4120927"], dtype="Int64")},
        {"integration_user_id": 9},
        {"notify_tags": frozenset({"vip"})},
        {"attach_to_deals": False},
        {"provider_rules": ("gmail",)},
        {"strip_plus_tags": True},
    ],
)
def test_every_setting_a_row_is_built_with_changes_every_key(change):
    ctx = PlanContext(now=pd.Timestamp("2026-12-01", tz="UTC"))
    changed = context_key(dataclasses.replace(ctx, **change))
    assert changed != CONTEXT
    assert all(
        a != b for a, b in zip(_keys(context=changed).values(), _keys().values(), strict=True)
    )


def test_the_day_is_not_a_setting():
    later = PlanContext(now=pd.Timestamp("2027-01-01", tz="UTC"))
    assert context_key(later) == CONTEXT


def test_keys_are_64_bit_integers():
    keys = plan_keys(CHATS, PAIRS, np.array([0, 0, 1, 3]), pd.Series(False, index=CHATS.index), 1)
    assert keys.dtype == np.int64
