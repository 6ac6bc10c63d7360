"""Properties of a sync that hold for any input order or file split (SQLite; the store is
not what these test)."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import chat, lead, page, sell_dir, user, write_json, write_ndjson
from integration.scenario import settings_for, sync
from storecheck import dump, rows

EMAILS = [
    "a@shop.example",
    "B@shop.example",
    " b@shop.example",
    "known@example.com",
    "",
    "bad@",
    "c@shop.example",
]
CHATS = [
    chat(f"c{i:02d}", EMAILS[i % len(EMAILS)], start=f"2026-11-{1 + i % 5:02d}T{i % 24:02d}:00:00Z",
         updated=f"2026-11-{1 + i % 5:02d}T{i % 24:02d}:30:00Z", phone=f"+1 206 555 01{i:02d}",
         notes="call" if i % 4 == 0 else "", tags=["notify_sales"] if i % 3 == 0 else [])
    for i in range(18)
]  # fmt: skip
NEWER = chat(
    "c05",
    "c@shop.example",
    start=CHATS[5]["timestamp"],
    updated="2026-12-01T00:00:00Z",
    tags=["late"],
)


def _settings(url):
    data = settings_for(url).model_dump()
    data["assignment"] = {"pools": {"p": {"members": [101, 102, 103]}}, "default_pool": "p"}
    data["run"]["chunk_size"] = 4
    return type(settings_for(url)).model_validate(data)


def _sync(tmp_path, order: list[int], splits: int, name: str):
    root = tmp_path / name
    chats = [CHATS[i] for i in order] + [NEWER]
    random.Random(splits).shuffle(chats)
    step = max(1, len(chats) // splits)
    for n, start in enumerate(range(0, len(chats), step)):
        part = chats[start : start + step]
        if n % 2:
            write_ndjson(root / "chat" / f"chats_{n}.jsonl", part)
        else:
            write_json(root / "chat" / f"chats_{n}.json", page(part))
    sell = sell_dir(root / "sell", leads=[lead(1, "known@example.com", phone=None)],
                    users=[user(101, "a@x.example"), user(102, "b@x.example"), user(103, "c@x.example")])  # fmt: skip
    url = f"sqlite:///{root / 'store.db'}"
    report = sync(url, root / "chat", sell, settings=_settings(url)).report
    return url, report


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.permutations(list(range(len(CHATS)))), st.integers(min_value=1, max_value=6))
def test_order_and_file_split_change_nothing(tmp_path_factory, order, splits):
    tmp_path = tmp_path_factory.mktemp("prop")
    reference_url, reference = _sync(tmp_path, list(range(len(CHATS))), 1, "reference")
    url, report = _sync(tmp_path, order, splits, "shuffled")
    for key in ("outcomes", "accounting", "writes", "assignments", "multi_match_emails"):
        assert report[key] == reference[key], key
    provenance = frozenset({"source_file", "position"})  # where a chat was read: differs by design
    assert dump(url, drop_run_columns=True, drop=provenance) == dump(
        reference_url, drop_run_columns=True, drop=provenance
    )
    assert rows(url, "SELECT tags FROM chats WHERE chat_id = 'c05'") == [('["late"]',)]
