"""Builders of Chat and Sell export records in the real APIs' shapes, for tests."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any


def chat(
    chat_id: str,
    email: str = "",
    *,
    name: str = "Visitor 12345678",
    start: str = "2026-11-02T09:00:00Z",
    end: str | None = "2026-11-02T09:10:00Z",
    updated: str | None = None,
    kind: str = "chat",
    phone: str = "",
    notes: str = "",
    tags: list[str] | None = None,
    agents: list[tuple[str, str]] | None = None,
    department: str | None = None,
    country: str = "US",
    messages: list[tuple[str, str]] | None = None,
    rating: str | None = None,
    deleted: bool = False,
) -> dict[str, Any]:
    """A chat as the Chat API returns it (absent visitor values are ""); ``deleted``: as Chat
    sends a chat an agent or admin deleted (``"deleted": true``, the rest as it was)."""
    agents = agents if agents is not None else [("4120927", "Aiko Agent")]
    record: dict[str, Any] = {
        "id": chat_id,
        "type": kind,
        "visitor": {
            "id": f"v.{chat_id}",
            "name": name,
            "email": email,
            "phone": phone,
            "notes": notes,
        },
        "session": {"country_code": country, "city": "Somewhere"},
        "timestamp": start,
        "end_timestamp": end,
        "agent_ids": [a for a, _ in agents],
        "agent_names": [n for _, n in agents],
        "department_id": None,
        "department_name": department,
        "tags": tags or [],
        "rating": rating,
        "comment": None,
        "missed": False,
        "unread": False,
        "zendesk_ticket_id": None,
    }
    if updated is not None:
        record["update_timestamp"] = updated
    if deleted:
        record["deleted"] = True
    if kind == "offline_msg":
        record["message"] = (messages or [("v", "Hello, please call me")])[0][1]
    else:
        history = [{"type": "chat.memberjoin", "name": name, "timestamp": start[:-1] + ".100000Z"}]
        for i, (sender, text) in enumerate(
            messages or [(name, "Hi"), (record["agent_names"][0] if agents else "bot", "Hello!")]
        ):
            history.append(
                {
                    "type": "chat.msg",
                    "name": sender,
                    "msg": text,
                    "timestamp": f"{start[:-3]}{i + 10:02d}.500000Z",
                }
            )
        record["history"] = history
    return record


def page(chats: list[dict[str, Any]], end_time: int = 1762074000) -> dict[str, Any]:
    """An Incremental Export page."""
    last = chats[-1]["id"] if chats else ""
    return {
        "chats": chats,
        "count": len(chats),
        "end_id": last,
        "end_time": end_time,
        "next_page": f"https://example.zendesk.com/api/v2/chat/incremental/chats?fields=chats%28%2A%29&start_time={end_time}&start_id={last}",
    }


def lead(lead_id: int, email: str | None, **fields: Any) -> dict[str, Any]:
    return {
        "id": lead_id,
        "owner_id": fields.pop("owner_id", 101),
        "first_name": fields.pop("first_name", "Lee"),
        "last_name": fields.pop("last_name", f"Lead{lead_id}"),
        "organization_name": fields.pop("organization_name", "Acme"),
        "status": fields.pop("status", "New"),
        "email": email,
        "phone": fields.pop("phone", None),
        "updated_at": fields.pop("updated_at", "2026-10-01T00:00:00Z"),
        "created_at": "2026-09-01T00:00:00Z",
        **fields,
    }


def contact(record_id: int, email: str | None, **fields: Any) -> dict[str, Any]:
    return {
        "id": record_id,
        "owner_id": fields.pop("owner_id", 102),
        "is_organization": fields.pop("is_organization", False),
        "contact_id": fields.pop("contact_id", None),
        "name": fields.pop("name", f"Contact {record_id}"),
        "email": email,
        "phone": fields.pop("phone", None),
        "updated_at": fields.pop("updated_at", "2026-10-01T00:00:00Z"),
        **fields,
    }


def deal(
    deal_id: int, contact_id: int | None = None, organization_id: int | None = None, **fields: Any
) -> dict[str, Any]:
    return {
        "id": deal_id,
        "name": fields.pop("name", f"Deal {deal_id}"),
        "value": "1000.00",
        "currency": "USD",
        "stage_id": 1,
        "contact_id": contact_id,
        "organization_id": organization_id,
        "owner_id": fields.pop("owner_id", 103),
        "updated_at": "2026-10-01T00:00:00Z",
        **fields,
    }


def user(user_id: int, email: str, status: str = "active", **fields: Any) -> dict[str, Any]:
    return {
        "id": user_id,
        "name": fields.pop("name", f"User {user_id}"),
        "email": email,
        "status": status,
        "role": "user",
        "team_name": fields.pop("team_name", "Sales"),
        "group": fields.pop("group", {"id": 1, "name": "Inbound"}),
        **fields,
    }


def envelope(resource: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """A Sell API collection page; each item names its type in meta."""
    return {
        "items": [{"data": r, "meta": {"type": resource}} for r in records],
        "meta": {"type": "collection", "count": len(records), "links": {}},
    }


def write_json(path: Path, value: Any, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(value, ensure_ascii=False).encode("utf-8")
    if gz:
        path.write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)
    return path


def write_ndjson(path: Path, values: list[Any], extra_lines: list[str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(v, ensure_ascii=False) for v in values] + list(extra_lines or [])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def sell_dir(root: Path, leads=(), contacts=(), deals=(), users=()) -> Path:
    """A Sell export directory with one envelope file per resource."""
    root.mkdir(parents=True, exist_ok=True)
    for name, records in (
        ("leads", leads),
        ("contacts", contacts),
        ("deals", deals),
        ("users", users),
    ):
        if records:
            write_json(root / f"{name}.json", envelope(name[:-1], list(records)))
    return root
