"""What changed between two runs' reports: counts side by side, and the rejects that are new.

``compare_reports`` returns a JSON-ready dict (the HTML page shows it as a section);
``render_compare_text`` shows it on a terminal.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from etl.vocab import OUTCOMES, SELL_KEYS, WRITE_KEYS

REJECT_KEY = ("source_file", "position", "reason")
REJECT_COLUMNS = ("source_file", "position", "kind", "reason", "raw", "chat_id")
TEXT_REJECT_LIMIT = 50  # new rejects listed by render_compare_text; the rest is counted

_RUN_KEYS = ("run_id", "mode", "status", "started_at", "finished_at")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # a terminal would act on these


def compare_reports(
    current: dict[str, Any],
    previous: dict[str, Any],
    current_rejects: pd.DataFrame | None = None,
    previous_rejects: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The differences between two run reports (SPEC section 6 shape).

    Returns::

        {
          "current":  {"run_id", "mode", "status", "started_at", "finished_at"},
          "previous": {... the same for the older run ...},
          "outcomes":     {outcome:   {"current": int, "previous": int, "delta": int}},
          "writes":       {write_key: {"current": int, "previous": int, "delta": int}},
          "inputs":       {"chat_files" | "chats_read" | "chats_rematched" | ...: {...}},
          "sell_records": {"leads" | "contacts" | "deals" | "users" | ...: {...}},
          "exceptions":   {"multi_match_emails" | "rejects" | "warnings": {...}},
          "balanced":     {"current": bool | None, "previous": bool | None},
          "new_rejects":  [{"source_file", "position", "kind", "reason", "raw", "chat_id"}]
                          or None when either rejects frame was not given,
        }

    ``delta`` is current minus previous; a key missing from one report counts 0 there (and is
    listed when either report has it). A reject is new when no reject of the previous run has
    the same (source_file, position, reason); "warnings" counts the warning lines.
    """
    return {
        "current": {key: current.get(key) for key in _RUN_KEYS},
        "previous": {key: previous.get(key) for key in _RUN_KEYS},
        "outcomes": _deltas(current.get("outcomes"), previous.get("outcomes"), OUTCOMES),
        "writes": _deltas(current.get("writes"), previous.get("writes"), WRITE_KEYS),
        "inputs": _deltas(
            _flat(current.get("inputs")),
            _flat(previous.get("inputs")),
            ("chat_files", "chats_read", "chats_rematched"),
        ),
        "sell_records": _deltas(
            (current.get("inputs") or {}).get("sell_records"),
            (previous.get("inputs") or {}).get("sell_records"),
            SELL_KEYS,
        ),
        "exceptions": _deltas(
            _exceptions(current),
            _exceptions(previous),
            ("multi_match_emails", "rejects", "warnings"),
        ),
        "balanced": {
            "current": (current.get("accounting") or {}).get("balanced"),
            "previous": (previous.get("accounting") or {}).get("balanced"),
        },
        "new_rejects": (
            None
            if current_rejects is None or previous_rejects is None
            else new_rejects(current_rejects, previous_rejects)
        ),
    }


def new_rejects(current: pd.DataFrame, previous: pd.DataFrame) -> list[dict[str, Any]]:
    """Rejects of ``current`` whose (source_file, position, reason) ``previous`` lacks."""
    columns = list(REJECT_COLUMNS)
    now = current.reindex(columns=columns).reset_index(drop=True)
    if now.empty:
        return []
    key = list(REJECT_KEY)
    before = previous.reindex(columns=key).astype("string").fillna("").drop_duplicates()
    probe = now[key].astype("string").fillna("")
    known = probe.merge(before, on=key, how="left", indicator=True)["_merge"] == "both"
    fresh = now[~known.to_numpy()]
    fresh = fresh.astype(object).where(fresh.notna(), None)
    return fresh.to_dict(orient="records")


def _number(value: Any) -> int:
    if value is None or isinstance(value, bool):
        return 0
    if isinstance(value, float) and math.isnan(value):
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _deltas(
    current: dict[str, Any] | None, previous: dict[str, Any] | None, order: tuple[str, ...]
) -> dict[str, dict[str, int]]:
    current, previous = current or {}, previous or {}
    extra = sorted((set(current) | set(previous)) - set(order), key=str)
    keys = [k for k in order if k in current or k in previous] + extra
    rows = {}
    for key in keys:
        now, before = _number(current.get(key)), _number(previous.get(key))
        rows[str(key)] = {"current": now, "previous": before, "delta": now - before}
    return rows


def _flat(inputs: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (inputs or {}).items() if not isinstance(v, dict)}


def _exceptions(report: dict[str, Any]) -> dict[str, int]:
    return {
        "multi_match_emails": _number(report.get("multi_match_emails")),
        "rejects": _number(report.get("rejects")),
        "warnings": len(report.get("warnings") or []),
    }


# -- text -----------------------------------------------------------------------------------------


def _safe(value: Any) -> str:
    """Text for a terminal: no escape sequences or other control characters from the exports."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return _CONTROL.sub("\ufffd", str(value))


def _run_label(run: dict[str, Any]) -> str:
    run_id = run.get("run_id")
    return f"run {_safe(run_id)}" if run_id is not None else "dry run"


def _signed(delta: int) -> str:
    return f"{delta:+,}" if delta else "0"


def render_compare_text(comparison: dict[str, Any]) -> str:
    """The comparison as aligned tables for a terminal: previous, current and change per count."""
    current, previous = comparison.get("current") or {}, comparison.get("previous") or {}
    now_label, before_label = _run_label(current), _run_label(previous)
    lines = [
        f"{now_label} ({_safe(current.get('mode'))}, {_safe(current.get('status'))}, "
        f"started {_safe(current.get('started_at'))})",
        f"  compared with {before_label} ({_safe(previous.get('mode'))}, "
        f"{_safe(previous.get('status'))}, started {_safe(previous.get('started_at'))})",
    ]
    groups = [
        (title, comparison.get(group) or {})
        for group, title in (
            ("outcomes", "outcomes"),
            ("writes", "writes"),
            ("inputs", "inputs"),
            ("sell_records", "sell records"),
            ("exceptions", "exceptions"),
        )
    ]
    keys = [_safe(k) for _, rows in groups for k in rows]
    width = max([len(k) for k in keys] + [len("sell records")]) + 2
    numbers = [
        text
        for _, rows in groups
        for row in rows.values()
        for text in (f"{row['previous']:,}", f"{row['current']:,}", _signed(row["delta"]))
    ]
    col = max([len(n) for n in numbers] + [len(now_label), len(before_label), len("change")])
    for title, rows in groups:
        if not rows:
            continue
        lines += [
            "",
            f"{title:<{width}}{before_label:>{col}}  {now_label:>{col}}  {'change':>{col}}",
        ]
        for key, row in rows.items():
            lines.append(
                f"  {_safe(key):<{width - 2}}{row['previous']:>{col},}  {row['current']:>{col},}"
                f"  {_signed(row['delta']):>{col}}"
            )
    balanced = comparison.get("balanced") or {}
    if balanced:
        lines += [
            "",
            f"balanced: {_yes_no(balanced.get('previous'))} -> {_yes_no(balanced.get('current'))}",
        ]
    fresh = comparison.get("new_rejects")
    if fresh is None:
        lines += ["", "new rejects: not compared"]
    else:
        lines += ["", f"new rejects: {len(fresh):,}"]
        for reject in fresh[:TEXT_REJECT_LIMIT]:
            lines.append(
                f"  {_safe(reject.get('source_file'))}  {_safe(reject.get('position'))}  "
                f"{_safe(reject.get('reason'))}"
            )
        if len(fresh) > TEXT_REJECT_LIMIT:
            lines.append(f"  ... {len(fresh) - TEXT_REJECT_LIMIT:,} more not shown")
    return "\n".join(lines)


def _yes_no(value: Any) -> str:
    if value is None:
        return "unknown"
    return "yes" if value else "NO"
