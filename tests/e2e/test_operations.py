"""Operations, as an operator meets them: the run lock, kill -9 at any point, concurrent runs,
the scheduler, logs and secrets. Real subprocesses on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from etl.errors import RunStopped
from etl.load.store import Store
from etl.run import SyncOptions, run_sync

from builders import chat, page, write_json
from integration.scenario import make_exports
from storecheck import dump, rows

CONFIG = """
[assignment]
default_pool = "p"
[assignment.pools.p]
members = [101, 102]
[run]
chunk_size = 2
commit_size = 2
"""


def chatsell(*args, env=None, cwd=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "etl", *args], capture_output=True, text=True, env={**os.environ, **(env or {})},
        cwd=cwd, timeout=timeout,
    )  # fmt: skip


def _write_exports(root: Path) -> tuple[Path, Path]:
    chats, sell = make_exports(root)
    more = [
        chat(f"n{i:02d}", f"new{i % 5}@shop.example", start=f"2026-11-04T{i:02d}:00:00Z")
        for i in range(12)
    ]
    write_json(chats / "chats_new.json", page(more))
    return chats, sell


def _config(commit_size: int) -> str:
    return CONFIG.replace("commit_size = 2", f"commit_size = {commit_size}")


@pytest.fixture
def setup(tmp_path):
    chats, sell = _write_exports(tmp_path)
    config = tmp_path / "chatsell.toml"
    config.write_text(CONFIG)
    return chats, sell, config


class Uninterrupted(NamedTuple):
    """An uninterrupted sync of the module's exports: what a killed or stopped one must equal."""

    chats: Path
    sell: Path
    config: Path
    report: dict
    store: dict[str, list[tuple]]  # storecheck.dump(..., drop_run_columns=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Callable[[int], Uninterrupted]:
    """Per commit size, one uninterrupted sync (a subprocess, into SQLite) of exports written once
    for the module. The cases that kill, stop or race a run only read these exports, so the run
    they must equal is the same for all of them and is made once, not once per case."""
    root = tmp_path_factory.mktemp("uninterrupted")
    chats, sell = _write_exports(root)
    made: dict[int, Uninterrupted] = {}

    def get(commit_size: int) -> Uninterrupted:
        if commit_size not in made:
            config = root / f"chatsell-{commit_size}.toml"
            config.write_text(_config(commit_size))
            url = f"sqlite:///{root / f'reference-{commit_size}.db'}"
            done = chatsell(*sync_args(url, chats, sell, config, "--json"))
            assert done.returncode == 0, done.stderr
            made[commit_size] = Uninterrupted(
                chats, sell, config, json.loads(done.stdout), dump(url, drop_run_columns=True)
            )
        return made[commit_size]

    return get


def sync_args(url, chats, sell, config, *extra):
    return [
        "--config",
        str(config),
        "--db",
        url,
        "-q",
        "sync",
        "--chats",
        str(chats),
        "--sell",
        str(sell),
        *extra,
    ]


def _hold_lock(url: str) -> subprocess.Popen:
    code = textwrap.dedent(
        f"""
        import sys, time
        from etl.load.store import Store
        store = Store({url!r}); store.prepare()
        with store.lock():
            print("locked", flush=True)
            time.sleep(120)
        """
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_second_run_exits_75_naming_the_holder(store_url, setup):
    chats, sell, config = setup
    holder = _hold_lock(store_url)
    try:
        blocked = chatsell(*sync_args(store_url, chats, sell, config))
        assert blocked.returncode == 75
        assert (
            f"pid {holder.pid}" in blocked.stderr
            and "host" in blocked.stderr
            and "started" in blocked.stderr
        )
        assert rows(store_url, "SELECT count(*) FROM runs") == [(0,)]
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def test_a_killed_holder_leaves_no_stale_lock(store_url, setup):
    chats, sell, config = setup
    holder = _hold_lock(store_url)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    done = chatsell(*sync_args(store_url, chats, sell, config))
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_two_concurrent_syncs_never_overlap(store_url, uninterrupted):
    """The overlap made certain: while this test holds the store lock, two syncs started together
    both meet it (exit 75, naming this process) and write nothing, not even a run row. Released,
    a sync runs and leaves the store exactly as an uninterrupted sync does."""
    reference = uninterrupted(2)
    chats, sell, config = reference.chats, reference.sell, reference.config
    args = [sys.executable, "-m", "etl", *sync_args(store_url, chats, sell, config)]
    store = Store(store_url)
    try:
        with store.lock() as holder:
            assert holder["pid"] == os.getpid()
            before = dump(store_url, include_history=True)
            procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(2)]  # fmt: skip
            ended = [p.communicate(timeout=120) for p in procs]
            assert [p.returncode for p in procs] == [75, 75], [err[-500:] for _, err in ended]
            for _out, err in ended:
                assert f"pid {os.getpid()}" in err, err[-500:]
            assert dump(store_url, include_history=True) == before
            assert rows(store_url, "SELECT count(*) FROM runs") == [(0,)]
    finally:
        store.dispose()
    done = chatsell(*sync_args(store_url, chats, sell, config))
    assert done.returncode == 0, done.stderr
    assert rows(store_url, "SELECT count(*) FROM runs") == [(1,)]
    assert dump(store_url, drop_run_columns=True) == reference.store


# (commit_size, point): with commit_size = chunk_size every chunk commits on its own; with 6,
# three chunks share a transaction and a kill inside one loses all three (redone on the rerun)
KILL_POINTS = [
    (2, p)
    for p in (
        "before_commit:1",
        "after_commit:1",
        "before_commit:2",
        "after_commit:3",
        "before_commit:5",
        "after_commit:6",
        "before_commit:9",
        "after_commit:10",
    )
]
KILL_POINTS += [(6, p) for p in ("before_commit:3", "after_commit:4", "before_commit:5", "after_commit:6")]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("commit_size", "point"), KILL_POINTS)
def test_kill_9_at_any_point_then_rerun_equals_never_killed(
    store_url, uninterrupted, tmp_path, commit_size, point
):
    reference = uninterrupted(commit_size)
    chats, sell, config = reference.chats, reference.sell, reference.config
    scratch = tmp_path / "scratch"  # TMPDIR: what the killed run leaves, the rerun removes
    scratch.mkdir()
    env = {"TMPDIR": str(scratch)}
    killed = chatsell(
        *sync_args(store_url, chats, sell, config), env={**env, "CHATSELL_KILL_AT": point}
    )
    assert killed.returncode == -signal.SIGKILL, (point, killed.returncode, killed.stderr[-500:])
    rerun = chatsell(*sync_args(store_url, chats, sell, config, "--json"), env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert list(scratch.iterdir()) == []
    report = json.loads(rerun.stdout)
    for key in (
        "inputs",
        "outcomes",
        "accounting",
        "writes",
        "assignments",
        "multi_match_emails",
        "rejects",
    ):
        assert report[key] == reference.report[key], (point, key)
    assert dump(store_url, drop_run_columns=True) == reference.store
    again = chatsell(*sync_args(store_url, chats, sell, config, "--json"))
    assert json.loads(again.stdout)["accounting"]["chats_read"] == 0


@pytest.mark.parametrize("commit_size", [2, 100])
def test_stop_request_between_chunks_then_resume(store_url, uninterrupted, commit_size):
    """A stop request keeps the chunks applied before it, even in a transaction not yet full."""
    reference = uninterrupted(commit_size)
    chats, sell, config = reference.chats, reference.sell, reference.config
    from etl.config import load_settings

    settings = load_settings(config, database_url=store_url)
    asked = {"n": 0}

    def stop_after_two_chunks() -> bool:
        asked["n"] += 1
        return asked["n"] > 2

    with pytest.raises(RunStopped):
        run_sync(settings, SyncOptions(chats=chats, sell=sell), should_stop=stop_after_two_chunks)
    assert rows(store_url, "SELECT status FROM runs") == [("running",)]
    planned = "SELECT count(*) FROM run_outcomes WHERE outcome <> 'rejected'"
    assert rows(store_url, planned) == [(4,)]  # the two chunks of two chats before the stop
    resumed = run_sync(settings, SyncOptions(chats=chats, sell=sell)).report
    assert resumed["run_id"] == 1 and resumed["outcomes"] == reference.report["outcomes"]
    assert dump(store_url, drop_run_columns=True) == reference.store


def test_schedule_once_runs_sync_and_report(setup, tmp_path):
    chats, sell, config = setup
    config.write_text(
        CONFIG
        + f'\n[schedule]\ntimezone = "Asia/Tokyo"\n[schedule.sync]\ncron = "*/15 * * * *"\nchats = "{chats}"\nsell = "{sell}"\n'
        + f'[schedule.report]\ncron = "0 6 * * *"\nout = "{tmp_path / "reports"}"\n'
    )
    url = f"sqlite:///{tmp_path / 'sched.db'}"
    done = chatsell(
        "--config", str(config), "--db", url, "--log-format", "json", "schedule", "--once"
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["run-1.html", "run-1.json"]
    assert (
        json.loads((tmp_path / "reports" / "run-1.json").read_text())["accounting"]["balanced"]
        is True
    )
    events = [json.loads(line)["event"] for line in done.stderr.splitlines()]
    assert "sync_done" in events and "report_done" in events


def test_schedule_config_errors_exit_2(setup, tmp_path):
    chats, sell, config = setup
    config.write_text(
        f'[schedule.sync]\ncron = "every monday"\nchats = "{chats}"\nsell = "{sell}"\n'
    )
    bad = chatsell("--config", str(config), "schedule", "--once", cwd=tmp_path)
    assert bad.returncode == 2 and "schedule.sync" in bad.stderr
    config.write_text("")
    none = chatsell("--config", str(config), "schedule", "--once", cwd=tmp_path)
    assert none.returncode == 2 and "no jobs configured" in none.stderr


def test_password_never_appears(pg_url, setup, tmp_path):
    chats, sell, config = setup
    secret = "s3cr3t-Pa55"
    url = pg_url.replace(
        "postgres@", f"postgres:{secret}@"
    )  # trust auth accepts it; it must still never show
    outputs = []
    for args in (
        ["db", "upgrade"],
        ["db", "current"],
        [
            "-v",
            "--log-format",
            "json",
            "sync",
            "--chats",
            str(chats),
            "--sell",
            str(sell),
            "--json",
        ],
        ["-vv", "sync", "--chats", str(chats), "--sell", str(sell), "--full"],
        ["runs"],
        ["report", "latest", "--format", "json"],
        ["report", "latest", "--details", "--format", "csv"],
        ["sync", "--chats", str(chats), "--sell", str(sell), "--help"],
    ):
        done = chatsell("--config", str(config), "--db", url, *args, cwd=tmp_path)
        assert done.returncode == 0, (args, done.stderr[-300:])
        outputs.append(done.stdout + done.stderr)
    wrong_port = url.replace(":5432/", ":1/")
    failed = chatsell(
        "--config",
        str(config),
        "--db",
        wrong_port,
        "-v",
        "sync",
        "--chats",
        str(chats),
        "--sell",
        str(sell),
    )
    assert failed.returncode == 1
    outputs.append(failed.stdout + failed.stderr)
    env_run = chatsell(
        "--config", str(config), "db", "current", env={"CHATSELL_DATABASE_URL": url}, cwd=tmp_path
    )
    outputs.append(env_run.stdout + env_run.stderr)
    assert all(secret not in text for text in outputs)
    assert any("***" in text for text in outputs)
    assert rows(pg_url, "SELECT count(*) FROM runs")[0][0] >= 2


def test_transcripts_never_in_logs(tmp_path, setup):
    chats, sell, config = setup
    write_json(
        chats / "chats_secret.json",
        page([chat("sx", "a@example.com", messages=[("Ann", "my card is 4111-SECRET")])]),
    )
    done = chatsell("--config", str(config), "--db", f"sqlite:///{tmp_path / 'l.db'}", "-vv", "--log-format", "json",
                    "sync", "--chats", str(chats), "--sell", str(sell))  # fmt: skip
    assert done.returncode == 0
    assert "4111-SECRET" not in done.stderr + done.stdout


def test_scheduler_stops_cleanly_on_sigterm(setup, tmp_path):
    chats, sell, config = setup
    config.write_text(
        CONFIG + f'\n[schedule.sync]\ncron = "0 3 * * *"\nchats = "{chats}"\nsell = "{sell}"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "etl", "--config", str(config), "--db", f"sqlite:///{tmp_path / 's.db'}",
         "--log-format", "json", "schedule"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    first = json.loads(proc.stderr.readline())
    assert first["event"] == "job_scheduled" and first["job"] == "sync"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "scheduler_stopping" in err
