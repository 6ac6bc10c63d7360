"""Pulled pages on disk, and what a pull did.

Each page is written as it came from the API, gzipped (``mtime`` 0, so the same page gives the
same bytes), to a hidden temporary name in the export directory, flushed to disk, then renamed
into place: a ``sync`` reading the directory at the same time sees a whole file or none. A page
identical to one already there is not written again (``sync`` then has nothing new to read).
"""

from __future__ import annotations

import fcntl
import gzip
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl.errors import ConfigError, LockHeld, RunFailed

LOCK_NAME = ".chatsell-pull.lock"


@dataclass
class PullResult:
    """What one ``chatsell pull`` fetched and wrote, for the command line to print."""

    source: str  # chat | sell
    out_dir: Path
    pages: int = 0
    records: dict[str, int] = field(default_factory=dict)  # per resource: chats, agents, leads, ...
    files_written: list[Path] = field(default_factory=list)
    files_unchanged: int = 0  # pages identical to a file already there
    files_removed: list[Path] = field(default_factory=list)  # pages past a resource's new end
    requests: int = 0
    retries: int = 0
    waited_seconds: float = 0.0  # in Retry-After, backoff and the rate limiter
    cursor: dict[str, Any] | None = None  # chat: where the next pull starts

    def count(self, resource: str, n: int) -> None:
        self.records[resource] = self.records.get(resource, 0) + n

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "out_dir": str(self.out_dir),
            "pages": self.pages,
            "records": dict(self.records),
            "files_written": len(self.files_written),
            "files_unchanged": self.files_unchanged,
            "files_removed": len(self.files_removed),
            "requests": self.requests,
            "retries": self.retries,
            "waited_seconds": round(self.waited_seconds, 3),
            "cursor": self.cursor,
        }

    def summary(self) -> str:
        """One line: ``pull chat: 3 pages (2012 chats, 14 agents, 3 departments); 3 files written ...``."""
        records = ", ".join(f"{n} {name}" for name, n in self.records.items()) or "nothing"
        line = (
            f"pull {self.source}: {self.pages} pages ({records}); "
            f"{len(self.files_written)} files written, {self.files_unchanged} unchanged"
        )
        if self.files_removed:
            line += f", {len(self.files_removed)} stale removed"
        return f"{line}; {self.requests} requests, {self.retries} retried -> {self.out_dir}"


class PageWriter:
    """Writes pulled pages into one export directory."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ConfigError(f"--out {self.out_dir} is not a directory")
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create --out {self.out_dir}: {exc.strerror}") from None

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One pull at a time into a directory (an exclusive ``flock``, released if we die)."""
        path = self.out_dir / LOCK_NAME
        handle = open(path, "a+b")  # noqa: SIM115 - held for the whole block
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockHeld(f"another chatsell pull is writing into {self.out_dir}") from None
            yield
        finally:
            handle.close()

    def write_next(self, prefix: str, content: bytes) -> tuple[Path, bool]:
        """Write a page as ``<prefix>_<n>.json.gz`` with the first free ``n``.

        Returns (path, written); an identical page already under this prefix is not written
        twice (a page fetched again after a crash before its cursor was saved).
        """
        data = _gzip(content)
        n = 1
        while True:
            path = self.out_dir / f"{prefix}_{n}.json.gz"
            if not path.exists():
                self._atomic_write(path, data)
                return path, True
            if _same_bytes(path, data):
                return path, False
            n += 1

    def write_as(self, name: str, content: bytes) -> tuple[Path, bool]:
        """Write a page under a fixed name, replacing an older version; (path, written)."""
        data = _gzip(content)
        path = self.out_dir / name
        if path.exists() and _same_bytes(path, data):
            return path, False
        self._atomic_write(path, data)
        return path, True

    def remove_pages_after(self, resource: str, last_page: int) -> list[Path]:
        """Delete ``<resource>_<n>.json.gz`` for n > last_page: pages a shrunken collection no
        longer has, which a later ``sync --full`` would otherwise read as current."""
        pattern = re.compile(rf"{re.escape(resource)}_(\d+)\.json\.gz")
        removed = []
        for path in sorted(self.out_dir.iterdir()):
            match = pattern.fullmatch(path.name)
            if match and int(match.group(1)) > last_page:
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    def _atomic_write(self, path: Path, data: bytes) -> None:
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # hidden: sync skips it
        try:
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise RunFailed(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None


def _gzip(content: bytes) -> bytes:
    return gzip.compress(content, compresslevel=6, mtime=0)


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
