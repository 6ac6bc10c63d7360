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

import orjson

from etl.extract.files import SourceFile
from etl.extract.rejects import Reject

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


def iter_values(source: SourceFile, kind: str) -> Iterator[Located | Reject]:
    """Top-level JSON values of a file: one per NDJSON line, or the one document."""
    try:
        with open_binary(source) as stream:
            skipped = 0
            # a byte order mark, as Windows tools write one before UTF-8 text, is no JSON: it
            # would cost the first record
            first = stream.readline().removeprefix(_BOM)
            while first and not first.strip():
                skipped += 1
                first = stream.readline()
            more = bool(stream.peek(1)[:1])  # type: ignore[attr-defined]
            if _looks_ndjson(source, first, more):
                yield from _iter_lines(source, kind, skipped, first, stream)
                return
            data = first + stream.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        yield Reject.of(source.name, "file", f"cannot read file: {exc}", kind="file")
        return
    if not data.strip():
        return  # an empty file holds nothing; not an error
    try:
        yield "document", orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        yield from _salvage(source, kind, data, exc)


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
