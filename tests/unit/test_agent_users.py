"""agent_user_ids: each chat's first agent that is a Sell user (an active one, when asked)."""

from __future__ import annotations

import pandas as pd

from etl.transform.plan import agent_user_ids

AGENT_USERS = pd.Series([101, 102, 103], index=["7", "8", "9"], dtype="Int64")
CHATS = pd.DataFrame(
    {
        "chat_id": ["a", "b", "c", "d", "e", "f"],
        "agent_ids": [
            '["1", "8", "7"]',
            '["7"]',
            "[]",
            '["1", "2"]',
            '["9", "7"]',
            '["1", "8", "7"]',
        ],
    }
)


def test_first_agent_that_is_a_sell_user_per_chat():
    found = agent_user_ids(CHATS, AGENT_USERS)
    assert found.to_dict() == {"a": 102, "b": 101, "e": 103, "f": 102}
    assert str(found.dtype) == "Int64"


def test_only_active_users_count_when_asked():
    found = agent_user_ids(CHATS, AGENT_USERS, active=frozenset({101}))
    assert found.to_dict() == {"a": 101, "b": 101, "e": 101, "f": 101}


def test_no_agent_users_maps_nothing():
    assert agent_user_ids(CHATS, pd.Series(dtype="Int64")).empty
