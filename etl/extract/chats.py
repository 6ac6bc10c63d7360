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
    pending: list[RawRecord] = []
    rejects: list[Reject] = []
    for source in files:
        for item in iter_records(source):
            if isinstance(item, Reject):
                rejects.append(item)
            else:
                pending.append(item)
            if len(pending) >= batch_size:
                yield build_batch(pending, rejects)
                pending, rejects = [], []
    if pending or rejects:
        yield build_batch(pending, rejects)


def build_batch(records: list[RawRecord], rejects: list[Reject]) -> ChatBatch:
    """Type the raw records of a batch; records that do not type become rejects."""
    rejects = list(rejects)
    chats = [r for r in records if r.kind == "chats"]
    agents = [r for r in records if r.kind == "agents"]
    departments = [r for r in records if r.kind == "departments"]
    return ChatBatch(
        chats=chat_frame(chats, rejects),
        agents=agent_frame(agents, rejects),
        departments=department_frame(departments, rejects),
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


def chat_frame(records: list[RawRecord], rejects: list[Reject]) -> pd.DataFrame:
    """One row per chat record; see CHAT_COLUMNS. Records missing an id or a start become rejects.

    The loop is the one per-record Python step of a sync (nested JSON has no columnar shortcut
    that pays for itself at these sizes), so it is written tight: one tuple per chat.
    """
    rows = []
    raw_started, raw_ended, raw_updated, kept = [], [], [], []
    sha256 = hashlib.sha256
    dumps = orjson.dumps
    for record in records:
        chat = record.value
        chat_id = chat.get("id")
        if chat_id is None or chat_id == "" or isinstance(chat_id, dict | list | bool):
            rejects.append(
                Reject.of(record.source_file, record.position, "chat has no id", _dump(chat))
            )
            continue
        visitor = chat.get("visitor")
        if type(visitor) is not dict:
            visitor = {}
        session = chat.get("session")
        country = session.get("country_code") if type(session) is dict else None
        kind = chat.get("type")
        if kind not in CHAT_KINDS:
            kind = "chat"
        count, transcript = render_transcript(chat, kind, visitor)
        rows.append(
            (
                chat_id if type(chat_id) is str else _text(chat_id),
                kind,
                _text(visitor.get("id")),
                _text(visitor.get("name")),
                _text(visitor.get("email")),
                _text(visitor.get("phone")),
                _text(visitor.get("notes")),
                _text(chat.get("department_id")),
                _text(chat.get("department_name")),
                _json_list(chat.get("tags")),
                _text(chat.get("rating")),
                _text(chat.get("comment")),
                bool(chat.get("missed")),
                _json_list(chat.get("agent_ids")),
                _json_list(chat.get("agent_names")),
                _text(country).upper(),
                count,
                transcript,
                sha256(dumps(chat, option=_SORTED)).hexdigest(),
                bool(chat.get("deleted")),
                record.source_file,
                record.position,
            )
        )
        raw_started.append(chat.get("timestamp"))
        raw_ended.append(chat.get("end_timestamp"))
        raw_updated.append(chat.get("update_timestamp"))
        kept.append(record)
    if not kept:
        return empty_chat_frame()
    frame = pd.DataFrame.from_records(rows, columns=list(_ROW_COLUMNS))
    started, ended, updated = parse_utc(raw_started), parse_utc(raw_ended), parse_utc(raw_updated)
    ended = ended.fillna(started)
    updated = updated.fillna(ended)
    frame.insert(2, "started_at", started)
    frame.insert(3, "ended_at", ended)
    frame.insert(4, "updated_at", updated)
    frame.insert(5, "version", iso(updated).fillna("") + "/" + frame["content_hash"].str[:16])
    bad = frame["started_at"].isna()
    for index in bad[bad].index:
        record = kept[index]
        rejects.append(
            Reject.of(
                record.source_file,
                record.position,
                f"chat timestamp missing or not ISO-8601: {raw_started[index]!r}",
                _dump(record.value),
                chat_id=frame.at[index, "chat_id"],
            )
        )
    if bad.any():
        frame = frame[~bad].reset_index(drop=True)
    # a chat deleted at source is staged without its content (SPEC 10): only its version and
    # the fact of deletion travel on
    return without_content(frame[list(CHAT_COLUMNS)])


def _json_list(value: Any) -> str:
    """A list of strings as canonical JSON text (``[]`` for nothing)."""
    if not value:
        return "[]"
    if type(value) is list and all(type(v) is str for v in value):
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
