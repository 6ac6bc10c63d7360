"""Finding export files, telling their kind, opening them (plain or gzipped)."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

DATA_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv", ".txt")


@dataclass(frozen=True, slots=True)
class SourceFile:
    """An export file found under --chats or --sell."""

    path: Path
    name: str  # path as given (relative to the root when a directory was given)
    size: int
    mtime_ns: int

    @property
    def stem(self) -> str:
        """File name without .gz and the data suffix, lower-cased."""
        name = self.path.name.lower()
        if name.endswith(".gz"):
            name = name[:-3]
        for suffix in DATA_SUFFIXES:
            if name.endswith(suffix):
                return name[: -len(suffix)]
        return name

    @property
    def is_csv(self) -> bool:
        return self.stem + ".csv" in self.path.name.lower()


def discover(root: str | Path) -> list[SourceFile]:
    """Data files under ``root`` (a file or a directory, searched recursively), in path order."""
    root = Path(root)
    if root.is_file():
        stat = root.stat()
        return [SourceFile(root, str(root), stat.st_size, stat.st_mtime_ns)]
    if not root.is_dir():
        raise FileNotFoundError(f"no such file or directory: {root}")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            lower = filename.lower()
            if filename.startswith(".") or not _is_data_name(lower):
                continue
            path = Path(dirpath) / filename
            stat = path.stat()
            found.append(SourceFile(path, str(path), stat.st_size, stat.st_mtime_ns))
    return sorted(found, key=lambda f: f.name)


def _is_data_name(lower: str) -> bool:
    if lower.endswith(".gz"):
        lower = lower[:-3]
    return lower.endswith(DATA_SUFFIXES)


def fingerprint(path: Path) -> str:
    """sha256 of the bytes on disk, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_CHAT_WORDS = {
    "chats": "chats",
    "chat": "chats",
    "transcripts": "chats",
    "agents": "agents",
    "agent": "agents",
    "departments": "departments",
    "department": "departments",
}
_SELL_WORDS = {
    "leads": "leads",
    "lead": "leads",
    "contacts": "contacts",
    "contact": "contacts",
    "companies": "contacts",
    "company": "contacts",
    "organizations": "contacts",
    "people": "contacts",
    "deals": "deals",
    "deal": "deals",
    "users": "users",
    "user": "users",
    "notes": "notes",
    "note": "notes",
}


def _kind_from_words(stem: str, words_to_kind: dict[str, str]) -> str | None:
    """The first word of the file name that names a kind: ``zapier_leads`` -> leads."""
    if "lead_conversion" in stem or "leadconversion" in stem:
        return "lead_conversions" if words_to_kind is _SELL_WORDS else None
    for word in re.split(r"[^a-z]+", stem):
        if word in words_to_kind:
            return words_to_kind[word]
    return None


def chat_kind_from_name(source: SourceFile) -> str | None:
    """chats | agents | departments from the file name, else None (tell by content)."""
    return _kind_from_words(source.stem, _CHAT_WORDS)


def sell_kind_from_name(source: SourceFile) -> str | None:
    """leads | contacts | deals | users | notes | lead_conversions from the name, else None."""
    return _kind_from_words(source.stem, _SELL_WORDS)
