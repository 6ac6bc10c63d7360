"""JSON and NDJSON documents, plain or gzipped, read as they come.

A file is NDJSON when its name says so (``.jsonl``, ``.ndjson``) or its first line is a whole
JSON value with more after it; NDJSON is streamed line by line and a bad line is one reject.
Anything else is one JSON document; a document cut short (a truncated download) gives up the
records it holds before the cut, and the rest becomes one reject at the byte where it broke.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import ijson
import orjson

from etl.extract.files import SourceFile
from etl.extract.rejects import Reject
from etl.procs import paused_gc

Located = tuple[str, Any]  # (position, JSON value)

_NDJSON_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
_ARRAY_START = re.compile(rb'"(?:chats|items|data|agents|departments)"\s*:\s*\[')
_DOCS_START = re.compile(rb'"docs"\s*:\s*\{')


@contextmanager
def open_binary(source: SourceFile) -> Iterator[IO[bytes]]:
    """The file as a binary stream, gunzipped when it starts with the gzip magic number."""
    with open(source.path, "rb") as raw:
        if raw.read(2) == b"\x1f\x8b":
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw) as unzipped:
                yield unzipped
        else:
            raw.seek(0)
            yield raw


_BOM = b"\xef\xbb\xbf"
# A JSON document this large (on disk; a gzipped one an eighth of it) is read record by record,
# never whole: a Sell envelope of 500,000 contacts (250 MB) took 1.8 GiB as one parsed value
STREAM_BYTES = 32 << 20


def iter_values(source: SourceFile, kind: str) -> Iterator[Located | Reject]:
    """Top-level JSON values of a file: one per NDJSON line, or the one document."""
    try:
        with open_binary(source) as stream:
            skipped = 0
            # a byte order mark, as Windows tools write one before UTF-8 text, is no JSON: it
            # would cost the first record
            first = stream.readline(STREAM_BYTES).removeprefix(_BOM)
            while first and not first.strip():
                skipped += 1
                first = stream.readline(STREAM_BYTES)
            more = bool(stream.peek(1)[:1])  # type: ignore[attr-defined]
            # a first line longer than that is one document's (minified), never an NDJSON record
            capped = len(first) >= STREAM_BYTES and not first.endswith(b"\n")
            if not capped and _looks_ndjson(source, first, more):
                yield from _iter_lines(source, kind, skipped, first, stream)
                return
            large = capped or _large(source)
            data = b"" if large else first + stream.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        yield Reject.of(source.name, "file", f"cannot read file: {exc}", kind="file")
        return
    if large:
        yield from _stream(source, kind)
        return
    if not data.strip():
        return  # an empty file holds nothing; not an error
    try:
        yield "document", _load_document(data)
    except orjson.JSONDecodeError as exc:
        yield from _salvage(source, kind, data, exc)


def _load_document(data: bytes) -> Any:
    """One whole JSON document, parsed with the cyclic garbage collector paused: a page of a
    thousand chats is tens of thousands of containers (6% of reading the realistic export's
    gzipped pages)."""
    with paused_gc():
        return orjson.loads(data)


def _looks_ndjson(source: SourceFile, first: bytes, more: bool) -> bool:
    if source.path.name.lower().endswith(_NDJSON_SUFFIXES):
        return True
    if not more:
        return False
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        return False
    return True


def _iter_lines(
    source: SourceFile, kind: str, skipped: int, first: bytes, stream: IO[bytes]
) -> Iterator[Located | Reject]:
    line_no = skipped
    for line in _prepend(first, stream):
        line_no += 1
        stripped = line.strip()
        if not stripped:
            continue
        try:
            yield f"line {line_no}", orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            yield Reject.of(source.name, f"line {line_no}", f"invalid JSON: {exc}", stripped, kind)


def _large(source: SourceFile) -> bool:
    gzipped = source.path.name.lower().endswith(".gz")
    return source.size >= (STREAM_BYTES // 8 if gzipped else STREAM_BYTES)


def _stream(source: SourceFile, kind: str) -> Iterator[Located | Reject]:
    """A large document's records, one at a time, with the positions ``_salvage`` gives them
    (``record N``): the elements of its top-level array, or of the first array an envelope
    holds its records in (``items``, ``chats``, ...), or the entries of its ``docs`` map. A
    document of another shape is read whole after all; one cut short keeps what came before."""
    with open_binary(source) as stream:
        where = _records_at(stream)
    if where is None:
        with open_binary(source) as stream:
            data = stream.read()
        try:
            yield "document", _load_document(data)
        except orjson.JSONDecodeError as exc:
            yield from _salvage(source, kind, data, exc)
        return
    prefix, is_map = where
    index = 0
    try:
        with open_binary(source) as stream:
            _skip_bom(stream)
            if is_map:
                for key, value in ijson.kvitems(stream, prefix, use_float=True):
                    if isinstance(value, dict):
                        value.setdefault("id", key)
                    index += 1
                    yield f"record {index}", value
            else:
                for value in ijson.items(stream, prefix, use_float=True):
                    index += 1
                    yield f"record {index}", value
    except ijson.JSONError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        yield Reject.of(source.name, f"record {index + 1}",
                        f"invalid JSON after record {index} (file cut short?): {reason}", "", kind)  # fmt: skip


# the keys an envelope holds its records under (as the readers look for them)
_RECORD_ARRAYS = frozenset({"chats", "items", "agents", "departments"})


def _records_at(stream: IO[bytes]) -> tuple[str, bool] | None:
    """(ijson prefix of the records, whether they are a map's values), from the document's
    first events only; None when it holds them some other way."""
    _skip_bom(stream)
    events = ijson.parse(stream, use_float=True)
    try:
        _prefix, event, _value = next(events)
        if event == "start_array":
            return "item", False
        if event != "start_map":
            return None
        depth = 0
        for prefix, event, value in events:
            if depth == 0 and prefix == "" and event == "map_key":
                if value == "id":
                    return None  # a record itself (an agent's "departments" is no envelope)
                key = value
                _p, first, _v = next(events)
                if key in _RECORD_ARRAYS and first == "start_array":
                    return f"{key}.item", False
                if key == "docs" and first == "start_map":
                    return "docs", True
                if first in ("start_map", "start_array"):
                    depth = 1
            elif event in ("start_map", "start_array"):
                depth += 1
            elif event in ("end_map", "end_array"):
                depth -= 1
    except (ijson.JSONError, StopIteration):
        return None
    return None


def _skip_bom(stream: IO[bytes]) -> None:
    if stream.peek(3)[:3] == _BOM:  # type: ignore[attr-defined]
        stream.read(3)


def _prepend(first: bytes, stream: IO[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from stream


def _salvage(
    source: SourceFile, kind: str, data: bytes, error: orjson.JSONDecodeError
) -> Iterator[Located | Reject]:
    """Recover the whole records before the point where a document breaks."""
    decoder = json.JSONDecoder()
    text = data.decode("utf-8", errors="replace")
    head = data[:4096]
    match = _ARRAY_START.search(head)
    start: int | None = None
    is_map = False
    if data.lstrip()[:1] == b"[":
        start = text.index("[") + 1
    elif match:
        start = len(head[: match.end()].decode("utf-8", errors="replace"))
    else:
        docs = _DOCS_START.search(head)
        if docs:
            start, is_map = len(head[: docs.end()].decode("utf-8", errors="replace")), True
    if start is None:
        yield Reject.of(
            source.name, f"byte {error.pos}", f"invalid JSON: {error}", data[:2048], kind
        )
        return
    pos, index = start, 0
    while True:
        pos = _skip(text, pos)
        if pos >= len(text) or text[pos] in "]}":
            break
        try:
            if is_map:
                key, pos = decoder.raw_decode(text, pos)
                pos = _skip(text, pos)
                if text[pos : pos + 1] != ":":
                    raise json.JSONDecodeError("expected ':'", text, pos)
                value, pos = decoder.raw_decode(text, _skip(text, pos + 1))
                if isinstance(value, dict):
                    value.setdefault("id", key)
            else:
                value, pos = decoder.raw_decode(text, pos)
        except (json.JSONDecodeError, IndexError):
            break
        index += 1
        yield f"record {index}", value
        pos = _skip(text, pos)
        if text[pos : pos + 1] == ",":
            pos += 1
    yield Reject.of(
        source.name,
        f"byte {len(text[:pos].encode('utf-8'))}",
        f"invalid JSON after record {index} (file cut short?): {error}",
        text[pos : pos + 2048],
        kind,
    )


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos
