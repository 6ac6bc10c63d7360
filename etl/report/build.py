"""The run report (SPEC section 6): every chat read accounted for, and what was written."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from etl.transform.plan import OUTCOMES

WRITE_KEYS = (
    "activities_inserted",
    "activities_updated",
    "activities_unchanged",
    "activities_removed",
    "leads_created",
    "notes_created",
    "notifications_created",
    "phone_updates",
)
SELL_KEYS = ("leads", "contacts", "deals", "users")


def empty_counters() -> dict[str, Any]:
    """What a run counts as it goes (persisted with every chunk, so a resumed run goes on)."""
    return {
        "inputs": {
            "chat_files": 0,
            "chats_staged": 0,
            "chat_rejects": 0,
            "sell_records": {},
            "chats_rematched": 0,
        },
        "writes": dict.fromkeys(WRITE_KEYS, 0),
        "assignments": {"by_owner": {}, "by_pool": {}, "by_rule": {}},
        "rejects": 0,
        "warnings": [],
    }


def add_counts(target: dict[str, Any], more: dict[str, int]) -> None:
    for key, value in more.items():
        target[key] = target.get(key, 0) + value


def build_report(
    *,
    run_id: int | None,
    mode: str,
    status: str,
    started_at: datetime,
    finished_at: datetime | None,
    counters: dict[str, Any],
    outcomes: dict[str, int],
    multi_match_emails: int,
) -> dict[str, Any]:
    """The report as JSON-ready dict; ``balanced`` only when every chat read has one outcome."""
    inputs = counters["inputs"]
    chats_read = int(inputs["chats_staged"]) + int(inputs["chat_rejects"])
    outcome_counts = {name: int(outcomes.get(name, 0)) for name in OUTCOMES}
    total = sum(outcome_counts.values())
    sell = {name: int(inputs["sell_records"].get(name, 0)) for name in SELL_KEYS}
    sell.update({k: int(v) for k, v in inputs["sell_records"].items() if k not in sell and v})
    return {
        "run_id": run_id,
        "mode": mode,
        "status": status,
        "started_at": _iso(started_at),
        "finished_at": _iso(finished_at),
        "inputs": {
            "chat_files": int(inputs["chat_files"]),
            "chats_read": chats_read,
            "sell_records": sell,
            "chats_rematched": int(inputs.get("chats_rematched", 0)),
            **(
                {"chats_outside_window": int(inputs["chats_outside_window"])}
                if "chats_outside_window" in inputs
                else {}
            ),
        },
        "outcomes": outcome_counts,
        "accounting": {
            "chats_read": chats_read,
            "outcomes_total": total,
            "balanced": chats_read == total,
        },
        "writes": {key: int(counters["writes"].get(key, 0)) for key in WRITE_KEYS},
        "assignments": counters["assignments"],
        "multi_match_emails": int(multi_match_emails),
        "rejects": int(counters["rejects"]),
        "warnings": list(counters["warnings"]),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None
