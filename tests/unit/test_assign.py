import json

import pandas as pd
import pytest

from etl.config import AssignmentSettings
from etl.errors import ConfigError
from etl.transform.assign import PoolState, build_assigner

USERS = pd.DataFrame(
    {
        "id": [101, 102, 103, 104, 105],
        "email_normalized": [
            "a@example.com",
            "b@example.com",
            "c@example.com",
            "taro@example.com",
            "off@example.com",
        ],
        "status": ["active", "active", "active", "active", "inactive"],
    }
)


def leads(n, **overrides):
    base = {
        "department": "Sales EN",
        "tags": "[]",
        "country_code": "US",
        "email_normalized": "v@shop.example",
        "kind": "chat",
        "agent_names": '["Aiko"]',
        "agent_ids": '["1"]',
    }
    base.update(overrides)
    return pd.DataFrame([base] * n)


def settings(**data):
    return AssignmentSettings.model_validate(data)


def test_round_robin_in_member_order_and_continues():
    config = settings(pools={"p": {"members": [101, "b@example.com", 103]}}, default_pool="p")
    state = {}
    first = build_assigner(config, USERS, state).assign(leads(4), pd.Series(dtype=object))
    assert first["owner_id"].tolist() == [101, 102, 103, 101]
    again = build_assigner(config, USERS, state).assign(leads(2), pd.Series(dtype=object))
    assert again["owner_id"].tolist() == [102, 103]
    assert state["p"].pointer == 0 and state["p"].assigned == 6


def test_round_robin_skips_inactive_and_unknown_members():
    config = settings(pools={"p": {"members": [101, 105, 999, 103]}}, default_pool="p")
    assigner = build_assigner(config, USERS, {})
    assert assigner.assign(leads(5), pd.Series(dtype=object))["owner_id"].tolist() == [
        101,
        103,
        101,
        103,
        101,
    ]
    assert any("999" in w for w in assigner.warnings)


def test_weighted_shares_over_1000_leads():
    config = settings(
        pools={"w": {"members": [101, 102, 103], "strategy": "weighted", "weights": [5, 3, 2]}},
        default_pool="w",
    )
    state = {}
    assigner = build_assigner(config, USERS, state)
    owners = pd.concat([assigner.assign(leads(100), pd.Series(dtype=object)) for _ in range(10)])[
        "owner_id"
    ]
    shares = owners.value_counts(normalize=True)
    for user, weight in ((101, 0.5), (102, 0.3), (103, 0.2)):
        assert abs(shares[user] - weight) <= 0.02
    restored = PoolState.from_row(state["w"].pointer, state["w"].to_json(), state["w"].assigned)
    assert restored.current == state["w"].current


def test_weighted_is_interleaved_not_blocked():
    config = settings(
        pools={"w": {"members": [101, 102], "strategy": "weighted", "weights": [2, 1]}},
        default_pool="w",
    )
    owners = (
        build_assigner(config, USERS, {})
        .assign(leads(6), pd.Series(dtype=object))["owner_id"]
        .tolist()
    )
    assert owners == [101, 102, 101, 101, 102, 101]


RULES = {
    "rules": [
        {
            "name": "Japan desk",
            "when": {"department": ["Sales JP"], "country_code": ["JP"]},
            "pool": "jp",
        },
        {
            "name": "Key accounts",
            "when": {"email_domain": ["bigcorp.example"]},
            "owner": "a@example.com",
        },
        {"name": "VIP tag", "when": {"tags_any": ["vip", "enterprise"]}, "owner": 102},
        {"name": "Offline", "when": {"type": "offline_msg"}, "owner": 103},
        {"name": "Taro's chats", "when": {"agent": ["taro@example.com"]}, "owner": 104},
    ],
    "pools": {"jp": {"members": [104]}},
    "default_owner": 101,
}


@pytest.mark.parametrize(
    ("lead", "rule", "owner"),
    [
        ({"department": "Sales JP", "country_code": "JP"}, "Japan desk", 104),
        ({"department": "Sales JP", "country_code": "US"}, "default", 101),
        ({"email_normalized": "ceo@BigCorp.example".lower()}, "Key accounts", 101),
        ({"tags": '["Enterprise"]'}, "VIP tag", 102),
        ({"kind": "offline_msg"}, "Offline", 103),
        ({"agent_ids": '["7"]'}, "Taro's chats", 104),
        ({"agent_names": '["Nobody"]'}, "default", 101),
    ],
)
def test_first_matching_rule_wins(lead, rule, owner):
    assigner = build_assigner(settings(**RULES), USERS, {})
    result = assigner.assign(leads(1, **lead), pd.Series({"7": "Taro@Example.com"}))
    assert (result["rule"].iloc[0], result["owner_id"].iloc[0]) == (rule, owner)


def test_unknown_pool_and_user_are_named():
    config = settings(
        rules=[
            {"name": "r1", "when": {}, "pool": "nope"},
            {"name": "r2", "when": {"weekday": "mon"}, "owner": "ghost@example.com"},
        ]
    )
    with pytest.raises(ConfigError) as info:
        build_assigner(config, USERS, {})
    text = str(info.value)
    assert (
        "unknown pool 'nope'" in text
        and "ghost@example.com" in text
        and "unknown condition weekday" in text
    )


def test_weighted_needs_weights():
    with pytest.raises(ConfigError, match="one positive weight per member"):
        build_assigner(
            settings(pools={"w": {"members": [101, 102], "strategy": "weighted"}}), USERS, {}
        )


def test_pool_state_round_trips():
    state = PoolState(pointer=2, current=[1, -1], assigned=7)
    assert PoolState.from_row(2, state.to_json(), 7) == state
    assert json.loads(state.to_json()) == {"current": [1, -1]}


def test_a_shared_pool_deals_in_lead_order_however_the_leads_are_batched():
    """Two rules feeding one pool: owners follow the leads' order, not the rules' order, so a
    chunked run, a windowed backfill and a Dask backfill give each lead the same owner."""
    config = settings(
        rules=[
            {"name": "JP", "when": {"country_code": ["JP"]}, "pool": "p"},
            {"name": "Offline", "when": {"type": "offline_msg"}, "pool": "p"},
        ],
        pools={"p": {"members": [101, 102, 103]}},
        default_owner=104,
    )
    batch = pd.concat(
        [
            leads(1, kind="offline_msg"),
            leads(1, country_code="JP"),
            leads(1, kind="offline_msg"),
            leads(1),
            leads(1, country_code="JP"),
        ],
        ignore_index=True,
    )
    whole = build_assigner(config, USERS, {}).assign(batch, pd.Series(dtype=object))
    assert whole["owner_id"].tolist() == [101, 102, 103, 104, 101]
    state: dict = {}
    one_by_one = [
        build_assigner(config, USERS, state).assign(batch.iloc[[i]], pd.Series(dtype=object))
        for i in range(len(batch))
    ]
    assert pd.concat(one_by_one)["owner_id"].tolist() == whole["owner_id"].tolist()
