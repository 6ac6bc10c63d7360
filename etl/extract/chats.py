"""Zendesk Chat exports: chats, agents and departments, in every shape the Chat API gives.

Shapes: an Incremental Export page ``{"chats": [...], "end_id", "end_time", "next_page"}``,
a bulk response ``{"docs": {"<id>": {...}}}``, a JSON array, NDJSON (one value per line), a
single object; any of them gzipped. A file's kind comes from its name (``chats*``,
``agents*``, ``departments*``) and, failing that, from each record's content.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import pandas as pd

from etl.extract.files import SourceFile, chat_kind_from_name
from etl.extract.jsondoc import iter_values
from etl.extract.rejects import Reject
from etl.extract.timestamps import iso, parse_utc
from etl.vocab import (
    AGENT_COLUMNS,
    CHAT_COLUMNS,
    CHAT_KINDS,
    DEPARTMENT_COLUMNS,
    without_content,
)


@dataclass(slots=True)
class RawRecord:
    """One record found in a Chat export, before typing."""

    kind: str  # chats | agents | departments
    source_file: str
    position: str
    value: Any


@dataclass(slots=True)
class ChatBatch:
    """Typed frames for a bounded number of records, plus what could not be read."""

    chats: pd.DataFrame
    agents: pd.DataFrame
    departments: pd.DataFrame
    rejects: list[Reject] = field(default_factory=list)


def iter_records(source: SourceFile) -> Iterator[RawRecord | Reject]:
    """Every chat, agent and department record of one file, with its position."""
    name_kind = chat_kind_from_name(source)
    reject_kind = {"agents": "agent", "departments": "department"}.get(name_kind or "", "chat")
    for item in iter_values(source, reject_kind):
        if isinstance(item, Reject):
            yield item
            continue
        position, value = item
        prefix = "" if position == "document" else f"{position} "
        yield from _unpack(source.name, prefix, value, name_kind)


def _unpack(
    source_name: str, prefix: str, value: Any, name_kind: str | None
) -> Iterator[RawRecord | Reject]:
    if isinstance(value, dict):
        for key in ("chats", "agents", "departments"):
            # an agent record has a "departments" list too; an envelope has no id
            if isinstance(value.get(key), list) and "id" not in value:
                for index, element in enumerate(value[key], start=1):
                    yield _classify(source_name, f"{prefix}record {index}", element, key)
                return
        if isinstance(value.get("docs"), dict):
            for index, (key, element) in enumerate(value["docs"].items(), start=1):
                if isinstance(element, dict):
                    element.setdefault("id", key)
                yield _classify(source_name, f"{prefix}record {index}", element, "chats")
            return
        yield _classify(source_name, (prefix.strip() or "record 1"), value, name_kind)
        return
    if isinstance(value, list):
        for index, element in enumerate(value, start=1):
            yield _classify(source_name, f"{prefix}record {index}", element, name_kind)
        return
    yield Reject.of(
        source_name, prefix.strip() or "file", "not a JSON object or array", _dump(value)
    )


def _classify(source_name: str, position: str, value: Any, kind: str | None) -> RawRecord | Reject:
    if not isinstance(value, dict):
        return Reject.of(
            source_name, position, "record is not a JSON object", _dump(value), kind or "chat"
        )
    kind = kind or _kind_by_content(value)
    if kind is None:
        return Reject.of(
            source_name, position, "not a chat, agent or department record", _dump(value)
        )
    return RawRecord(kind, source_name, position, value)


def _kind_by_content(record: dict[str, Any]) -> str | None:
    if record.get("type") in CHAT_KINDS or "visitor" in record or "history" in record:
        return "chats"
    if "display_name" in record or "roles" in record or ("email" in record and "enabled" in record):
        return "agents"
    if "members" in record:
        return "departments"
    return None


def read_file(source: SourceFile, batch_size: int) -> list[ChatBatch]:
    """One file's batches, whole (a Dask worker's unit of work)."""
    return list(read_batches([source], batch_size))


def read_batches(files: Iterable[SourceFile], batch_size: int) -> Iterator[ChatBatch]:
    """Typed batches of at most ``batch_size`` records over the given files, in file order
    (parsed in parallel by ``etl.stage.chats.fill``, a file to a worker)."""
    batch = _PendingBatch()
    for source in files:
        for item in iter_records(source):
            batch.add(item)
            if batch.records >= batch_size:
                yield batch.build()
                batch = _PendingBatch()
    if batch.records or batch.rejects:
        yield batch.build()


class _PendingBatch:
    """The records of a batch as they are met. A chat becomes its row at once, so a batch
    holds rows rather than parsed documents: ten thousand live documents made the garbage
    collector rescan them on every few allocations, a quarter of the time of reading."""

    __slots__ = ("agents", "chats", "departments", "records", "rejects")

    def __init__(self) -> None:
        self.records = 0
        self.rejects: list[Reject] = []
        self.chats = ChatRows()
        self.agents: list[RawRecord] = []
        self.departments: list[RawRecord] = []

    def add(self, item: RawRecord | Reject) -> None:
        if isinstance(item, Reject):
            self.rejects.append(item)
            return
        self.records += 1
        if item.kind == "chats":
            self.chats.add(item)
        elif item.kind == "agents":
            self.agents.append(item)
        elif item.kind == "departments":
            self.departments.append(item)

    def build(self) -> ChatBatch:
        """Type the batch; records that do not type become rejects."""
        rejects = list(self.rejects)
        return ChatBatch(
            chats=self.chats.frame(rejects),
            agents=agent_frame(self.agents, rejects),
            departments=department_frame(self.departments, rejects),
            rejects=rejects,
        )


def _text(value: Any) -> str:
    """Absent values are "" in the Chat API; keep that, and make numbers text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return _dump(value)


def _dump(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return repr(value)


def _string_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple):
        return [_text(v) for v in value if v is not None]
    return [_text(value)]


_ROW_COLUMNS = tuple(
    c for c in CHAT_COLUMNS if c not in ("started_at", "ended_at", "updated_at", "version")
)
_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_NO_VISITOR: dict[str, Any] = {}  # read only


class ChatRows:
    """Chat records typed one by one into rows (see CHAT_COLUMNS), then as a frame.

    ``add`` is the one per-record Python step of a sync (nested JSON has no columnar shortcut
    that pays for itself: a record's content hash needs it parsed in Python anyway), so it is
    written tight: one tuple per chat. Of the parsed record nothing outlives the call but, when
    its start is not plainly valid (``_plain_start``), its canonical text for a reject's ``raw``
    (kept for every chat, those texts took a third more memory than the parsed records did).
    """

    __slots__ = ("ended", "kept", "no_id", "rows", "started", "updated")

    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self.started: list[Any] = []
        self.ended: list[Any] = []
        self.updated: list[Any] = []
        # (source file, position, sorted JSON or None when the start is plainly valid)
        self.kept: list[tuple[str, str, bytes | None]] = []
        self.no_id: list[Reject] = []  # chats without an id, in record order

    def add(self, record: RawRecord) -> None:
        chat = record.value
        get = chat.get
        chat_id = get("id")
        if chat_id is None or chat_id == "" or isinstance(chat_id, dict | list | bool):
            self.no_id.append(
                Reject.of(record.source_file, record.position, "chat has no id", _dump(chat))
            )
            return
        visitor = get("visitor")
        if type(visitor) is not dict:
            visitor = _NO_VISITOR
        session = get("session")
        country = session.get("country_code") if type(session) is dict else None
        kind = get("type")
        if kind not in CHAT_KINDS:
            kind = "chat"
        count, transcript = render_transcript(chat, kind, visitor)
        canonical = orjson.dumps(chat, option=_SORTED)
        self.rows.append(
            (
                chat_id if type(chat_id) is str else _text(chat_id),
                kind,
                _text(visitor.get("id")),
                _text(visitor.get("name")),
                _text(visitor.get("email")),
                _text(visitor.get("phone")),
                _text(visitor.get("notes")),
                _text(get("department_id")),
                _text(get("department_name")),
                _json_list(get("tags")),
                _text(get("rating")),
                _text(get("comment")),
                bool(get("missed")),
                _json_list(get("agent_ids")),
                _json_list(get("agent_names")),
                _text(country).upper(),
                count,
                transcript,
                hashlib.sha256(canonical).hexdigest(),
                bool(get("deleted")),
                record.source_file,
                record.position,
            )
        )
        started = get("timestamp")
        self.started.append(started)
        self.ended.append(get("end_timestamp"))
        self.updated.append(get("update_timestamp"))
        if _plain_start(started):
            canonical = None
        self.kept.append((record.source_file, record.position, canonical))

    def __len__(self) -> int:
        return len(self.rows)

    def frame(self, rejects: list[Reject]) -> pd.DataFrame:
        """The rows as a frame of CHAT_COLUMNS; chats without an id or a start go to
        ``rejects`` (in record order, those without an id first)."""
        rejects.extend(self.no_id)
        if not self.rows:
            return empty_chat_frame()
        frame = pd.DataFrame.from_records(self.rows, columns=list(_ROW_COLUMNS))
        started = parse_utc(self.started)
        ended = parse_utc(self.ended).fillna(started)
        updated = parse_utc(self.updated).fillna(ended)
        frame.insert(2, "started_at", started)
        frame.insert(3, "ended_at", ended)
        frame.insert(4, "updated_at", updated)
        version = [
            f"{'' if stamp is None else stamp}/{digest[:16]}"
            for stamp, digest in zip(
                iso(updated).tolist(), frame["content_hash"].tolist(), strict=True
            )
        ]
        frame.insert(5, "version", pd.Series(version, dtype="str"))
        bad = frame["started_at"].isna()
        for index in bad[bad].index:
            source_file, position, canonical = self.kept[index]
            rejects.append(
                Reject.of(
                    source_file,
                    position,
                    f"chat timestamp missing or not ISO-8601: {self.started[index]!r}",
                    canonical.decode() if canonical is not None else "",
                    chat_id=frame.at[index, "chat_id"],
                )
            )
        if bad.any():
            frame = frame[~bad].reset_index(drop=True)
        # a chat deleted at source is staged without its content (SPEC 10): only its version
        # and the fact of deletion travel on
        return without_content(frame[list(CHAT_COLUMNS)])


def _plain_start(value: Any) -> bool:
    """Whether ``value`` is a start ``parse_utc`` cannot refuse, whatever else its batch holds:
    ``YYYY-MM-DDTHH:MM:SSZ``, a date and time that exist, in the years a nanosecond timestamp
    holds (1678-2261). Anything else keeps its record's text until the batch is parsed."""
    if (
        type(value) is not str
        or len(value) != 20
        or value[19] != "Z"
        or value[10] != "T"
        or value[4] != "-"
        or value[7] != "-"
        or value[13] != ":"
        or value[16] != ":"
        or value[11:13] >= "24"
    ):
        return False
    digits = value[:4] + value[5:7] + value[8:10] + value[11:13] + value[14:16] + value[17:19]
    if not (digits.isascii() and digits.isdigit()):
        return False
    try:
        year = datetime.fromisoformat(value).year  # checks the month, day, minute and second
    except ValueError:
        return False
    return 1678 <= year <= 2261


def chat_frame(records: list[RawRecord], rejects: list[Reject]) -> pd.DataFrame:
    """One row per chat record; see CHAT_COLUMNS. Records missing an id or a start become rejects."""
    rows = ChatRows()
    for record in records:
        rows.add(record)
    return rows.frame(rejects)


def _json_list(value: Any) -> str:
    """A list of strings as canonical JSON text (``[]`` for nothing)."""
    if not value:
        return "[]"
    if type(value) is list:
        for element in value:  # (a loop: all() over a generator costs more on short lists)
            if type(element) is not str:
                break
        else:
            return orjson.dumps(value).decode()
    return _dump(_string_list(value))


def empty_chat_frame() -> pd.DataFrame:
    """A frame with CHAT_COLUMNS and their dtypes, and no rows."""
    dtypes = {name: "str" for name in CHAT_COLUMNS}
    dtypes.update({"started_at": "datetime64[us, UTC]", "ended_at": "datetime64[us, UTC]",
                   "updated_at": "datetime64[us, UTC]", "missed": "bool", "deleted": "bool",
                   "message_count": "int64"})  # fmt: skip
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in dtypes.items()})


def render_transcript(chat: dict[str, Any], kind: str, visitor: dict[str, Any]) -> tuple[int, str]:
    """(message count, the conversation as one line per message: time, sender, text)."""
    lines = []
    history = chat.get("history")
    if type(history) is list:
        for event in history:
            if type(event) is not dict:
                continue
            etype = event.get("type")
            if etype == "chat.msg":
                text = event.get("msg")
                if type(text) is not str:
                    text = _text(text)
            elif etype == "chat.file":
                attachment = (
                    event.get("attachment") if isinstance(event.get("attachment"), dict) else {}
                )
                text = "[file] " + _text(
                    attachment.get("name") or attachment.get("url") or event.get("msg")
                )
            else:
                continue
            if "\n" in text or "\r" in text:
                text = _one_line(text)
            stamp = event.get("timestamp")
            clock = (
                stamp[:19].replace("T", " ")
                if type(stamp) is str and len(stamp) >= 19
                else _clock(stamp)
            )
            name = event.get("name")
            lines.append(f"{clock} {name if type(name) is str else _text(name)}: {text}")
    message = chat.get("message")
    if message and (kind == "offline_msg" or not lines):
        sender = _text(visitor.get("name")) or "visitor"
        lines.append(f"{_clock(chat.get('timestamp'))} {sender}: {_one_line(_text(message))}")
    return len(lines), "\n".join(lines)


def _clock(value: Any) -> str:
    text = _text(value)
    return text[:19].replace("T", " ") if len(text) >= 19 else text


def _one_line(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", " ⏎ ")


def agent_frame(records: list[RawRecord], rejects: list[Reject]) -> pd.DataFrame:
    """Chat agents; ``agent_id`` as text, because chats list agents by string id."""
    rows = []
    for record in records:
        agent = record.value
        if agent.get("id") is None:
            rejects.append(
                Reject.of(
                    record.source_file, record.position, "agent has no id", _dump(agent), "agent"
                )
            )
            continue
        name = _text(agent.get("display_name")) or " ".join(
            p for p in (_text(agent.get("first_name")), _text(agent.get("last_name"))) if p
        )
        rows.append(
            (
                _text(agent["id"]),
                _text(agent.get("email")),
                name,
                bool(agent.get("enabled", True)),
                _dump(_string_list(agent.get("departments"))),
            )
        )
    return pd.DataFrame(rows, columns=list(AGENT_COLUMNS))


def department_frame(records: list[RawRecord], rejects: list[Reject]) -> pd.DataFrame:
    rows = []
    for record in records:
        department = record.value
        if department.get("id") is None:
            rejects.append(
                Reject.of(
                    record.source_file,
                    record.position,
                    "department has no id",
                    _dump(department),
                    "department",
                )
            )
            continue
        rows.append(
            (
                _text(department["id"]),
                _text(department.get("name")),
                _dump(_string_list(department.get("members"))),
            )
        )
    return pd.DataFrame(rows, columns=list(DEPARTMENT_COLUMNS))
