"""Comparing two runs: per-count deltas and the rejects that are new."""

from __future__ import annotations

import json

import pandas as pd

from etl.report.compare import compare_reports, new_rejects, render_compare_text

REJECT_COLUMNS = ["source_file", "position", "kind", "reason", "raw", "chat_id"]


def report(run_id, *, matched=0, leads_created=0, chats_read=0, leads=0, rejects=0, **extra):
    return {
        "run_id": run_id,
        "mode": "sync",
        "status": "succeeded",
        "started_at": "2026-11-02T09:00:00+00:00",
        "finished_at": "2026-11-02T09:01:00+00:00",
        "inputs": {
            "chat_files": 1,
            "chats_read": chats_read,
            "sell_records": {"leads": leads, "contacts": 0, "deals": 0, "users": 0},
            "chats_rematched": 0,
        },
        "outcomes": {"matched": matched, "lead_created": 0, "rejected": rejects},
        "accounting": {"chats_read": chats_read, "outcomes_total": chats_read, "balanced": True},
        "writes": {"activities_inserted": matched, "leads_created": leads_created},
        "assignments": {"by_owner": {}, "by_pool": {}, "by_rule": {}},
        "multi_match_emails": 0,
        "rejects": rejects,
        "warnings": [],
        **extra,
    }


def rejects(*rows):
    return pd.DataFrame(
        [dict(zip(REJECT_COLUMNS, r, strict=True)) for r in rows], columns=REJECT_COLUMNS
    )


def test_deltas_per_outcome_write_and_input():
    comparison = compare_reports(
        report(8, matched=5, leads_created=1, chats_read=9, leads=4),
        report(7, matched=7, leads_created=1, chats_read=7, leads=2),
    )
    assert comparison["current"]["run_id"] == 8 and comparison["previous"]["run_id"] == 7
    assert comparison["outcomes"]["matched"] == {"current": 5, "previous": 7, "delta": -2}
    assert comparison["outcomes"]["lead_created"]["delta"] == 0
    assert comparison["writes"]["leads_created"] == {"current": 1, "previous": 1, "delta": 0}
    assert comparison["inputs"]["chats_read"] == {"current": 9, "previous": 7, "delta": 2}
    assert comparison["sell_records"]["leads"]["delta"] == 2
    assert comparison["balanced"] == {"current": True, "previous": True}
    assert comparison["new_rejects"] is None  # no frames given: not compared
    json.dumps(comparison)  # JSON-ready


def test_a_key_in_one_report_only_counts_zero_in_the_other():
    current = report(2, chats_outside_window=3)
    current["inputs"]["chats_outside_window"] = 3
    current["outcomes"]["no_email"] = 4
    comparison = compare_reports(current, report(1))
    assert comparison["outcomes"]["no_email"] == {"current": 4, "previous": 0, "delta": 4}
    assert comparison["inputs"]["chats_outside_window"]["delta"] == 3
    assert list(comparison["outcomes"])[:2] == ["matched", "lead_created"]  # SPEC order first


def test_new_rejects_are_those_the_previous_run_lacked():
    before = rejects(
        ("a.jsonl", "line 3", "chat", "invalid JSON", "{", None),
        ("b.json", "record 2", "chat", "no id", "{}", None),
    )
    now = rejects(
        ("a.jsonl", "line 3", "chat", "invalid JSON", "{", None),  # seen before
        ("a.jsonl", "line 4", "chat", "invalid JSON", "[", None),  # new position
        ("b.json", "record 2", "chat", "no timestamp", "{}", "c7"),  # same place, new reason
    )
    comparison = compare_reports(report(2, rejects=3), report(1, rejects=2), now, before)
    fresh = comparison["new_rejects"]
    assert [(r["position"], r["reason"]) for r in fresh] == [
        ("line 4", "invalid JSON"),
        ("record 2", "no timestamp"),
    ]
    assert fresh[1]["chat_id"] == "c7" and fresh[0]["chat_id"] is None
    assert comparison["exceptions"]["rejects"] == {"current": 3, "previous": 2, "delta": 1}


def test_new_rejects_edge_frames():
    one = rejects(("a", "line 1", "chat", "bad", "x", None))
    assert new_rejects(one, pd.DataFrame()) == [
        one.iloc[0].where(one.iloc[0].notna(), None).to_dict()
    ]
    assert new_rejects(rejects(), one) == []
    assert new_rejects(one, one) == []
    missing = rejects(("a", None, "file", "unreadable", None, None))
    assert new_rejects(missing, missing) == []  # a missing position still matches itself


def test_text_is_aligned_and_safe_for_a_terminal():
    now = rejects(("a.jsonl", "line 4", "chat", "bad \x1b[2J value", "x", None))
    text = render_compare_text(
        compare_reports(report(8, matched=1234), report(None, matched=5), now, rejects())
    )
    assert "\x1b" not in text
    lines = text.splitlines()
    assert lines[0].startswith("run 8") and "compared with dry run" in lines[1]
    header = next(line for line in lines if line.startswith("outcomes"))
    matched = next(line for line in lines if line.strip().startswith("matched"))
    assert header.split() == ["outcomes", "dry", "run", "run", "8", "change"]
    assert matched.split() == ["matched", "5", "1,234", "+1,229"]
    assert len(matched) == len(header)  # right-aligned columns end together
    assert "new rejects: 1" in text and "line 4" in text


def test_text_caps_the_reject_list():
    many = rejects(*((f"f{i}", "line 1", "chat", "bad", "", None) for i in range(60)))
    text = render_compare_text(compare_reports(report(2), report(1), many, rejects()))
    assert "new rejects: 60" in text and "... 10 more not shown" in text
    assert "new rejects: not compared" in render_compare_text(compare_reports(report(2), report(1)))
