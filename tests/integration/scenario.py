"""A small export set with one chat per interesting case, and a helper to sync it."""

from __future__ import annotations

from pathlib import Path

from etl.config import Settings, load_settings
from etl.load.store import Store
from etl.run import SyncOptions, run_sync

from builders import chat, contact, deal, lead, page, sell_dir, user, write_json, write_ndjson

NOW = "2026-11-20T00:00:00Z"


def make_exports(root: Path) -> tuple[Path, Path]:
    chats_dir = root / "chat"
    sell = sell_dir(
        root / "sell",
        leads=[
            lead(1, "a@example.com"),
            lead(2, "multi@example.com"),
            lead(3, None, last_name="NoMail"),
        ],
        contacts=[
            contact(20, "info@acme.example", is_organization=True, name="Acme Inc"),
            contact(10, "b@example.com", contact_id=20, name="Bea Brown"),
            contact(11, "Multi@Example.com", name="Multi Person"),
        ],
        deals=[deal(30, contact_id=10), deal(31, organization_id=20)],
        users=[user(101, "owner1@example.com"), user(102, "aiko@example.com")],
    )
    write_json(
        chats_dir / "chats_page1.json",
        page(
            [
                chat(
                    "c1",
                    "a@example.com",
                    name="Ann Archer",
                    start="2026-11-02T09:00:00Z",
                    updated="2026-11-02T09:10:00Z",
                ),
                chat("c2", " B@Example.com ", name="Bea Brown", start="2026-11-02T10:00:00Z"),
                chat(
                    "c3",
                    "mailto:info@acme.example",
                    name="Acme buyer",
                    start="2026-11-02T11:00:00Z",
                ),
                chat("c4", "multi@example.com", name="Multi", start="2026-11-02T12:00:00Z"),
            ]
        ),
    )
    write_ndjson(
        chats_dir / "chats_more.jsonl",
        [
            chat("c5", "", start="2026-11-03T09:00:00Z"),
            chat("c6", "taro@", name="山田 太郎", start="2026-11-03T10:00:00Z"),
            chat("c7", "new.visitor@example.org", name="New Visitor", start="2026-11-03T11:00:00Z"),
            chat(
                "c8",
                "ｎｅｗ．ｖｉｓｉｔｏｒ＠ｅｘａｍｐｌｅ．ｏｒｇ",
                start="2026-11-03T12:00:00Z",
                kind="offline_msg",
            ),
        ],
        extra_lines=['{"id": "c-broken", "type": "chat", "visitor": {"email": "x@exa'],
    )
    write_json(
        chats_dir / "agents.json",
        [
            {
                "id": 4120927,
                "email": "AIKO@example.com",
                "display_name": "Aiko Agent",
                "enabled": True,
                "departments": [],
            }
        ],
    )
    return chats_dir, sell


def settings_for(url: str, **overrides) -> Settings:
    settings = load_settings(None, database_url=url)
    return settings.model_copy(update=overrides) if overrides else settings


def sync(url: str, chats: Path, sell: Path, *, settings: Settings | None = None, **options):
    settings = settings or settings_for(url)
    store = Store(url)
    try:
        return run_sync(settings, SyncOptions(chats=chats, sell=sell, **options), store=store)
    finally:
        store.dispose()


def batched_settings(
    url: str, chunk_size: int, commit_size: int | None = None, write_process: bool = True
):
    """For the generated exports (``generated`` fixture): one pool fed by two rules, phones
    filled on leads and contacts, no age limit on lead creation; chunks written by the writer
    process (as a sync does) or in the planning process."""
    data = settings_for(url).model_dump()
    data["assignment"] = {
        "rules": [{"name": "Offline", "when": {"type": "offline_msg"}, "pool": "desk"}],
        "pools": {"desk": {"members": [2100001, 2100002, 2100003]}},
        "default_pool": "desk",  # two rules feed one pool
    }
    data["phone"] = {"policy": "fill_empty", "update_contacts": True}
    data["lead_defaults"] = {"max_chat_age_days": None}
    data["run"]["chunk_size"] = chunk_size
    data["run"]["commit_size"] = commit_size or chunk_size  # a commit per chunk unless told
    data["run"]["write_process"] = write_process
    return type(settings_for(url)).model_validate(data)
