"""An unchanged sync (the same exports again) records its run without the stages
(``etl.run.unchanged``), and leaves what the stages would: the same report, the same counters,
the same configuration errors. Where its outcome is not certain, the stages run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from etl.errors import ConfigError
from etl.load.store import Store
from etl.load.store.runs import CONFIG_CHECKED
from etl.run import stages

from builders import chat
from integration.scenario import make_exports, settings_for, sync

REPO = Path(__file__).resolve().parents[2]
TIMES = ("started_at", "finished_at")


def _stages_run(monkeypatch) -> list[int]:
    """Count the runs that go through the stages."""
    calls: list[int] = []
    real = stages.execute

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(stages, "execute", counted)
    return calls


def _row(url: str, run_id: int) -> dict:
    with Store(url) as store:
        row = store.run_row(run_id)
    return {"status": row["status"], "counters": json.loads(row["counters"]),
            "options": json.loads(row["options"]), "input_key": row["input_key"]}  # fmt: skip


def _forget_check(url: str) -> None:
    with Store(url) as store, store.transaction() as conn:
        conn.execute(text("DELETE FROM store_settings WHERE name = :n"), {"n": CONFIG_CHECKED})


def _without_times(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in (*TIMES, "run_id")}


def test_an_unchanged_sync_leaves_what_the_stages_leave(store_url, tmp_path, monkeypatch):
    chats, sell = make_exports(tmp_path)
    calls = _stages_run(monkeypatch)
    first = sync(store_url, chats, sell, report_dir=tmp_path / "reports")
    assert calls == [1]
    quick = sync(store_url, chats, sell, report_dir=tmp_path / "reports")
    assert calls == [1], "an unchanged sync ran the stages"
    _forget_check(store_url)  # the same run again, through the stages
    staged = sync(store_url, chats, sell, report_dir=tmp_path / "reports")
    assert calls == [1, 1]
    assert first.report["accounting"]["chats_read"] > 0
    assert _without_times(quick.report) == _without_times(staged.report)
    assert quick.report["accounting"] == {"chats_read": 0, "outcomes_total": 0, "balanced": True}
    assert _row(store_url, quick.run_id) == _row(store_url, staged.run_id)
    assert quick.leads.empty and quick.warnings == []
    # the report files: the same but for the run's id and times
    pages = {}
    for result in (quick, staged):
        page = (tmp_path / "reports" / f"run-{result.run_id}.html").read_text(encoding="utf-8")
        saved = json.loads((tmp_path / "reports" / f"run-{result.run_id}.json").read_text())
        assert saved == result.report
        page = re.sub(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", "T", page)
        page = re.sub(r"\d+m \d{2}s", "D", page)  # the duration
        pages[result.run_id] = re.sub(rf"(run id</th><td>|run ){result.run_id}\b", r"\1N", page)
    assert len(set(pages.values())) == 1


def test_a_configuration_broken_since_fails_as_before(store_url, tmp_path, monkeypatch):
    chats, sell = make_exports(tmp_path)
    sync(store_url, chats, sell)
    broken = settings_for(store_url).model_dump()
    broken["assignment"] = {"default_owner": "nobody@example.com"}
    settings = type(settings_for(store_url)).model_validate(broken)
    with pytest.raises(ConfigError, match="unknown Sell user"):
        sync(store_url, chats, sell, settings=settings)
    broken["sell"]["integration_user"] = "ghost@example.com"
    broken["assignment"] = {}
    settings = type(settings_for(store_url)).model_validate(broken)
    with pytest.raises(ConfigError, match="integration_user"):
        sync(store_url, chats, sell, settings=settings)
    calls = _stages_run(monkeypatch)
    sync(store_url, chats, sell)  # the configuration that passed: unchanged again
    assert calls == []


def test_what_is_left_to_do_goes_through_the_stages(store_url, tmp_path, monkeypatch):
    chats, sell = make_exports(tmp_path)
    sync(store_url, chats, sell)
    calls = _stages_run(monkeypatch)
    with Store(store_url) as store, store.transaction() as conn:  # a failed run's rematch
        conn.execute(text("INSERT INTO rematch_queue (email_normalized, queued_run_id) "
                          "VALUES ('a@example.com', 1)"))  # fmt: skip
    sync(store_url, chats, sell)
    assert calls == [1]
    sync(store_url, chats, sell, full=True)  # --full reads every file
    assert calls == [1, 1]
    sync(store_url, chats, sell, dry_run=True)
    assert calls == [1, 1, 1]
    (chats / "chats_more.jsonl").touch()  # a new mark, the same content: nothing to read
    sync(store_url, chats, sell)
    assert calls == [1, 1, 1]
    with (chats / "chats_more.jsonl").open("a", encoding="utf-8") as more:
        more.write(json.dumps(chat("c9", "a@example.com", start="2026-11-04T09:00:00Z")) + "\n")
    assert sync(store_url, chats, sell).report["accounting"]["chats_read"] > 0  # the file, re-read
    assert calls == [1, 1, 1, 1]
    sync(store_url, chats, sell)
    assert calls == [1, 1, 1, 1]


@pytest.mark.parametrize("report_dir", [False, True])
def test_the_unchanged_cli_sync_imports_no_stage(store_url, tmp_path, report_dir):
    """As a subprocess (with the report's files or not): the planner, the sinks, the readers'
    stages and the frame libraries stay unimported."""
    chats, sell = make_exports(tmp_path)
    argv = ["--db", store_url, "--log-format", "json", "-q", "sync", "--chats", str(chats),
            "--sell", str(sell), "--json"]  # fmt: skip
    if report_dir:
        argv += ["--report-dir", str(tmp_path / "reports")]
    code = f"""
import json, runpy, sys
sys.argv = ["chatsell", *{argv!r}]
try:
    runpy.run_module("etl", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    assert not exc.code, exc.code
heavy = ("etl.run.stages", "etl.load.sinks", "etl.transform.plan", "etl.stage.chats",
         "pandas", "numpy")
print(json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)
"""
    loaded = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=REPO, timeout=120)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        loaded.append(json.loads(proc.stderr.strip().splitlines()[-1]))
        assert json.loads(proc.stdout)["status"] == "succeeded"
    assert loaded[0] and loaded[1] == []
    if report_dir:  # the second run's page and JSON, drawn without frames
        assert len(list((tmp_path / "reports").glob("run-*.html"))) == 2
