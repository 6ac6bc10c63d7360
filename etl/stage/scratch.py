"""A run's scratch directories: named with their host and process, removed by the run that made
them when it ends, and by a later run of the same host when a kill left them behind."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
from pathlib import Path

_SCRATCH_KINDS = ("stage", "sell")


def _owner() -> str:
    """This host (hashed: containers sharing a TMPDIR have their own process ids) and process."""
    host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
    return f"{host}.{os.getpid()}"


def scratch_dir(kind: str, directory: str | Path | None) -> tempfile.TemporaryDirectory:
    """A run's scratch directory, named with its host and process (``remove_orphans``)."""
    return tempfile.TemporaryDirectory(prefix=f"chatsell-{kind}-{_owner()}-", dir=directory)


def remove_orphans(directory: str | Path | None = None) -> list[Path]:
    """Remove the scratch directories of runs of this host whose process is gone (killed: a
    run removes its own when it ends, even when it fails). At a million chats one holds
    gigabytes. Another host's (or container's) are left alone."""
    removed = orphans(directory)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def orphans(directory: str | Path | None = None) -> list[Path]:
    """The scratch directories ``remove_orphans`` removes."""
    root = Path(directory) if directory is not None else Path(tempfile.gettempdir())
    host = _owner().split(".")[0]
    found = []
    for path in root.glob("chatsell-*-*.*-*"):
        _, kind, owner, *_rest = path.name.split("-")
        their_host, _, pid = owner.partition(".")
        if kind not in _SCRATCH_KINDS or their_host != host or not pid.isdigit():
            continue
        if path.is_dir() and not _running(int(pid)):
            found.append(path)
    return found


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to judge
        return True
    return True
