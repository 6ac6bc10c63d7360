"""Which export files a run reads: those not loaded before or changed since."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from etl.errors import ConfigError
from etl.extract.files import SourceFile, discover, fingerprint

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("chatsell.pipeline")

Todo = list[tuple[SourceFile, str]]  # (file, its sha256)


def discover_files(path: Path, option: str) -> list[SourceFile]:
    try:
        return discover(path)
    except FileNotFoundError:
        raise ConfigError(f"{option}: no such file or directory: {path}") from None


def changed(
    files: list[SourceFile], known: dict[str, tuple[int, int, str]], kind: str, reread: bool
) -> Todo:
    """Files not loaded before or changed since (size and mtime, then content hash); every
    file when ``reread``."""
    todo = []
    dirs: dict[str, str] = {}
    for source in files:
        seen = known.get(_key(source, dirs))
        if seen and not reread and seen[0] == source.size and seen[1] == source.mtime_ns:
            continue
        sha = fingerprint(source.path)
        if seen and not reread and seen[2] == sha:
            continue
        todo.append((source, sha))
    log.debug("%s files to read: %d of %d", kind, len(todo), len(files))
    return todo


def file_rows(todo: Todo, kind: str) -> pd.DataFrame:
    """The ``source_files`` rows of files a run loaded."""
    import pandas as pd  # noqa: PLC0415 - an unchanged sync loads none

    dirs: dict[str, str] = {}
    return pd.DataFrame(
        [
            {
                "path": _key(s, dirs),
                "kind": kind,
                "size": s.size,
                "mtime_ns": s.mtime_ns,
                "sha256": sha,
            }
            for s, sha in todo
        ],
        columns=["path", "kind", "size", "mtime_ns", "sha256"],
    )


def _key(source: SourceFile, dirs: dict[str, str]) -> str:
    """The file's canonical path, as ``Path.resolve`` gives it, each directory resolved once per
    call site's ``dirs`` (resolving a thousand files one by one was a twentieth of an unchanged
    sync). Not cached across runs: a scheduler's next run sees a directory link that moved."""
    path = source.path
    if path.is_symlink():
        return str(path.resolve())
    parent = str(path.parent)
    if parent not in dirs:
        dirs[parent] = str(path.parent.resolve())
    return os.path.join(dirs[parent], path.name)
