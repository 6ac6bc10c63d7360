"""The run report (SPEC section 6): every chat read accounted for, and what was written."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from etl.vocab import OUTCOMES, SELL_KEYS, RunCounters


def build_report(
    *,
    run_id: int | None,
    mode: str,
    status: str,
    started_at: datetime,
    finished_at: datetime | None,
    counters: RunCounters,
    outcomes: dict[str, int],
    multi_match_emails: int,
    removed_reasons: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The report as JSON-ready dict; ``balanced`` only when every chat read has one outcome.

    ``removed_reasons``: the chats of outcome ``removed`` by reason (``deleted at source``).
    """
    inputs = counters.inputs
    chats_read = int(inputs.chats_staged) + int(inputs.chat_rejects)
    outcome_counts = {name: int(outcomes.get(name, 0)) for name in OUTCOMES}
    total = sum(outcome_counts.values())
    sell = {name: int(inputs.sell_records.get(name, 0)) for name in SELL_KEYS}
    sell.update({k: int(v) for k, v in inputs.sell_records.items() if k not in sell and v})
    return {
        "run_id": run_id,
        "mode": mode,
        "status": status,
        "started_at": _iso(started_at),
        "finished_at": _iso(finished_at),
        "inputs": {
            "chat_files": int(inputs.chat_files),
            "chats_read": chats_read,
            "sell_records": sell,
            "chats_rematched": int(inputs.chats_rematched),
            "leads_confirmed": int(inputs.leads_confirmed),
            **(
                {"chats_outside_window": int(inputs.chats_outside_window)}
                if inputs.chats_outside_window is not None
                else {}
            ),
        },
        "outcomes": outcome_counts,
        "removed_reasons": {
            str(reason): int(count)
            for reason, count in sorted(
                (removed_reasons or {}).items(), key=lambda item: (-int(item[1]), str(item[0]))
            )
            if count
        },
        "accounting": {
            "chats_read": chats_read,
            "outcomes_total": total,
            "balanced": chats_read == total,
        },
        "writes": counters.writes.as_dict(),
        "assignments": counters.as_dict()["assignments"],
        "multi_match_emails": int(multi_match_emails),
        "rejects": int(counters.rejects),
        "warnings": list(counters.warnings),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None
