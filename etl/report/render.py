"""Rendering a stored run report: text for people, JSON for tools, CSV for spreadsheets.

CSV cells that a spreadsheet would run as a formula (starting with ``= + - @``, or a tab or
carriage return) are prefixed with ``'`` (OWASP's advice against CSV injection).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

DETAIL_COLUMNS = ("chat_id", "outcome", "email_normalized", "records", "reason")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text, never runs."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    write_csv(out, header, rows)
    return out.getvalue()


def write_csv(out: TextIO, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """``header`` and ``rows`` to ``out`` as CSV, no cell a formula; the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    written = 0
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
        written += 1
    return written


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False)


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(section, key, value) for every number in the report."""
    rows: list[tuple[str, str, Any]] = [
        ("run", "run_id", report.get("run_id")),
        ("run", "mode", report.get("mode")),
        ("run", "status", report.get("status")),
        ("run", "started_at", report.get("started_at")),
        ("run", "finished_at", report.get("finished_at")),
    ]
    inputs = report.get("inputs", {})
    for key, value in inputs.items():
        if isinstance(value, dict):
            rows.extend(("sell_records", k, v) for k, v in value.items())
        else:
            rows.append(("inputs", key, value))
    for section in ("outcomes", "removed_reasons", "accounting", "writes"):
        rows.extend((section, k, v) for k, v in report.get(section, {}).items())
    for group, counts in report.get("assignments", {}).items():
        rows.extend((f"assignments.{group}", str(k), v) for k, v in counts.items())
    rows.append(("exceptions", "multi_match_emails", report.get("multi_match_emails", 0)))
    rows.append(("exceptions", "rejects", report.get("rejects", 0)))
    rows.extend(("warnings", str(i + 1), w) for i, w in enumerate(report.get("warnings", [])))
    return rows


def render_csv_summary(report: dict[str, Any]) -> str:
    return to_csv(("section", "key", "value"), summary_rows(report))


def _table(title: str, pairs: list[tuple[str, Any]]) -> list[str]:
    if not pairs:
        return []
    width = max(len(str(k)) for k, _ in pairs)
    lines = [title]
    for key, value in pairs:
        shown = (
            f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
        )
        lines.append(f"  {str(key):<{width}}  {shown:>12}")
    return lines


def render_push(report: dict[str, Any]) -> str:
    """A push's summary: rows sent, failed and skipped by kind, what is left, the requests."""
    push = report.get("push", {})
    head = (
        f"run {report.get('run_id') if report.get('run_id') is not None else '(dry run)'}  "
        f"{report.get('mode')}  {report.get('status')}  "
        f"{report.get('started_at')} -> {report.get('finished_at')}"
    )
    lines = [head, ""]
    for state in ("sent", "failed", "skipped"):
        counts = push.get(state, {})
        lines += _table(f"{state} (total {sum(counts.values()):,})", list(counts.items())) + [""]
    lines += _table(
        "outbox and requests",
        [
            (k, push.get(k, 0))
            for k in ("pending", "waiting", "requests", "retries", "rate_limited")
        ],
    )
    return "\n".join(lines)


def render_text(report: dict[str, Any]) -> str:
    """A summary a person reads on a terminal: outcomes, writes, accounting, warnings."""
    if "push" in report:
        return render_push(report)
    accounting = report.get("accounting", {})
    balanced = "balanced" if accounting.get("balanced") else "NOT BALANCED"
    head = (
        f"run {report.get('run_id') if report.get('run_id') is not None else '(dry run)'}  "
        f"{report.get('mode')}  {report.get('status')}  "
        f"{report.get('started_at')} -> {report.get('finished_at')}"
    )
    inputs = report.get("inputs", {})
    lines = [head, ""]
    lines += _table(
        "inputs",
        [(k, v) for k, v in inputs.items() if not isinstance(v, dict)]
        + [(f"sell {k}", v) for k, v in inputs.get("sell_records", {}).items()],
    )
    lines += [""] + _table("outcomes", list(report.get("outcomes", {}).items()))
    lines += [
        f"  {'total':<16}  {accounting.get('outcomes_total', 0):>12,}  of {accounting.get('chats_read', 0):,} "
        f"chats read: {balanced}",
        "",
    ]
    removed = report.get("removed_reasons") or {}
    if removed:
        lines += _table("removed, by reason", list(removed.items())) + [""]
    lines += _table("writes", list(report.get("writes", {}).items()))
    for group, counts in report.get("assignments", {}).items():
        if counts:
            lines += [""] + _table(f"assignments {group.replace('_', ' ')}", sorted(counts.items()))
    lines += [
        "",
        f"multi-match emails: {report.get('multi_match_emails', 0):,}   rejects: {report.get('rejects', 0):,}",
    ]
    warnings = report.get("warnings", [])
    if warnings:
        lines += ["", "warnings"] + [f"  - {w}" for w in warnings]
    return "\n".join(lines)
