"""The HTML report: one offline page with every chart and exception list, and nothing executable."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from etl.report.compare import compare_reports
from etl.report.digest import OutcomeDigest
from etl.report.html import LIST_LIMIT, render_html

CHARTS = (
    "outcomes-over-time",
    "outcomes-by-department",
    "outcomes-by-agent",
    "leads-by-owner",
    "leads-by-pool",
)
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
QUOTE = '"><svg onload=alert(1)>'
REPO = Path(__file__).resolve().parents[2]


def report(**overrides):
    base = {
        "run_id": 7,
        "mode": "sync",
        "status": "succeeded",
        "started_at": "2026-11-02T09:00:00+00:00",
        "finished_at": "2026-11-02T09:03:05+00:00",
        "inputs": {
            "chat_files": 2,
            "chats_read": 4,
            "sell_records": {"leads": 3, "contacts": 2, "deals": 1, "users": 2},
            "chats_rematched": 0,
        },
        "outcomes": {
            "matched": 1,
            "lead_created": 0,
            "matched_new_lead": 0,
            "lead_skipped": 1,
            "no_email": 0,
            "invalid_email": 1,
            "rejected": 1,
        },
        "accounting": {"chats_read": 4, "outcomes_total": 4, "balanced": True},
        "writes": {
            "activities_inserted": 2,
            "activities_updated": 0,
            "activities_unchanged": 0,
            "activities_removed": 0,
            "leads_created": 0,
            "notes_created": 0,
            "notifications_created": 0,
            "phone_updates": 0,
        },
        "assignments": {"by_owner": {"101": 2}, "by_pool": {"inbound": 2}, "by_rule": {}},
        "multi_match_emails": 1,
        "rejects": 1,
        "warnings": [],
    }
    base.update(overrides)
    return base


def outcome(chat_id, kind, *, email=None, records=None, reason=None, matches=0,
            started="2026-11-02T09:00:00Z", department="Sales", agent="Aiko"):  # fmt: skip
    return {
        "chat_id": chat_id,
        "outcome": kind,
        "email_normalized": email,
        "records": records,
        "reason": reason,
        "match_count": matches,
        "chat_started_at": pd.Timestamp(started) if started else pd.NaT,
        "department": department,
        "agent": agent,
    }


def outcomes(*rows):
    frame = pd.DataFrame(list(rows), columns=list(outcome("x", "matched")))
    frame["chat_started_at"] = pd.to_datetime(frame["chat_started_at"], utc=True)
    return frame


def rejects(*rows):
    columns = ["source_file", "position", "kind", "reason", "raw", "chat_id"]
    return pd.DataFrame([dict(zip(columns, r, strict=True)) for r in rows], columns=columns)


def sample():
    return outcomes(
        outcome("c1", "matched", email="a@x.example", records="lead:1;contact:2", matches=2),
        outcome("c2", "invalid_email", reason="not an email address: a@@b", agent=None),
        outcome(
            "c3",
            "lead_skipped",
            email="b@corp.example",
            reason="email domain is ignored",
            started="2026-11-04T10:00:00Z",
            department=None,
        ),  # fmt: skip
        outcome("rejected:f:1", "rejected", reason="invalid JSON", started=None),
    ), rejects(("exports/chats.jsonl", "line 10", "chat", "invalid JSON", '{"id": "c9"', None))


def hostile():
    """Every value an export controls carries markup."""
    frame = outcomes(
        outcome(
            "c1" + SCRIPT,
            "matched",
            email=f"{IMG}@x.example",
            records=f"lead:{SCRIPT}",
            matches=2,
            department=SCRIPT,
            agent=IMG,
        ),  # fmt: skip
        outcome("c2", "invalid_email", reason=f"not an email address: {SCRIPT}", agent=QUOTE),
        outcome("c3", "lead_skipped", email="b@x.example", reason=IMG, department=QUOTE),
    )
    bad = rejects((f"{IMG}.jsonl", SCRIPT, "chat", QUOTE, SCRIPT + IMG * 3, None))
    run = report(
        assignments={"by_owner": {SCRIPT: 1}, "by_pool": {IMG: 1}, "by_rule": {QUOTE: 1}},
        warnings=[f"pool member {SCRIPT} is not a Sell user"],
        mode=IMG,
    )
    return run, frame, bad


class Tags(HTMLParser):
    """The elements the browser would build, with their attributes."""

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def named(self, tag):
        return [attrs for name, attrs in self.tags if name == tag]


def test_page_has_every_chart_and_exception_list():
    frame, bad = sample()
    page = render_html(report(), frame, bad)
    charts = {a["data-chart"]: a for a in Tags(page).named("svg")}
    assert set(CHARTS) <= set(charts)
    assert all("chart" in a["class"].split() for a in charts.values())
    for key in CHARTS:
        svg = re.search(rf'<svg[^>]*data-chart="{key}".*?</svg>', page, re.S).group(0)
        assert "<title" in svg and "<rect" in svg, key
    for anchor in ("rejects", "invalid-emails", "multi-match-emails", "skipped-leads",
                   "removed-chats"):  # fmt: skip
        assert f'id="{anchor}"' in page
    assert "line 10" in page and "chats.jsonl" in page  # the reject's file and position
    assert "not an email address: a@@b" in page
    assert "lead:1;contact:2" in page and "a@x.example" in page  # the multi-match email
    assert "email domain is ignored" in page
    assert "(no department)" in page and "(no agent)" in page
    assert "1 chat without a start time" in page
    assert 'class="badge good">balanced<' in page


def test_page_is_a_single_offline_document():
    frame, bad = sample()
    page = render_html(report(), frame, bad)
    assert page.startswith("<!DOCTYPE html>")
    tags = Tags(page)
    assert not tags.named("script") and not tags.named("link") and not tags.named("iframe")
    csp = [a for a in tags.named("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and csp[0]["content"].startswith("default-src 'none'")
    for name, attrs in tags.tags:
        for attr, value in attrs.items():
            assert not (attr.startswith("on")), (name, attr)
            if attr in ("src", "href", "xlink:href", "action", "srcset", "poster", "data"):
                assert value and value.startswith(("#", "data:")), (name, attr, value)
    assert not re.search(r"url\(\s*['\"]?(?!data:|#)", page)  # no CSS fetches
    assert "@import" not in page


def test_urls_from_exports_are_text_not_resources():
    frame, _ = sample()
    plain = render_html(report(), frame, rejects())
    assert "http://" not in plain and "https://" not in plain
    bad = rejects(
        (
            "a.jsonl",
            "line 1",
            "chat",
            "x",
            '<script src="https://evil.example/x.js"></script>',
            None,
        ),
        (
            "b.jsonl",
            "line 2",
            "chat",
            "x",
            "<link rel=stylesheet href=http://evil.example/s>",
            None,
        ),
    )
    page = render_html(report(warnings=["see https://evil.example/help"]), frame, bad)
    assert "&lt;script src=&quot;https://evil.example/x.js&quot;&gt;" in page
    tags = Tags(page)
    assert not tags.named("script") and not tags.named("link")
    assert not [v for _, attrs in tags.tags for v in attrs.values() if v and "evil." in v]


def test_hostile_values_come_out_as_text():
    run, frame, bad = hostile()
    page = render_html(run, frame, bad)
    for payload in (SCRIPT, IMG, QUOTE):
        assert payload not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&quot;&gt;&lt;svg onload=alert(1)&gt;" in page
    tags = Tags(page)
    assert not tags.named("script") and not tags.named("img")
    assert len(tags.named("svg")) == len({a["data-chart"] for a in tags.named("svg")})
    assert not any(attr.startswith("on") for _, attrs in tags.tags for attr in attrs)
    # inside SVG too: the department label, its <title>, the owner bar
    department = re.search(r'<svg[^>]*data-chart="outcomes-by-department".*?</svg>', page, re.S)
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt;</title>" in department.group(0)


def test_control_characters_do_not_reach_the_page():
    frame = outcomes(outcome("c1", "invalid_email"))
    # object dtype: pandas' Arrow strings cannot even hold a lone surrogate
    frame["reason"] = pd.Series(["bad\x00\x1b[31m\ud800 address"], dtype=object)
    page = render_html(report(), frame, rejects())
    assert "\x00" not in page and "\x1b" not in page
    page.encode("utf-8")  # no lone surrogate left to fail the write


def test_empty_run_renders_placeholders():
    empty_report = report(
        outcomes=dict.fromkeys(report()["outcomes"], 0),
        accounting={"chats_read": 0, "outcomes_total": 0, "balanced": True},
        assignments={"by_owner": {}, "by_pool": {}, "by_rule": {}},
    )
    page = render_html(empty_report, outcomes(), rejects())
    charts = {a["data-chart"] for a in Tags(page).named("svg")}
    assert set(CHARTS) <= charts
    assert page.count(">no data<") >= len(CHARTS)
    assert page.count('<p class="muted">none</p>') == 5  # the five exception lists
    assert page.rstrip().endswith("</html>")


def test_frames_without_columns_and_a_bare_report_still_render():
    bare = {"run_id": 3, "mode": "sync", "status": "failed", "error": f"boom {SCRIPT}"}
    page = render_html(bare, pd.DataFrame(), pd.DataFrame())
    assert "boom &lt;script&gt;" in page and "no accounting" in page


def test_dry_run_has_no_run_id():
    frame, bad = sample()
    page = render_html(report(run_id=None, mode="dry-run"), frame, bad)
    assert "<title>chatsell dry run" in page and "(dry run)" in page
    assert "None" not in re.sub(r"<[^>]+>", "", page)


def test_not_balanced_is_loud():
    page = render_html(
        report(accounting={"chats_read": 5, "outcomes_total": 4, "balanced": False}),
        *sample(),
    )
    assert ">NOT BALANCED<" in page and "1 fewer outcomes than chats read" in page


def test_long_lists_are_capped():
    many = outcomes(
        *(outcome(f"c{i:04d}", "invalid_email", reason="x") for i in range(LIST_LIMIT + 7))
    )
    raw = "r" * 2048
    bad = rejects(*((f"f{i}", f"line {i}", "chat", "bad", raw, None) for i in range(3)))
    page = render_html(report(), many, bad)
    assert "7 more not shown." in page
    assert page.count("<code>c0") == LIST_LIMIT
    assert "1,648 more characters" in page and "r" * 401 not in page


def test_top_agents_and_other():
    frame = outcomes(*(outcome(f"c{i}", "matched", agent=f"agent {i:02d}") for i in range(20)))
    page = render_html(report(), frame, rejects())
    agents = re.search(r'<svg[^>]*data-chart="outcomes-by-agent".*?</svg>', page, re.S).group(0)
    assert "other (5 agents)" in agents
    assert agents.count('class="label"') == 16


@pytest.mark.parametrize(
    ("days", "unit"), [(10, "day (UTC)"), (200, "week from Monday (UTC)"), (1000, "month (UTC)")]
)
def test_time_buckets_follow_the_span(days, unit):
    start = pd.Timestamp("2024-01-01T00:00:00Z")
    frame = outcomes(
        outcome("a", "matched", started=start.isoformat()),
        outcome("b", "no_email", started=(start + pd.Timedelta(days=days)).isoformat()),
    )
    page = render_html(report(), frame, rejects())
    assert unit in page


def test_naive_times_are_read_as_utc():
    frame = outcomes(outcome("a", "matched", started="2026-11-02T23:30:00Z"))
    frame["chat_started_at"] = frame["chat_started_at"].dt.tz_localize(None)  # as SQLite returns
    page = render_html(report(), frame, rejects())
    assert "2026-11-02 \u00b7 matched: 1" in page


def test_comparison_section():
    frame, bad = sample()
    before = report(run_id=6, outcomes={**report()["outcomes"], "matched": 3})
    previous_rejects = rejects()
    comparison = compare_reports(report(), before, bad, previous_rejects)
    page = render_html(report(), frame, bad, comparison)
    assert 'id="comparison"' in page and "Compared with run 6" in page
    assert "<strong>\u22122</strong>" in page  # matched 3 -> 1
    section = re.search(r'<section id="comparison">.*?</section>', page, re.S).group(0)
    assert "line 10" in section  # the new reject
    assert 'id="comparison"' not in render_html(report(), frame, bad)


def _varied(rows: int, span_days: int = 800) -> pd.DataFrame:
    """Outcomes of every kind over ``span_days``, exceptions past LIST_LIMIT, skip reasons with
    ties (and none given), multi-match emails whose chats list different records and match
    counts, departments and agents blank, missing and padded."""
    kinds = ["matched", "invalid_email", "lead_skipped", "lead_created", "no_email", "rejected"]
    reasons = ["email domain is ignored", "chat older than 30 days", None, "offline message", ""]
    made = []
    for i in range(rows):
        kind, j, m = kinds[i % len(kinds)], i // 6, i // 12
        multi = kind == "matched" and i % 12 == 0
        made.append(
            outcome(
                f"c{(i * 7919) % rows:05d}",  # not in start order
                kind,
                email=f"shared{m % 5}@x.example" if multi else f"u{i}@x.example",
                records=f"lead:{m % 3};contact:{(m // 3) % 2}" if multi else None,
                matches=2 + m % 3 if multi else 1,
                reason=reasons[j % 5] if kind in ("lead_skipped", "invalid_email") else None,
                started=None if kind == "rejected" else "2024-01-01T00:00:00Z",
                department=["Sales", " Sales ", "", None, "Support"][i % 5],
                agent=[None, "Aiko", "Ben", "  "][i % 4],
            )
        )
    frame = outcomes(*made)
    dated = frame["outcome"] != "rejected"
    frame.loc[dated, "chat_started_at"] += pd.to_timedelta(
        (frame.index[dated] * 37) % span_days, unit="D"
    ) + pd.to_timedelta(frame.index[dated] % 24, unit="h")
    return frame


@pytest.mark.parametrize(("rows", "chunk", "span"), [(60, 1, 800), (60, 7, 60), (6 * LIST_LIMIT + 50, 97, 300),
                                                    (6 * LIST_LIMIT + 50, 1000, 800)])  # fmt: skip
def test_a_page_drawn_chunk_by_chunk_equals_the_page_of_all_rows(rows, chunk, span):
    """A store's outcomes are folded into the page a fetch at a time (``OutcomeDigest``): the
    counts, first rows, capped lists and multi-match records must not depend on the chunks,
    and must be what the rows themselves say."""
    frame = _varied(rows, span)
    whole = render_html(report(), frame, rejects())
    digest = OutcomeDigest()
    for start in range(0, len(frame), chunk):
        digest.add(frame.iloc[start : start + chunk])
    assert render_html(report(), digest, rejects()) == whole

    invalid = frame[frame["outcome"] == "invalid_email"].sort_values(["chat_started_at", "chat_id"])
    first = list(invalid["chat_id"][:LIST_LIMIT])
    assert digest.invalid_count == len(invalid)
    assert list(digest.invalid["chat_id"]) == first
    if len(invalid) > LIST_LIMIT:
        assert f"{len(invalid) - LIST_LIMIT:,} more not shown." in whole
    assert re.findall(r"<code>(c\d+)</code>", whole)[: len(first)] == first

    union: dict[str, dict[str, None]] = {}
    most: dict[str, int] = {}
    # the union in chat id order (a store's order), whatever order the rows came in
    for email, listed, matches in (
        frame.loc[
            frame["match_count"] > 1, ["email_normalized", "records", "match_count", "chat_id"]
        ]
        .sort_values("chat_id")
        .values[:, :3]
    ):
        union.setdefault(email, {}).update(dict.fromkeys(listed.split(";")))
        most[email] = max(most.get(email, 0), matches)
    emails, count = digest.multi_match()
    assert count == len(union) == 5
    assert dict(zip(emails["email"], emails["records"], strict=True)) == {
        email: ";".join(records) for email, records in union.items()
    }
    assert list(emails["email"]) == sorted(union, key=lambda e: (-most[e], -len(
        frame[(frame["email_normalized"] == e) & (frame["match_count"] > 1)]), e))  # fmt: skip

    # the old page's own computations, from the rows whole: skip reasons in order (ties by
    # reason, none given last), and chats per day, week or month by outcome
    skipped = frame[frame["outcome"] == "lead_skipped"].sort_values(
        ["reason", "chat_started_at", "chat_id"], na_position="last"
    )
    by_reason = skipped["reason"].astype("string").fillna("").value_counts()
    assert digest.reasons() == list(by_reason.items())
    started = frame["chat_started_at"].dt.tz_convert("UTC").dt.tz_localize(None)
    outcome_of = frame["outcome"].astype(str)
    for bucket in (lambda s: s.dt.floor("D"), lambda s: s.dt.to_period("W-SUN").dt.start_time,
                   lambda s: s.dt.to_period("M").dt.start_time):  # fmt: skip
        old = pd.crosstab(bucket(started).rename("b"), outcome_of).astype("int64")
        days = digest.by_day.index.to_series()
        new = digest.by_day.groupby(bucket(days).to_numpy()).sum()
        assert new.to_numpy().tolist() == old.to_numpy().tolist()
    assert int(digest.by_department.loc["(no department)"].sum()) == sum(
        1 for d in frame["department"] if not isinstance(d, str) or not d.strip()
    )


@pytest.mark.parametrize("chunk", [1, 7, 10_000])
def test_removed_chats_are_listed_with_their_reasons(chunk):
    """Chats removed (deleted at source, SPEC 10): counted by reason, the first LIST_LIMIT
    listed by start time and chat id, whatever the chunks a store sends them in."""
    removed = [
        outcome(f"d{(i * 7) % (LIST_LIMIT + 20):04d}", "removed", agent=None, department=None,
                reason="deleted at source" if i % 4 else "erasure request",
                started=f"2026-11-{1 + i % 28:02d}T09:00:00Z")
        for i in range(LIST_LIMIT + 20)
    ]  # fmt: skip
    frame = outcomes(outcome("c1", "matched", email="a@x.example", records="lead:1"), *removed)
    counts = {"matched": 1, "removed": len(removed)}
    whole = render_html(report(outcomes=counts), frame, rejects())
    digest = OutcomeDigest()
    for start in range(0, len(frame), chunk):
        digest.add(frame.iloc[start : start + chunk])
    assert render_html(report(outcomes=counts), digest, rejects()) == whole
    assert digest.removed_count == len(removed)
    assert dict(digest.removed_reasons) == {"deleted at source": 390, "erasure request": 130}
    block = whole[whole.index('id="removed-chats"') :]
    block = block[: block.index("</table>")]
    assert f'Removed chats <span class="count">{len(removed):,}</span>' in block
    assert "deleted at source <span" in block and "erasure request <span" in block
    listed = re.findall(r"<code>(d\d+)</code>", block)
    ordered = frame[frame["outcome"] == "removed"].sort_values(["chat_started_at", "chat_id"])
    assert listed == list(ordered["chat_id"][:LIST_LIMIT])
    assert "20 more not shown." in whole
    assert 'background:#000000"></span>removed</th>' in whole  # in the outcome table


def test_skip_reasons_tie_by_reason_and_none_given_comes_last():
    skipped = [("c1", "zeta"), ("c2", "alpha"), ("c3", None), ("c4", "zeta"), ("c5", "alpha")]
    frame = outcomes(*(outcome(c, "lead_skipped", email=f"{c}@x.example", reason=r)
                       for c, r in skipped))  # fmt: skip
    page = render_html(report(), frame, rejects())
    items = re.findall(r"<li>([^<]*) <span class=\"muted\">\((\d+)\)</span></li>", page)
    assert items == [("alpha", "2"), ("zeta", "2"), ("(no reason)", "1")]
    given_empty = outcomes(*(outcome(c, "lead_skipped", reason=r)
                             for c, r in [("c1", "b"), ("c2", ""), ("c3", "a")]))  # fmt: skip
    assert OutcomeDigest.of(given_empty).reasons() == [("", 1), ("a", 1), ("b", 1)]


def test_reject_total_counts_rejects_not_listed():
    bad = rejects(*((f"f{i}", f"line {i}", "chat", "bad", "x", None) for i in range(3)))
    page = render_html(report(), outcomes(), bad, reject_total=LIST_LIMIT + 3)
    assert f'Rejects <span class="count">{LIST_LIMIT + 3:,}</span>' in page
    assert "3 more not shown." in page


def _no_outcome_report():
    """What an unchanged sync's run reports: nothing read, nothing written."""
    from datetime import UTC, datetime

    from etl.report.build import build_report
    from etl.vocab import RunCounters

    counters = RunCounters()
    counters.inputs.sell_records = dict.fromkeys(["leads", "contacts", "deals", "users"], 0)
    return build_report(
        run_id=9, mode="sync", status="succeeded",
        started_at=datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
        finished_at=datetime(2026, 11, 2, 9, 0, 1, tzinfo=UTC),
        counters=counters, outcomes={}, multi_match_emails=0, removed_reasons={},
    )  # fmt: skip


def _framed_digest():
    """An empty digest holding empty frames, as every digest did before it built none for no
    rows (and as a store's GROUP BYs of no rows leave it)."""
    digest = OutcomeDigest(
        by_day=pd.DataFrame(),
        by_department=pd.DataFrame(),
        by_agent=pd.DataFrame(),
        invalid=pd.DataFrame(columns=["chat_id", "chat_started_at", "reason"]),
        skipped=pd.DataFrame(columns=["chat_id", "email_normalized", "reason", "chat_started_at"]),
        removed=pd.DataFrame(columns=["chat_id", "chat_started_at", "reason"]),
    )
    groups = {
        name: pd.DataFrame(columns=[name, "outcome", "n"])
        for name in ("day", "department", "agent")
    }
    digest.add_counts(0, None, None, groups)
    digest.add_listed(outcomes())
    return digest


def test_a_run_without_outcomes_draws_its_page_without_frames_and_the_same(tmp_path):
    """No outcome and no reject: the page is drawn without pandas (``None`` for the digest's
    frames and the rejects), byte for byte the page drawn from empty frames; the files too."""
    from etl.report.files import write_report_files

    run = _no_outcome_report()
    light = render_html(run, OutcomeDigest(), None, reject_total=0)
    assert light == render_html(run, _framed_digest(), rejects(), reject_total=0)
    assert light == render_html(run, outcomes(), rejects())  # the rows at hand, none
    assert light == render_html(run, OutcomeDigest.from_store(
        {"rows": 0, "first": None, "last": None, "groups": {}}, iter(())), None, reject_total=0)  # fmt: skip
    for name, digest, rejected in (("light", OutcomeDigest(), None),
                                   ("framed", _framed_digest(), rejects())):  # fmt: skip
        write_report_files(run, digest, rejected, tmp_path / name, 0)
    for suffix in ("json", "html"):
        made = [(tmp_path / name / f"run-9.{suffix}").read_bytes() for name in ("light", "framed")]
        assert made[0] == made[1]
    assert (tmp_path / "light" / "run-9.html").read_text(encoding="utf-8") == light

    # a fresh interpreter draws it without loading pandas or numpy
    code = (
        "import json, sys\n"
        "from etl.report.digest import OutcomeDigest\n"
        "from etl.report.html import render_html\n"
        "page = render_html(json.loads(sys.argv[1]), OutcomeDigest(), None, reject_total=0)\n"
        "sys.stdout.write(page)\n"
        "sys.stderr.write(json.dumps(sorted({'pandas', 'numpy'} & set(sys.modules))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(run)], capture_output=True,
                          text=True, encoding="utf-8", cwd=REPO, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stderr) == []
    assert proc.stdout == light
