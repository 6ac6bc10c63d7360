"""The read side on both stores: the activity feed (seed S4, S13) and the Chat card export (S11)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from etl.errors import ConfigError
from etl.readside import export_widgets, read_feed

from builders import chat, contact, envelope, lead, page, sell_dir, user, write_json
from integration.scenario import settings_for, sync


@pytest.fixture
def loaded(store_url, tmp_path):
    chats_dir = tmp_path / "chat"
    many = [
        chat(f"c{i}", "ann@example.com", name="Ann", start=f"2026-11-0{1 + i % 9}T1{i % 10}:00:00Z",
             agents=[("11", "Alice Walker")] if i % 2 else [("22", "Taro K.")], notes="call back" if i == 3 else "")
        for i in range(7)
    ]  # fmt: skip
    write_json(chats_dir / "chats.json", page(many))
    write_json(
        chats_dir / "agents.json",
        [{"id": 11, "email": "alice@example.com", "display_name": "Alice Walker"},
         {"id": 22, "email": "taro@example.com", "display_name": "Taro K."}],
    )  # fmt: skip
    sell = sell_dir(
        tmp_path / "sell",
        leads=[lead(1, "ann@example.com", custom_fields={"Budget": "10k", "Secret score": 99}, owner_id=101)],
        contacts=[contact(5, "ann@example.com", name="Ann Person", title="CTO", phone="+1 555 0100")],
        users=[user(101, "alice@example.com", team_name="EN Sales", group={"id": 1, "name": "Inbound"}),
               user(104, "taro@example.com", name="Taro", team_name="Japan", group={"id": 2, "name": "APAC"})],
    )  # fmt: skip
    settings = settings_for(store_url)
    sync(store_url, chats_dir, sell, settings=settings)
    return settings


def test_feed_newest_first_with_filters(store_url, loaded):
    feed = read_feed(loaded, "lead:1")
    assert feed.total == 8  # 7 chats and 1 note
    assert list(feed.items["at"]) == sorted(feed.items["at"], reverse=True)
    chats = read_feed(loaded, "lead:1", kind="chat")
    assert chats.total == 7 and set(chats.items["type"]) == {"chat"}
    notes = read_feed(loaded, "lead:1", kind="note")
    assert notes.total == 1 and "call back" in notes.items["content"].iloc[0]
    alice = read_feed(loaded, "lead:1", kind="chat", user="alice@example.com")
    assert alice.total == 3 and set(alice.items["user_id"]) == {101}
    assert read_feed(loaded, "lead:1", kind="chat", team="japan").total == 4
    assert read_feed(loaded, "lead:1", kind="chat", group="APAC").total == 4


def test_feed_limit_reports_the_total(store_url, loaded):
    feed = read_feed(loaded, "lead:1", kind="chat", limit=2)
    assert (len(feed.items), feed.total, feed.limit) == (2, 7, 2)


def test_feed_by_email_lists_each_chat_once(store_url, loaded):
    feed = read_feed(loaded, "Ann@Example.com", kind="chat")
    assert sorted(feed.records) == [("contact", 5), ("lead", 1)]
    assert feed.total == 7 and feed.items["chat_id"].is_unique


@pytest.mark.parametrize("ref", ["lead:999", "nobody@example.com", "ticket:1"])
def test_feed_unknown_record(store_url, loaded, ref):
    with pytest.raises(ConfigError):
        read_feed(loaded, ref)


def test_widgets_layout_is_an_allow_list(store_url, loaded, tmp_path):
    data = loaded.model_dump()
    data["widgets"] = {
        "lead": {"fields": ["name", "status", "Budget", "owner_name"]},
        "contact": {"fields": ["name", "title", "phone"]},
        "company": {"fields": ["name"]},
    }
    settings = type(loaded).model_validate(data)
    out = tmp_path / "cards.ndjson"
    assert export_widgets(settings, out) == 2
    cards = [json.loads(line) for line in out.read_text().splitlines()]
    assert cards == [
        {"email_normalized": "ann@example.com", "card": "lead", "record_id": 1,
         "fields": {"name": "Lee Lead1", "status": "New", "Budget": "10k", "owner_name": "User 101"}},
        {"email_normalized": "ann@example.com", "card": "contact", "record_id": 5,
         "fields": {"name": "Ann Person", "title": "CTO", "phone": "+1 555 0100"}},
    ]  # fmt: skip
    assert "Secret score" not in out.read_text() and "99" not in out.read_text()
    as_csv = tmp_path / "cards.csv"
    export_widgets(settings, as_csv, "csv")
    rows = list(csv.reader(io.StringIO(as_csv.read_text())))
    assert rows[0] == [
        "email_normalized",
        "card",
        "record_id",
        "name",
        "status",
        "Budget",
        "owner_name",
        "title",
        "phone",
    ]
    assert rows[2][-1] == "'+1 555 0100"  # a cell starting with + is never a formula


def test_feed_of_deal_and_new_contact(store_url, loaded, tmp_path):
    write_json(
        tmp_path / "sell" / "contacts_more.json",
        envelope("contact", [contact(6, "ann@example.com")]),
    )
    sync(store_url, tmp_path / "chat", tmp_path / "sell", settings=loaded)
    assert read_feed(loaded, "contact:6", kind="chat").total == 7
