"""Scratch directories of killed runs are removed by the next run; nobody else's are."""

from __future__ import annotations

import os
import subprocess
import sys

from etl.stage import scratch as stage_module
from etl.stage.chats import ChatStage
from etl.stage.scratch import remove_orphans
from etl.stage.sell import SellStage


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_only_this_hosts_dead_runs_scratch_is_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(stage_module.tempfile, "tempdir", None)  # read TMPDIR again
    host = stage_module._owner().split(".")[0]
    dead = _dead_pid()
    killed = tmp_path / f"chatsell-stage-{host}.{dead}-abc123"
    killed_sell = tmp_path / f"chatsell-sell-{host}.{dead}-def456"
    for path in (killed, killed_sell):
        path.mkdir()
        (path / "stage.sqlite").write_bytes(b"x" * 1024)
    elsewhere = tmp_path / f"chatsell-stage-0badc0de.{dead}-ghi789"  # another host's
    not_ours = tmp_path / f"notchatsell-stage-{host}.{dead}-x"
    old_style = tmp_path / "chatsell-stage-k2j4_9a"  # before names held an owner: left
    for path in (elsewhere, not_ours, old_style):
        path.mkdir()
    with ChatStage() as live, SellStage() as live_sell:
        assert live.path.parent.name.startswith(f"chatsell-stage-{host}.{os.getpid()}-")
        removed = remove_orphans()
        assert sorted(removed) == sorted([killed, killed_sell])
        assert live.path.parent.is_dir() and live_sell.directory.is_dir()  # running: kept
    assert not killed.exists() and not killed_sell.exists()
    assert elsewhere.is_dir() and not_ours.is_dir() and old_style.is_dir()
