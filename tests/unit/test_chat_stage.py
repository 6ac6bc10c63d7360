"""The chat stage: parsing workers stage their files into shards that merge as one process's
adds would, in file order, so the run decides on the same chats whichever way they were read."""

import pandas as pd
import pytest

import etl.stage.chats as stage_module
from etl.extract.files import discover
from etl.stage.chats import ChatStage, fill

from builders import chat, page, write_json, write_ndjson


def _exports(root):
    """Files whose chats meet again across files: newer, older and the same version."""
    write_json(
        root / "chats_1.json",
        page([chat(f"a{i}", f"v{i}@example.com") for i in range(30)] + [chat("same")]),
    )
    # a newer version of a1, an older one of a2 (its update time is before a2's end), and
    # "same" again unchanged: the earlier file's copy (its source and position) stays
    write_json(
        root / "chats_2.json",
        page(
            [
                chat("a1", "new@example.com", updated="2026-11-03T00:00:00Z"),
                chat("a2", "old@example.com", updated="2026-11-02T09:05:00Z"),
                chat("same"),
            ]
        ),
    )
    write_ndjson(
        root / "chats_3.jsonl",
        [chat(f"b{i}", start=f"2026-11-01T0{i}:00:00Z") for i in range(5)]
        + [chat("b1", start="2026-11-01T01:00:00Z")],
        extra_lines=['{"id": "cut'],
    )
    write_json(root / "agents.json", [{"id": 7, "display_name": "Seven", "email": "s@x.example"}])
    write_json(root / "chats_4.json", page([]))


def _staged(root, workers):
    stage = ChatStage(root / "scratch")
    parts = list(fill(stage, discover(root / "in"), 4, workers))
    chats = pd.concat(list(stage.chunks(7)), ignore_index=True)
    leftover = sorted(p.name for p in stage.path.parent.iterdir())
    stage.close()
    return chats, parts, leftover


@pytest.fixture
def exports(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "scratch").mkdir()
    _exports(tmp_path / "in")
    return tmp_path


def test_workers_stage_what_one_process_stages(exports):
    serial, serial_parts, _ = _staged(exports, 1)
    parallel, parallel_parts, leftover = _staged(exports, 2)
    pd.testing.assert_frame_equal(serial, parallel)
    assert leftover == ["stage.sqlite"]  # every shard merged and removed
    assert sum(p.chats for p in parallel_parts) == sum(p.chats for p in serial_parts) == 40
    assert [r for p in parallel_parts for r in p.rejects] == [
        r for p in serial_parts for r in p.rejects
    ]
    rejects = [(r.source_file, r.position) for p in parallel_parts for r in p.rejects]
    assert [(name.rsplit("/", 1)[-1], where) for name, where in rejects] == [
        ("chats_3.jsonl", "line 7")
    ]
    agents = pd.concat([a for p in parallel_parts for a in p.agents], ignore_index=True)
    assert agents["agent_id"].tolist() == ["7"]


def test_the_newest_version_wins_and_a_tie_keeps_the_first_file(exports):
    chats, _, _ = _staged(exports, 2)
    chats["source_file"] = chats["source_file"].str.rsplit("/", n=1).str[-1]
    by_id = chats.set_index("chat_id")
    assert len(chats) == 36 and by_id.index.is_unique
    assert by_id.at["a1", "visitor_email"] == "new@example.com"
    assert by_id.at["a1", "source_file"] == "chats_2.json"
    assert by_id.at["a2", "visitor_email"] == "v2@example.com"
    assert (by_id.at["same", "source_file"], by_id.at["same", "position"]) == (
        "chats_1.json",
        "record 31",
    )
    assert by_id.at["b1", "position"] == "line 2"  # the same chat again in its own file
    assert chats["chat_id"].tolist()[:5] == [f"b{i}" for i in range(5)]  # start order


def test_workers_parse_every_file_however_large(exports, monkeypatch):
    """A file of any size goes to a worker: it streams the file into its shard on disk, in
    batches of at most SHARD_BATCH chats, so its memory does not grow with the file. (Files over
    64 MB once streamed through the run's own process: a 1M-chat export of 16 NDJSON files of
    80 MB was parsed on one CPU.)"""
    import json
    import os

    big = chat("big", "big@example.com")
    text = json.dumps(big)
    padding = " " * (65 << 20)  # JSON whitespace: a valid 65 MB line, quick to write and parse
    (exports / "in" / "chats_5.jsonl").write_text("{" + padding + text[1:] + "\n")
    serial, _, _ = _staged(exports, 1)
    parsed_by = exports / "parsed_by.txt"
    real = stage_module.read_batches

    def recording(files, batch_size):
        files = list(files)
        with open(parsed_by, "a") as out:
            out.writelines(f"{os.getpid()} {f.path.name} {batch_size}\n" for f in files)
        return real(files, batch_size)

    monkeypatch.setattr(stage_module, "read_batches", recording)
    monkeypatch.setattr(stage_module, "SHARD_BATCH", 3)  # (the run's batches are 4 here)
    parallel, _, _ = _staged(exports, 2)
    pd.testing.assert_frame_equal(serial, parallel)
    assert "big" in set(parallel["chat_id"])
    lines = [line.split() for line in parsed_by.read_text().splitlines()]
    readers = {name: int(pid) for pid, name, _size in lines}
    assert {int(size) for _pid, _name, size in lines} == {3}  # a worker's batches are smaller
    assert (exports / "in" / "chats_5.jsonl").stat().st_size > 64 << 20
    assert set(readers) == {f.path.name for f in discover(exports / "in")}
    assert os.getpid() not in readers.values()


_KILLED_RUN = """
import os, signal, sys
from etl.procs import worker_pool

pool = worker_pool(2)
futures = [pool.submit(os.getpid) for _ in range(8)]
pids = sorted({f.result() for f in futures})
print(" ".join(map(str, pids)), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_parsing_workers_end_when_the_run_is_killed(tmp_path):
    """A run killed with SIGKILL while its workers wait for files (as during the Sell write)
    leaves none behind: they would hold its output pipe open and its scratch files for ever."""
    import os
    import subprocess
    import sys
    import time

    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out, "w") as stdout, open(err, "w") as stderr:  # not pipes workers could hold
        child = subprocess.run([sys.executable, "-c", _KILLED_RUN], stdout=stdout, stderr=stderr)
    assert child.returncode == -9, err.read_text()
    pids = [int(p) for p in out.read_text().split()]
    assert pids and os.getpid() not in pids

    def alive(pid):  # (a zombie nobody reaped yet has ended)
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().rpartition(")")[2].split()[0] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [p for p in pids if alive(p)]
    for pid in left:  # (without the fix they would stay; end them for the next test)
        os.kill(pid, 9)
    assert not left, f"workers outlived the killed run: {left}"
