"""A reject: one bad line, record or file, set aside with where it was and why."""

from __future__ import annotations

from dataclasses import dataclass

RAW_LIMIT = 2048


@dataclass(frozen=True, slots=True)
class Reject:
    """Something an export held that could not be read as what it should be."""

    source_file: str
    position: str  # "line 17", "record 3", "byte 2048", "file"
    reason: str
    raw: str = ""
    kind: str = "chat"  # chat | agent | department | lead | contact | deal | user | note | file
    chat_id: str | None = None

    @classmethod
    def of(
        cls,
        source_file: str,
        position: str,
        reason: str,
        raw: str | bytes = "",
        kind: str = "chat",
        chat_id: str | None = None,
    ) -> Reject:
        if isinstance(raw, bytes):
            raw = raw[: RAW_LIMIT * 4].decode("utf-8", errors="replace")
        return cls(source_file, position, reason[:500], raw[:RAW_LIMIT], kind, chat_id)

    @property
    def key(self) -> str:
        """The run-unique key this reject is accounted under in run_outcomes."""
        return f"rejected:{self.source_file}#{self.position}"
