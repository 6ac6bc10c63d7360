"""Leads from unmatched chats, assignment, notes, notifications and phones, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from etl.errors import ConfigError

from builders import chat, lead, page, sell_dir, user, write_json
from integration.failing import fail_write
from integration.scenario import settings_for, sync
from storecheck import dump, rows

USERS = [
    user(101, "alice@example.com"),
    user(102, "bob@example.com"),
    user(103, "carol@example.com"),
    user(104, "taro@example.com"),
    user(106, "dave@example.com", status="inactive"),
    user(107, "integration@example-corp.example"),
]
ALICE_AGENT = [("11", "Alice Walker")]
OUTSIDER_AGENT = [("99", "Mike Chen")]


def exports(tmp_path, chats, leads=(), name="chats_1.json"):
    chat_dir = tmp_path / "chat"
    write_json(chat_dir / name, page(chats))
    write_json(
        chat_dir / "agents.json",
        [
            {
                "id": 11,
                "email": "ALICE@example.com",
                "display_name": "Alice Walker",
                "enabled": True,
            },
            {
                "id": 99,
                "email": "mike@elsewhere.example",
                "display_name": "Mike Chen",
                "enabled": True,
            },
        ],
    )
    sell = sell_dir(
        tmp_path / "sell",
        leads=list(leads) or [lead(1, "known@example.com", owner_id=103)],
        users=USERS,
    )
    return chat_dir, sell


def configured(url, **sections):
    settings = settings_for(url)
    data = settings.model_dump()
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section].update(values)
        else:
            data[section] = values
    return type(settings).model_validate(data)


def inbound(url, members=(101, 102, 103), **more):
    return configured(
        url,
        assignment={"pools": {"inbound": {"members": list(members)}}, "default_pool": "inbound"},
        **more,
    )


def visitor(i, email=None, start=None, **kw):
    return chat(f"c{i:04d}", email or f"v{i}@shop.example", name=f"Visitor Name{i}" if "name" not in kw else kw.pop("name"),
                start=start or f"2026-11-{1 + i // 1000:02d}T{(i // 60) % 24:02d}:{i % 60:02d}:00Z", **kw)  # fmt: skip


def test_one_lead_per_email_in_a_batch_and_across_runs(store_url, tmp_path):
    chats, sell = exports(
        tmp_path, [visitor(1, "x@shop.example"), visitor(2, " X@Shop.Example "), visitor(3)]
    )
    first = sync(store_url, chats, sell, settings=inbound(store_url)).report
    assert (first["outcomes"]["lead_created"], first["outcomes"]["matched_new_lead"]) == (2, 1)
    write_json(
        chats / "chats_2.json", page([visitor(4, "x@shop.example", start="2026-11-09T00:00:00Z")])
    )
    second = sync(store_url, chats, sell, settings=inbound(store_url)).report
    assert second["outcomes"]["matched"] == 1 and second["writes"]["leads_created"] == 0
    assert rows(
        store_url,
        "SELECT id, email_normalized, origin_chat_id FROM leads WHERE origin = 'chat' ORDER BY id DESC",
    ) == [
        (-1, "x@shop.example", "c0001"),
        (-2, "v3@shop.example", "c0003"),
    ]
    assert rows(store_url, "SELECT chat_id FROM activities WHERE record_id = -1 ORDER BY 1") == [
        ("c0001",),
        ("c0002",),
        ("c0004",),
    ]


def test_round_robin_continues_across_runs(store_url, tmp_path):
    chats, sell = exports(tmp_path, [visitor(i) for i in range(1, 3)])
    sync(store_url, chats, sell, settings=inbound(store_url))
    write_json(
        chats / "chats_2.json",
        page([visitor(i, start=f"2026-11-10T00:0{i}:00Z") for i in range(3, 6)]),
    )
    sync(store_url, chats, sell, settings=inbound(store_url))
    owners = rows(
        store_url,
        "SELECT origin_chat_id, owner_id FROM leads WHERE origin = 'chat' ORDER BY origin_chat_id",
    )
    assert [o for _, o in owners] == [101, 102, 103, 101, 102]
    assert rows(store_url, "SELECT pool, pointer, assigned FROM pool_state") == [("inbound", 2, 5)]


def test_inactive_member_is_skipped(store_url, tmp_path):
    chats, sell = exports(tmp_path, [visitor(i) for i in range(1, 5)])
    result = sync(store_url, chats, sell, settings=inbound(store_url, members=(101, 106, 102)))
    assert result.leads["owner_id"].tolist() == [101, 102, 101, 102]


def test_leads_are_not_collected_for_a_caller_that_does_not_want_them(store_url, tmp_path):
    chats, sell = exports(tmp_path, [visitor(i) for i in range(1, 5)])
    result = sync(store_url, chats, sell, settings=inbound(store_url), collect_leads=False)
    assert result.leads.empty and result.report["writes"]["leads_created"] == 4
    assert rows(store_url, "SELECT count(*) FROM leads WHERE origin = 'chat'") == [(4,)]


def test_same_owners_after_dry_run_rerun_and_full(store_url, tmp_path):
    chats, sell = exports(tmp_path, [visitor(i) for i in range(1, 8)])
    settings = inbound(store_url)
    dry = sync(store_url, chats, sell, settings=settings, dry_run=True)
    assert rows(store_url, "SELECT count(*) FROM pool_state") == [(0,)]
    real = sync(store_url, chats, sell, settings=settings)
    planned = dry.leads[["id", "email_normalized", "owner_id", "pool", "rule"]]
    assert planned.equals(real.leads[["id", "email_normalized", "owner_id", "pool", "rule"]])
    assert dry.report["assignments"] == real.report["assignments"]
    state = dump(store_url)
    sync(store_url, chats, sell, settings=settings)
    sync(store_url, chats, sell, settings=settings, full=True)
    sync(store_url, chats, sell, settings=settings, dry_run=True, full=True)
    assert dump(store_url) == state


def test_weighted_shares_over_1000_leads(store_url, tmp_path):
    chats, sell = exports(tmp_path, [visitor(i) for i in range(1000)])
    settings = configured(
        store_url,
        assignment={"pools": {"w": {"members": [101, 102, 103], "strategy": "weighted", "weights": [5, 3, 2]}},
                    "default_pool": "w"},
        run={"chunk_size": 300},
    )  # fmt: skip
    report = sync(store_url, chats, sell, settings=settings).report
    assert report["outcomes"]["lead_created"] == 1000
    counts = dict(
        rows(
            store_url,
            "SELECT owner_id, count(*) FROM leads WHERE origin = 'chat' GROUP BY owner_id",
        )
    )
    for owner, weight in ((101, 0.5), (102, 0.3), (103, 0.2)):
        assert abs(counts[owner] / 1000 - weight) <= 0.02
    assert report["assignments"]["by_pool"] == {"w": 1000}


def test_interrupted_run_never_moves_the_pointer_twice(store_url, tmp_path, monkeypatch):
    chats, sell = exports(tmp_path, [visitor(i) for i in range(1, 11)])
    reference_url = f"sqlite:///{tmp_path / 'ref.db'}"
    sync(reference_url, chats, sell, settings=inbound(reference_url, run={"chunk_size": 3}))
    undo = fail_write(monkeypatch, "save_pool_states", 3, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        sync(store_url, chats, sell, settings=inbound(store_url, run={"chunk_size": 3}))
    undo()
    sync(store_url, chats, sell, settings=inbound(store_url, run={"chunk_size": 3}))
    assert dump(store_url, drop_run_columns=True) == dump(reference_url, drop_run_columns=True)


def test_lead_fields(store_url, tmp_path):
    chats, sell = exports(
        tmp_path,
        [
            visitor(1, "Emily.Clarke@shop.example", name="Emily Clarke", phone="+1 415 555 0100"),
            visitor(2, "anon@shop.example", name="Visitor 66492013"),
            visitor(3, "taro@shop.example", name="山田 太郎"),
            visitor(4, "hanako@shop.example", name="佐藤花子"),
        ],
    )
    settings = inbound(
        store_url, lead_defaults={"source": "Chat", "status": "Incoming", "tags": ["chat", "web"]}
    )
    sync(store_url, chats, sell, settings=settings)
    got = rows(
        store_url,
        "SELECT first_name, last_name, name, email, phone, status, source, tags, origin, origin_chat_id, created_run_id "
        "FROM leads WHERE origin = 'chat' ORDER BY id DESC",
    )
    assert got == [
        ("Emily", "Clarke", "Emily Clarke", "Emily.Clarke@shop.example", "+1 415 555 0100", "Incoming", "Chat", '["chat","web"]', "chat", "c0001", 1),
        (None, "anon", "anon", "anon@shop.example", None, "Incoming", "Chat", '["chat","web"]', "chat", "c0002", 1),
        ("太郎", "山田", "山田 太郎", "taro@shop.example", None, "Incoming", "Chat", '["chat","web"]', "chat", "c0003", 1),
        (None, "佐藤花子", "佐藤花子", "hanako@shop.example", None, "Incoming", "Chat", '["chat","web"]', "chat", "c0004", 1),
    ]  # fmt: skip


def test_policies_that_skip_creation(store_url, tmp_path):
    chats, sell = exports(
        tmp_path,
        [
            visitor(1, "old@shop.example", start="2025-01-01T00:00:00Z"),
            visitor(2, "me@Example-Corp.example"),
            visitor(3, "ops@eu.example-corp.example"),
            visitor(4, "offline@shop.example", kind="offline_msg"),
            visitor(5, "fine@shop.example"),
        ],
    )
    settings = inbound(
        store_url,
        lead_defaults={
            "max_chat_age_days": 180,
            "ignore_domains": ["example-corp.example"],
            "create_from_offline": False,
        },
    )
    sync(store_url, chats, sell, settings=settings)
    got = dict(
        rows(store_url, "SELECT chat_id, coalesce(reason, outcome) FROM run_outcomes ORDER BY 1")
    )
    assert got == {
        "c0001": "chat older than max_chat_age_days (180)",
        "c0002": "email domain example-corp.example is in ignore_domains",
        "c0003": "email domain eu.example-corp.example is in ignore_domains",
        "c0004": "offline message (create_from_offline = false)",
        "c0005": "lead_created",
    }


def test_no_create_leads_still_matches(store_url, tmp_path):
    chats, sell = exports(tmp_path, [visitor(1, "known@example.com"), visitor(2)])
    report = sync(store_url, chats, sell, settings=inbound(store_url), create_leads=False).report
    assert report["outcomes"]["matched"] == 1 and report["outcomes"]["lead_skipped"] == 1
    assert rows(store_url, "SELECT reason FROM run_outcomes WHERE chat_id = 'c0002'") == [
        ("lead creation disabled (--no-create-leads)",)
    ]


def test_skipped_chat_before_the_creator_stays_skipped(store_url, tmp_path):
    chats, sell = exports(
        tmp_path,
        [
            visitor(1, "same@shop.example", kind="offline_msg"),
            visitor(2, "same@shop.example"),
            visitor(3, "same@shop.example", kind="offline_msg"),
        ],
    )
    sync(
        store_url,
        chats,
        sell,
        settings=inbound(store_url, lead_defaults={"create_from_offline": False}),
    )
    assert rows(store_url, "SELECT chat_id, outcome FROM run_outcomes ORDER BY 1") == [
        ("c0001", "lead_skipped"),
        ("c0002", "lead_created"),
        ("c0003", "matched_new_lead"),
    ]


def test_notes_and_notifications(store_url, tmp_path):
    chats, sell = exports(
        tmp_path,
        [
            visitor(
                1,
                "known@example.com",
                notes="Wants a quote",
                agents=ALICE_AGENT,
                tags=["notify_sales"],
            ),
            visitor(
                2,
                "new@shop.example",
                notes="Call back Friday",
                agents=OUTSIDER_AGENT,
                tags=["Notify_Sales"],
            ),
            visitor(3, "quiet@shop.example"),
        ],
    )
    settings = inbound(
        store_url,
        sell={"integration_user": "integration@example-corp.example"},
        chat={"subdomain": "acme"},
    )
    report = sync(store_url, chats, sell, settings=settings).report
    assert (report["writes"]["notes_created"], report["writes"]["notifications_created"]) == (2, 2)
    notes = rows(
        store_url,
        "SELECT chat_id, record_type, record_id, kind, creator_id, content FROM notes ORDER BY 1",
    )
    assert [n[:5] for n in notes] == [
        ("c0001", "lead", 1, "chat_notes", 101),
        ("c0002", "lead", -1, "chat_notes", 107),
    ]
    assert notes[0][5].startswith("Note from Alice Walker") and "Wants a quote" in notes[0][5]
    assert "https://acme.zendesk.com/chat/agent#chats/c0001" in notes[0][5]
    assert rows(
        store_url, "SELECT chat_id, record_id, kind, user_id FROM notifications ORDER BY 1"
    ) == [
        ("c0001", 1, "notify_sales", 103),
        ("c0002", -1, "notify_sales", 101),
    ]
    state = dump(store_url)
    again = sync(store_url, chats, sell, settings=settings, full=True).report
    assert (again["writes"]["notes_created"], again["writes"]["notifications_created"]) == (0, 0)
    assert dump(store_url) == state


def test_no_notify_option(store_url, tmp_path):
    chats, sell = exports(tmp_path, [visitor(1, "known@example.com", tags=["notify_sales"])])
    sync(store_url, chats, sell, settings=inbound(store_url), notify=False)
    assert rows(store_url, "SELECT count(*) FROM notifications") == [(0,)]


def _phone_leads():
    return [
        lead(1, "empty@example.com", phone=None, owner_id=103),
        lead(2, "full@example.com", phone="+81 3 1111 2222", owner_id=103),
    ]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("fill_empty", {1: "+1 206 555 0187", 2: "+81 3 1111 2222"}),
        ("overwrite", {1: "+1 206 555 0187", 2: "+1 206 555 0199"}),
        ("never", {1: None, 2: "+81 3 1111 2222"}),
    ],
)
def test_phone_policy(store_url, tmp_path, policy, expected):
    chats, sell = exports(
        tmp_path,
        [
            visitor(1, "empty@example.com", phone="+1 206 555 0187"),
            visitor(2, "full@example.com", phone="+1 206 555 0199"),
        ],
        leads=_phone_leads(),
    )
    report = sync(
        store_url, chats, sell, settings=inbound(store_url, phone={"policy": policy})
    ).report
    assert dict(rows(store_url, "SELECT id, phone FROM leads ORDER BY id")) == expected
    changes = rows(
        store_url,
        "SELECT record_type, record_id, field, old_value, new_value, chat_id, run_id FROM field_changes ORDER BY 2",
    )
    assert report["writes"]["phone_updates"] == len(changes)
    if policy == "overwrite":
        assert changes[1] == ("lead", 2, "phone", "+81 3 1111 2222", "+1 206 555 0199", "c0002", 1)
    again = sync(
        store_url, chats, sell, settings=inbound(store_url, phone={"policy": policy}), full=True
    ).report
    assert again["writes"]["phone_updates"] == 0


@pytest.mark.parametrize(
    ("policy", "expected", "changes"),
    [("fill_empty", "+1 206 555 0101", 1), ("overwrite", "+1 206 555 0202", 2)],
)
def test_later_chunks_change_the_phone_of_a_lead_an_earlier_chunk_created(
    store_url, tmp_path, policy, expected, changes
):
    """A chunk of one chat each: the lead the first chat creates (no phone) is the record the
    later chats of its email fill, or overwrite, the phone of; another new lead keeps its own."""
    chats, sell = exports(
        tmp_path,
        [
            visitor(1, "new@shop.example"),
            visitor(2, "other@shop.example", phone="+1 206 555 0999"),
            visitor(3, "new@shop.example", phone="+1 206 555 0101"),
            visitor(4, "new@shop.example", phone="+1 206 555 0202"),
        ],
    )
    settings = inbound(store_url, phone={"policy": policy}, run={"chunk_size": 1, "commit_size": 1})
    report = sync(store_url, chats, sell, settings=settings).report
    phones = rows(store_url, "SELECT email, phone FROM leads WHERE id < 0 ORDER BY id DESC")
    assert phones == [("new@shop.example", expected), ("other@shop.example", "+1 206 555 0999")]
    assert report["writes"]["leads_created"] == 2
    assert report["writes"]["phone_updates"] == changes


def test_phone_needs_an_active_sell_agent_when_required(store_url, tmp_path):
    chats, sell = exports(
        tmp_path,
        [visitor(1, "empty@example.com", phone="+1 206 555 0187", agents=OUTSIDER_AGENT)],
        leads=_phone_leads(),
    )
    settings = inbound(store_url, phone={"require_sell_agent": True})
    sync(store_url, chats, sell, settings=settings)
    assert rows(store_url, "SELECT phone FROM leads WHERE id = 1") == [(None,)]
    write_json(
        chats / "chats_2.json",
        page([visitor(2, "empty@example.com", phone="+1 206 555 0111", agents=ALICE_AGENT)]),
    )
    sync(store_url, chats, sell, settings=settings)
    assert rows(store_url, "SELECT phone FROM leads WHERE id = 1") == [("+1 206 555 0111",)]
    assert rows(store_url, "SELECT chat_id FROM field_changes") == [("c0002",)]


def test_unknown_pool_or_user_stops_before_any_write(store_url, tmp_path):
    chats, sell = exports(tmp_path, [visitor(1)])
    bad = configured(store_url, assignment={"rules": [{"name": "r", "when": {}, "owner": "ghost@example.com"}],
                                           "default_pool": "missing"})  # fmt: skip
    with pytest.raises(ConfigError) as info:
        sync(store_url, chats, sell, settings=bad)
    assert "ghost@example.com" in str(info.value) and "missing" in str(info.value)
    assert rows(store_url, "SELECT count(*) FROM runs") == [(0,)]
    assert rows(store_url, "SELECT count(*) FROM users") == [(0,)]


def test_earlier_chat_attaches_to_a_lead_created_later(store_url, tmp_path):
    chats, sell = exports(tmp_path, [visitor(1, "later@shop.example")])
    sync(store_url, chats, sell, settings=inbound(store_url), create_leads=False)
    write_json(
        chats / "chats_2.json",
        page([visitor(2, "later@shop.example", start="2026-11-20T00:00:00Z")]),
    )
    report = sync(store_url, chats, sell, settings=inbound(store_url)).report
    assert report["outcomes"]["lead_created"] == 1 and report["inputs"]["chats_rematched"] == 1
    assert rows(store_url, "SELECT chat_id FROM activities WHERE record_id = -1 ORDER BY 1") == [
        ("c0001",),
        ("c0002",),
    ]
