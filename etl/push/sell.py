"""Zendesk Sell as a destination (``etl.contracts.Destination``), over its Core API v2: bodies
wrapped as ``{"data": {...}}``, ``Authorization: Bearer <token>``.

| kind | request |
|---|---|
| lead | ``POST /v2/leads/upsert?email=`` (safe to repeat: one lead per email) |
| activity | ``POST /v2/notes``, first line ``Zendesk Chat <chat_id>`` (``[push] activities``) |
| note | ``POST /v2/notes``, first line ``Zendesk Chat notes <chat_id>`` |
| notification | ``POST /v2/tasks`` to the record's owner, due ``[push] task_due_hours`` on |
| phone | ``GET`` the record, ``PUT`` the phone only where Sell still holds the old value |

A note or task whose answer was lost is looked for by its resource and ``q=<chat_id>``, and
adopted when its content starts with the row's first line.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from etl.config import PushSettings
from etl.push.http import HttpOptions, PacedHttp, Refused
from etl.vocab import Delivered, OutboxItem

TAGS = ["zendesk-chat"]
_RESOURCES = {"lead": "leads", "contact": "contacts"}


class SellDestination:
    name = "Zendesk Sell"

    def __init__(
        self, base_url: str, token: str, settings: PushSettings, options: HttpOptions | None = None
    ) -> None:
        self.settings = settings
        self.http = PacedHttp(
            base_url,
            token,
            options
            or HttpOptions(
                rate_per_second=settings.rate_per_second,
                max_attempts=settings.max_attempts,
                timeout=settings.timeout,
            ),
        )

    def close(self) -> None:
        self.http.close()

    def counts(self) -> dict[str, int]:
        tally = self.http.tally
        return {"requests": tally.requests, "retries": tally.retries,
                "rate_limited": tally.rate_limited}  # fmt: skip

    # -- the contract ------------------------------------------------------------------------------

    def requests(self, item: OutboxItem) -> list[dict[str, Any]]:
        if item.kind == "activity" and self.settings.activities == "none":
            return []
        if item.kind == "phone":
            path = self._record_path(item)
            return [
                {"method": "GET", "path": path, "body": None},
                {"method": "PUT", "path": path, "body": {"data": {"phone": item.payload["new"]}}},
            ]
        method, path, params, body = self._create(item)
        if params:
            path = f"{path}?{urlencode(params)}"
        return [{"method": method, "path": path, "body": body}]

    def deliver(self, item: OutboxItem) -> Delivered:
        if item.kind == "activity" and self.settings.activities == "none":
            return Delivered("skipped", reason="[push] activities = none")
        if item.kind == "phone":
            return self._phone(item)
        method, path, params, body = self._create(item)
        answer = self.http.call(
            method, path, params=params, body=body, safe_to_repeat=item.kind == "lead"
        )
        return Delivered("sent", destination_id=_id(answer))

    def find(self, item: OutboxItem, taken: set[int]) -> int | None:
        if item.kind not in ("activity", "note", "notification") or item.target_id is None:
            return None  # a lead's upsert and a phone's check are safe to repeat
        path = "/v2/tasks" if item.kind == "notification" else "/v2/notes"
        params = {
            "resource_type": item.record_type,
            "resource_id": item.target_id,
            "q": item.chat_id,
            "per_page": 100,
        }
        answer = self.http.call("GET", path, params=params, safe_to_repeat=True)
        first = first_line(item)
        for entry in (answer or {}).get("items", []):
            data = entry.get("data", entry) if isinstance(entry, dict) else {}
            found = data.get("id")
            content = str(data.get("content") or "")
            if found is not None and int(found) not in taken and content.split("\n", 1)[0] == first:
                return int(found)
        return None

    # -- the requests --------------------------------------------------------------------------------

    def _create(self, item: OutboxItem) -> tuple[str, str, dict[str, Any] | None, dict[str, Any]]:
        row = item.content or {}
        if item.kind == "lead":
            data = {k: row.get(k) for k in ("first_name", "last_name", "email", "phone", "owner_id",
                                             "status")}  # fmt: skip
            data["tags"] = _tags(row.get("tags"))
            data = {k: v for k, v in data.items() if v not in (None, "", [])}
            return (
                "POST",
                "/v2/leads/upsert",
                {"email": row.get("email_normalized")},
                {"data": data},
            )
        resource = {"resource_type": item.record_type, "resource_id": item.target_id}
        if item.kind == "notification":
            due = datetime.now(UTC) + timedelta(hours=self.settings.task_due_hours)
            stamp = due.isoformat(timespec="seconds").replace("+00:00", "Z")
            data = {"content": content(item), "owner_id": row.get("user_id"), **resource,
                    "due_date": stamp, "remind_at": stamp}  # fmt: skip
            return "POST", "/v2/tasks", None, {"data": data}
        return "POST", "/v2/notes", None, {"data": {**resource, "content": content(item),
                                                     "tags": TAGS}}  # fmt: skip

    def _record_path(self, item: OutboxItem) -> str:
        return f"/v2/{_RESOURCES[item.record_type]}/{item.target_id}"

    def _phone(self, item: OutboxItem) -> Delivered:
        """Sell's phone is set only where it still holds the value the change saw."""
        path = self._record_path(item)
        old, new = item.payload.get("old"), item.payload.get("new")
        answer = self.http.call("GET", path, safe_to_repeat=True)
        now = ((answer or {}).get("data") or {}).get("phone")
        if _same(now, new):
            return Delivered("sent", destination_id=item.target_id)  # (an earlier push's PUT)
        if not _same(now, old):
            return Delivered("skipped", reason="changed in Sell")
        self.http.call("PUT", path, body={"data": {"phone": new}}, safe_to_repeat=True)
        return Delivered("sent", destination_id=item.target_id)


def first_line(item: OutboxItem) -> str:
    """What a note or task of this item starts with (how a lost one is recognised)."""
    if item.kind == "note":
        return f"Zendesk Chat notes {item.chat_id}"
    return f"Zendesk Chat {item.chat_id}"


def content(item: OutboxItem) -> str:
    row = item.content or {}
    if item.kind == "note":
        return f"{first_line(item)}\n{row.get('content') or ''}".rstrip()
    if item.kind == "notification":
        return f"{first_line(item)}\n{row.get('message') or ''}".rstrip()
    summary = ", ".join(
        str(part)
        for part in (
            _when(row.get("started_at"), row.get("ended_at")),
            f"agents: {', '.join(_tags(row['agent_names']))}" if row.get("agent_names") else None,
            f"visitor: {row['visitor_name']}" if row.get("visitor_name") else None,
            f"department: {row['department']}" if row.get("department") else None,
            f"rating: {row['rating']}" if row.get("rating") else None,
            f"{row.get('message_count') or 0} messages",
        )
        if part
    )
    lines = [first_line(item), summary]
    if row.get("transcript_url"):
        lines.append(str(row["transcript_url"]))
    if row.get("transcript"):
        lines += ["", str(row["transcript"])]
    return "\n".join(lines)


def _when(started: Any, ended: Any) -> str | None:
    if started is None:
        return None
    text = _stamp(started)
    return f"{text} - {_stamp(ended)}" if ended is not None else text


def _stamp(value: Any) -> str:
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def _tags(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str) and value:
        text = value.strip()
        if text.startswith("["):
            import json  # noqa: PLC0415

            try:
                return [str(v) for v in json.loads(text)]
            except ValueError:
                pass
        return [t.strip() for t in text.replace(";", ",").split(",") if t.strip()]
    return []


def _same(a: Any, b: Any) -> bool:
    return (a or "") == (b or "")


def _id(answer: Any) -> int | None:
    data = (answer or {}).get("data") if isinstance(answer, dict) else None
    found = (data or {}).get("id")
    if found is None:
        raise Refused(200, "the answer holds no id")
    return int(found)
