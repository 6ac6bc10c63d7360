"""The command line end to end: CliRunner for the options, a real subprocess for the entry point."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from etl.cli import cli
from etl.config import load_settings
from etl.load.store import Store

from builders import chat, lead, page, sell_dir, write_json
from integration.scenario import make_exports

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def exports(tmp_path):
    return make_exports(tmp_path)


def invoke(runner, *args, env=None):
    return runner.invoke(cli, list(args), env=env, catch_exceptions=False)


def test_sync_json_is_the_last_thing_on_stdout(runner, tmp_path, exports):
    chats, sell = exports
    db = f"sqlite:///{tmp_path / 'c.db'}"
    result = invoke(
        runner, "--db", db, "sync", "--chats", str(chats), "--sell", str(sell), "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "succeeded" and report["accounting"]["balanced"] is True


def test_report_formats_and_runs(runner, tmp_path, exports):
    chats, sell = exports
    db = f"sqlite:///{tmp_path / 'c.db'}"
    invoke(runner, "--db", db, "sync", "--chats", str(chats), "--sell", str(sell))
    as_json = json.loads(invoke(runner, "--db", db, "report", "latest", "--format", "json").stdout)
    assert as_json["run_id"] == 1 and as_json["outcomes"]["matched"] == 4
    text = invoke(runner, "--db", db, "report", "1").stdout
    assert "balanced" in text and "matched" in text
    summary = list(
        csv.reader(io.StringIO(invoke(runner, "--db", db, "report", "--format", "csv").stdout))
    )
    assert summary[0] == ["section", "key", "value"] and ["outcomes", "matched", "4"] in summary
    details = list(
        csv.DictReader(
            io.StringIO(
                invoke(
                    runner, "--db", db, "report", "latest", "--details", "--format", "csv"
                ).stdout
            )
        )
    )
    assert len(details) == 9
    assert list(details[0]) == ["chat_id", "outcome", "email_normalized", "records", "reason"]
    assert {d["chat_id"]: d["records"] for d in details}["c2"] == "contact:10;deal:30"
    out = tmp_path / "r.json"
    invoke(runner, "--db", db, "report", "latest", "--format", "json", "--out", str(out))
    assert json.loads(out.read_text())["run_id"] == 1
    listing = invoke(runner, "--db", db, "runs", "--limit", "5").stdout.splitlines()
    assert listing[0].split()[:3] == ["run", "mode", "status"] and listing[1].split()[:3] == [
        "1",
        "sync",
        "succeeded",
    ]


def test_fail_on_rejects_exits_3(runner, tmp_path, exports):
    chats, sell = exports
    db = f"sqlite:///{tmp_path / 'c.db'}"
    result = invoke(
        runner, "--db", db, "sync", "--chats", str(chats), "--sell", str(sell), "--fail-on-rejects"
    )
    assert result.exit_code == 3


def test_usage_and_config_errors_exit_2(runner, tmp_path, exports):
    chats, sell = exports
    db = f"sqlite:///{tmp_path / 'c.db'}"
    missing = invoke(
        runner, "--db", db, "sync", "--chats", str(tmp_path / "nope"), "--sell", str(sell)
    )
    assert missing.exit_code == 2 and "--chats: no such file or directory" in missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\nchunk_size = 0\n")
    result = invoke(
        runner, "--config", str(bad), "--db", db, "sync", "--chats", str(chats), "--sell", str(sell)
    )
    assert result.exit_code == 2 and "[run.chunk_size]" in result.stderr
    assert invoke(runner, "--db", db, "report", "42").exit_code == 2


def _log_events(stderr: str) -> list[dict]:
    """The JSON log lines of a run (``--log-format json``), in order; other lines are messages."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def _table_rows(url: str) -> dict[str, int]:
    """Rows per table of the store, every table the database holds (whatever the schema module)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                name: conn.execute(
                    sa.select(sa.func.count()).select_from(sa.table(name))
                ).scalar_one()
                for name in sa.inspect(conn).get_table_names()
            }
    finally:
        engine.dispose()


def test_a_configuration_error_ends_the_run_before_any_chat_is_read(runner, tmp_path, exports):
    """The Sell users are read first: a pool or integration user that is no Sell user ends
    the run (exit 2) before the chat files are staged, and nothing is written.

    Observed from outside: the run's log stops where a good run's log, on the same exports, is
    still before its start (the good run then logs its staged chat files), and every table of
    the store is empty but the schema's version."""
    chats, sell = exports
    config = tmp_path / "chatsell.toml"
    config.write_text('[sell]\nintegration_user = "nobody@example.invalid"\n')
    db = f"sqlite:///{tmp_path / 'c.db'}"
    args = ["--log-format", "json", "--db", db, "sync", "--chats", str(chats), "--sell", str(sell)]
    result = runner.invoke(cli, ["--config", str(config), *args])
    assert result.exit_code == 2, result.output
    assert "integration_user" in result.stderr and "no Sell user" in result.stderr
    failed = [e["event"] for e in _log_events(result.stderr)]

    tables = _table_rows(db)
    assert {"runs", "run_outcomes", "chats", "activities", "leads", "source_files"} <= set(tables)
    assert {name: n for name, n in tables.items() if n and name != "alembic_version"} == {}
    assert invoke(runner, "--db", db, "report", "latest").exit_code == 2  # no run to report

    good_db = f"sqlite:///{tmp_path / 'good.db'}"
    good = runner.invoke(cli, [*args[:2], "--db", good_db, *args[4:]])
    assert good.exit_code == 0, good.output
    events = _log_events(good.stderr)
    names = [e["event"] for e in events]
    # a good run stages its chat files once, after it has started (its configuration checked)
    staged = [(i, e["chat_files"]) for i, e in enumerate(events) if e["event"] == "chats_staged"]
    assert [files for _, files in staged] == [3], names
    started = names.index("run_started")
    assert staged[0][0] > started
    # the failed run: the same steps as the good one before its start, and not one more
    assert failed and failed == names[: len(failed)], (failed, names)
    assert "chats_staged" not in failed and "run_started" not in failed
    assert _table_rows(good_db)["source_files"] > 0


def test_unreachable_store_exits_1_and_masks_password(runner, tmp_path, exports):
    chats, sell = exports
    db = "postgresql+psycopg://chatsell:hunter2@127.0.0.1:1/nowhere"
    result = invoke(runner, "--db", db, "sync", "--chats", str(chats), "--sell", str(sell))
    assert result.exit_code == 1
    assert "cannot reach the store" in result.stderr and "***" in result.stderr
    assert "hunter2" not in result.output + result.stderr


def test_db_upgrade_and_current(runner, tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    assert "needs `chatsell db upgrade`" in invoke(runner, "--db", db, "db", "current").stdout
    assert f"at schema {Store(db).head()}" in invoke(runner, "--db", db, "db", "upgrade").stdout
    assert "up to date" in invoke(runner, "--db", db, "db", "current").stdout


def test_postgres_needs_db_upgrade_first(runner, pg_url, exports):
    chats, sell = exports
    result = invoke(runner, "--db", pg_url, "sync", "--chats", str(chats), "--sell", str(sell))
    assert result.exit_code == 2 and "chatsell db upgrade" in result.stderr
    assert invoke(runner, "--db", pg_url, "db", "upgrade").exit_code == 0
    assert (
        invoke(runner, "--db", pg_url, "sync", "--chats", str(chats), "--sell", str(sell)).exit_code
        == 0
    )


def test_help_lists_every_command(runner):
    text = invoke(runner, "--help").stdout
    for command in ("sync", "report", "runs", "db"):
        assert command in text


def test_real_subprocess_json_logs(tmp_path, exports):
    chats, sell = exports
    env = {**os.environ, "CHATSELL_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}
    proc = subprocess.run(
        [sys.executable, "-m", "etl", "--log-format", "json", "sync", "--chats", str(chats), "--sell", str(sell), "--json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["accounting"]["balanced"] is True
    events = [json.loads(line) for line in proc.stderr.splitlines()]
    assert {"run_started", "run_finished"} <= {e["event"] for e in events}
    finished = next(e for e in events if e["event"] == "run_finished")
    assert finished["run_id"] == 1 and finished["chats_read"] == 9


def test_report_html_and_compare(runner, tmp_path, exports):
    chats, sell = exports
    db = f"sqlite:///{tmp_path / 'c.db'}"
    invoke(runner, "--db", db, "sync", "--chats", str(chats), "--sell", str(sell))
    invoke(runner, "--db", db, "sync", "--chats", str(chats), "--sell", str(sell), "--full")
    page = tmp_path / "out" / "r.html"
    assert (
        invoke(
            runner, "--db", db, "report", "latest", "--format", "html", "--out", str(page)
        ).exit_code
        == 0
    )
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and 'data-chart="outcomes-over-time"' in html
    text = invoke(runner, "--db", db, "report", "2", "--compare", "1").stdout
    assert "activities_inserted" in text and "-9" in text
    as_json = json.loads(
        invoke(runner, "--db", db, "report", "2", "--compare", "1", "--format", "json").stdout
    )
    assert as_json["comparison"]["writes"]["activities_inserted"] == {
        "current": 0,
        "previous": 9,
        "delta": -9,
    }
    compared = invoke(
        runner, "--db", db, "report", "2", "--compare", "1", "--format", "html"
    ).stdout
    assert "run 1" in compared or "Run 1" in compared


def test_report_before_any_run_exits_2(runner, tmp_path):
    result = invoke(runner, "--db", f"sqlite:///{tmp_path / 'c.db'}", "report")
    assert result.exit_code == 2 and "no finished run yet" in result.stderr


def test_sync_report_dir_writes_json_and_html(runner, tmp_path, exports):
    chats, sell = exports
    db = f"sqlite:///{tmp_path / 'c.db'}"
    invoke(
        runner,
        "--db",
        db,
        "sync",
        "--chats",
        str(chats),
        "--sell",
        str(sell),
        "--dry-run",
        "--report-dir",
        str(tmp_path / "rep"),
    )
    invoke(
        runner,
        "--db",
        db,
        "sync",
        "--chats",
        str(chats),
        "--sell",
        str(sell),
        "--report-dir",
        str(tmp_path / "rep"),
    )
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == [
        "dry-run.html",
        "dry-run.json",
        "run-1.html",
        "run-1.json",
    ]
    assert "chats_more.jsonl" in (tmp_path / "rep" / "run-1.html").read_text()


def test_csv_cells_are_never_formulas(runner, tmp_path):
    hostile = [
        chat("=HYPERLINK(\"http://evil.example\",\"x\")", "=HYPERLINK(\"http://evil.example\")@x.example",
             name="<script>alert(1)</script>", start="2026-11-02T09:00:00Z"),
        chat("+SUM(A1)", "@foo@example.com", start="2026-11-02T10:00:00Z"),
        chat("-2+3", "x@example.com", start="2026-11-02T11:00:00Z"),
    ]  # fmt: skip
    write_json(tmp_path / "chat" / "chats.json", page(hostile))
    sell = sell_dir(tmp_path / "sell", leads=[lead(1, "=cmd@example.com")])
    db = f"sqlite:///{tmp_path / 'c.db'}"
    invoke(runner, "--db", db, "sync", "--chats", str(tmp_path / "chat"), "--sell", str(sell))
    text = invoke(runner, "--db", db, "report", "latest", "--details", "--format", "csv").stdout
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")]
    assert (
        '\'=HYPERLINK("http://evil.example","x")' in cells
        and "'+SUM(A1)" in cells
        and "'-2+3" in cells
    )


def test_feed_cli_warns_about_the_cap_and_rejects_unknown_records(runner, tmp_path, exports):
    chats, sell = exports
    db = f"sqlite:///{tmp_path / 'c.db'}"
    write_json(
        chats / "chats_more_c2.json",
        page([chat(f"x{i}", "b@example.com", start=f"2026-11-1{i}T00:00:00Z") for i in range(3)]),
    )
    invoke(runner, "--db", db, "sync", "--chats", str(chats), "--sell", str(sell))
    shown = invoke(runner, "--db", db, "feed", "contact:10", "--limit", "2")
    assert shown.exit_code == 0
    assert "showing the 2 newest of 4 items for contact:10 (capped by --limit 2)" in shown.stderr
    assert shown.stdout.count(" chat  contact:10") == 2
    as_json = json.loads(
        invoke(runner, "--db", db, "feed", "b@example.com", "--type", "chat", "--json").stdout
    )
    assert len(as_json) == 4 and {item["type"] for item in as_json} == {"chat"}
    unknown = invoke(runner, "--db", db, "feed", "lead:424242")
    assert unknown.exit_code == 2 and "no record lead:424242" in unknown.stderr
    bad = invoke(runner, "--db", db, "feed", "ticket-9")
    assert bad.exit_code == 2


def test_backfill_engine_options_are_checked(runner, tmp_path, exports):
    chats, sell = exports
    db = f"sqlite:///{tmp_path / 'e.db'}"
    base = ["--db", db, "backfill", "--chats", str(chats), "--sell", str(sell),
            "--since", "2026-11-01", "--until", "2026-11-05"]  # fmt: skip
    local_with_workers = invoke(runner, *base, "--workers", "2")
    assert local_with_workers.exit_code == 2 and "--engine dask" in local_with_workers.stderr
    both = invoke(runner, *base, "--engine", "dask", "--workers", "2", "--scheduler", "tcp://x:1")
    assert both.exit_code == 2 and "not both" in both.stderr
    on_sqlite = invoke(runner, *base, "--engine", "dask", "--workers", "1")
    assert on_sqlite.exit_code == 2 and "PostgreSQL" in on_sqlite.stderr
    assert not (tmp_path / "e.db").exists() or Store(db).recent_runs(5) == []


def test_report_never_holds_every_outcome_row(runner, tmp_path, exports, monkeypatch):
    """A million-chat run's summary must not load its million outcome rows; its page draws from
    counts (the same page the sync wrote); ``--details`` writes the rows as it reads them, the
    same rows and cells as the run's outcome rows taken whole."""
    from etl.readside import write_details
    from etl.report.render import DETAIL_COLUMNS, to_csv

    chats, sell = exports
    db = f"sqlite:///{tmp_path / 'c.db'}"
    rep = tmp_path / "rep"
    invoke(runner, "--db", db, "sync", "--chats", str(chats), "--sell", str(sell), "--report-dir", str(rep))  # fmt: skip
    store = Store(db)
    whole = store.outcome_rows(1).reindex(columns=list(DETAIL_COLUMNS))
    whole = whole.astype(object).where(whole.notna(), None)
    store.dispose()
    monkeypatch.setattr(Store, "outcome_rows", lambda *_a: pytest.fail("outcome rows read"))
    for fmt in ("text", "json", "csv"):
        assert invoke(runner, "--db", db, "report", "latest", "--format", fmt).exit_code == 0
    page = tmp_path / "r.html"
    invoke(runner, "--db", db, "report", "1", "--format", "html", "--out", str(page))
    assert page.read_text(encoding="utf-8") == (rep / "run-1.html").read_text(encoding="utf-8")

    details = invoke(runner, "--db", db, "report", "1", "--details", "--format", "csv").stdout
    assert details == to_csv(DETAIL_COLUMNS, whole.itertuples(index=False, name=None))
    assert len(details.splitlines()) == 1 + 9
    as_json = invoke(runner, "--db", db, "report", "1", "--details", "--format", "json").stdout
    assert json.loads(as_json) == whole.to_dict("records")
    out = tmp_path / "d" / "details.json"
    invoke(runner, "--db", db, "report", "1", "--details", "--format", "json", "--out", str(out))
    assert out.read_text(encoding="utf-8") == as_json
    # read two rows at a time, the output is the same
    for fmt, expected in (("csv", details), ("json", as_json)):
        stream = io.StringIO()
        settings = load_settings(None, database_url=db)
        assert write_details(settings, 1, fmt, stream, size=2) == 9
        assert stream.getvalue() == expected


def test_details_into_a_pipe_the_reader_closes_end_quietly(runner, tmp_path, exports):
    """``chatsell report --details | head``: the reader stops after a line; chatsell stops
    writing, with no failure message and no traceback (as a Unix tool does)."""
    import sqlite3

    chats, sell = exports
    db_path = tmp_path / "c.db"
    invoke(
        runner, "--db", f"sqlite:///{db_path}", "sync", "--chats", str(chats), "--sell", str(sell)
    )
    with sqlite3.connect(db_path) as db:  # far more rows than a pipe holds (64 KB)
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000) "
            "INSERT INTO run_outcomes (run_id, chat_id, outcome, match_count, reason) "
            "SELECT 1, 'extra-' || i, 'no_email', 0, 'no email given' FROM n"
        )
    env = {**os.environ, "CHATSELL_DATABASE_URL": f"sqlite:///{db_path}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "etl", "report", "1", "--details", "--format", "csv"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.stdout.readline().decode() == "chat_id,outcome,email_normalized,records,reason\n"
    proc.stdout.close()  # as head does
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert b"failed" not in err and b"Traceback" not in err and b"Exception" not in err, err
