"""Sell CSV exports (a Smart List saved as CSV), typed column by column.

A Smart List of a million rows is one file, so one worker reads it alone while the others wait.
Typing it row by row (a dict per row, each value through a function) took ~45 s and, with the
file read whole, 3 GiB. Here the file is streamed, split into rows by the C ``csv`` module, and
typed ``FRAME_ROWS`` rows at a time as columns: each column is one list comprehension, and
Python touches a single row only where the row is odd (a reject, a custom field, a fallback
name). The values are what the record-by-record typing (``etl.extract.sell._frame``) gives the
same row as a dict; a test holds the two equal.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd

from etl.extract.files import SourceFile, sell_kind_from_name
from etl.extract.jsondoc import open_binary
from etl.extract.rejects import Reject
from etl.extract.sellrecords import (
    COLUMNS,
    FRAME_ROWS,
    INT_COLUMNS,
    as_int,
    dump,
    fill_names,
    finish_frame,
)

_ABSENT = object()  # a key the row's dict would not have (as opposed to an empty value)
# the columns whose values are never text as read (a list, a flag, a dict, maybe absent)
_NESTED = frozenset({"tags", "is_organization", "custom_fields", "owner_id", "owner_ref"})
_TRUE_FLAGS = frozenset({"1", "true", "yes", "company", "organization", "organisation"})


def csv_frames(
    source: SourceFile, labels: Mapping[str, str], encoding: str | None, rejects: list[Reject]
) -> Iterator[tuple[str, pd.DataFrame]]:
    """(resource, typed frame) of at most ``FRAME_ROWS`` rows each; rows that cannot be read go
    to ``rejects`` with their line."""
    try:
        codec, errors = csv_encoding(source, encoding)
    except (OSError, LookupError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        rejects.append(Reject.of(source.name, "file", f"cannot read CSV: {exc}", kind="file"))
        return
    with open_binary(source) as raw:
        reader = csv.reader(io.TextIOWrapper(raw, encoding=codec, errors=errors, newline=""))
        try:
            header = next(reader)
        except (StopIteration, csv.Error):
            return
        fields = [labels.get(label.strip().lower()) for label in header]
        resource = sell_kind_from_name(source) or _csv_kind(fields)
        if resource is None:
            rejects.append(Reject.of(
                source.name, "line 1",
                "cannot tell the Sell resource of this CSV; name it leads*.csv, contacts*.csv, deals*.csv or users*.csv",
                ",".join(header), "file",
            ))  # fmt: skip
            return
        batch = _Batch(source.name, resource, header, fields)
        width = len(header)
        while True:
            try:
                for values in reader:
                    # the usual row: all its fields, an id (or other text) in the first
                    if not (len(values) == width > 0 and values[0].strip()):
                        if not "".join(values).strip():
                            continue  # a blank row
                        if len(values) != width:
                            rejects.append(Reject.of(
                                source.name, f"line {reader.line_num}",
                                f"{len(values)} fields where the header has {width}",
                                ",".join(values), resource[:-1],
                            ))  # fmt: skip
                            continue
                    batch.rows.append(values)
                    batch.lines.append(reader.line_num)
                    if len(batch.rows) >= FRAME_ROWS:
                        yield resource, batch.frame(rejects)
                break
            except csv.Error as exc:  # the reader goes on at the next line
                rejects.append(Reject.of(source.name, f"line {reader.line_num}",
                                         f"malformed CSV: {exc}", "", resource[:-1]))  # fmt: skip
        if batch.rows:
            yield resource, batch.frame(rejects)


def csv_encoding(source: SourceFile, encoding: str | None) -> tuple[str, str]:
    """(codec, errors) to stream a CSV with: the given encoding, else UTF-8 (BOM or not), else
    cp932 (Japanese Excel), else UTF-8 with replacements. The file is decoded once, block by
    block and kept nowhere, to choose before a row is read: a file that turns out not to be in
    an encoding is a file reject, not half its rows."""
    if encoding:
        _decodes(source, encoding)
        return encoding, "strict"
    for codec in ("utf-8-sig", "cp932"):
        try:
            _decodes(source, codec)
        except UnicodeDecodeError:
            continue
        return codec, "strict"
    return "utf-8", "replace"


def _decodes(source: SourceFile, codec: str) -> None:
    """Raise UnicodeDecodeError unless the whole file decodes as ``codec``."""
    decoder = codecs.getincrementaldecoder(codec)()
    with open_binary(source) as raw:
        while block := raw.read(1 << 20):
            decoder.decode(block)
    decoder.decode(b"", final=True)


def _csv_kind(fields: list[str | None]) -> str | None:
    present = set(fields)
    if "is_organization" in present:
        return "contacts"
    if {"value", "currency"} & present:
        return "deals"
    if "role" in present or "team_name" in present:
        return "users"
    return None


class _Batch:
    """Rows of one CSV, as read, until they are typed into a frame."""

    def __init__(self, source_name: str, resource: str, header: list[str], fields) -> None:
        self.source_name, self.resource = source_name, resource
        self.header, self.fields = header, fields
        self.rows: list[list[str]] = []
        self.lines: list[int] = []

    def frame(self, rejects: list[Reject]) -> pd.DataFrame:
        rows, lines = self.rows, self.lines
        self.rows, self.lines = [], []
        named = self._named(list(zip(*rows, strict=True)), len(rows))
        named["source_file"] = [self.source_name] * len(rows)
        named["position"] = [f"line {n}" for n in lines]
        return _typed(self.resource, named, len(rows), rejects)

    def _named(self, columns: list[tuple[str, ...]], n: int) -> dict[str, list[Any]]:
        """What each row's dict would hold, by key: the labelled values (stripped; of two
        labels for one field the later non-empty one), tags as lists, the organization flag
        as a bool, the owner as an id or a reference, the unlabelled values as custom fields."""
        named: dict[str, list[Any]] = {}
        custom: list[tuple[str, list[str]]] = []
        for label, name, column in zip(self.header, self.fields, columns, strict=True):
            values = list(map(str.strip, column))
            if name is None:
                custom.append((label.strip(), values))
            elif name not in named:
                named[name] = values
            else:
                named[name] = [
                    v if v != "" else e for v, e in zip(values, named[name], strict=True)
                ]
        if "tags" in named:  # few distinct values: each split once, its list shared
            split: dict[str, list[str]] = {}
            named["tags"] = [
                split[v] if v in split else split.setdefault(v, _tag_list(v)) for v in named["tags"]
            ]
        if "is_organization" in named:
            named["is_organization"] = [v.lower() in _TRUE_FLAGS for v in named["is_organization"]]
        owners = named.pop("owner", None)
        if owners is not None:
            owner_id = named.setdefault("owner_id", [_ABSENT] * n)
            owner_ref = named.setdefault("owner_ref", [_ABSENT] * n)
            numeric: dict[str, bool] = {}  # (a few owners, a million rows)
            for i, owner in enumerate(owners):
                if owner != "":
                    if owner not in numeric:
                        numeric[owner] = as_int(owner) is not None
                    if numeric[owner]:
                        owner_id[i] = owner
                    else:
                        owner_ref[i] = owner
        if custom:
            labels = [label for label, _values in custom]
            found = [
                {label: v for label, v in zip(labels, row, strict=True) if v}
                for row in zip(*(values for _label, values in custom), strict=True)
            ]
            if any(found):
                previous = named.get("custom_fields", [_ABSENT] * n)
                named["custom_fields"] = [f or p for f, p in zip(found, previous, strict=True)]
        return named


def _typed(
    resource: str, named: dict[str, list[Any]], n: int, rejects: list[Reject]
) -> pd.DataFrame:
    """The typed frame of a batch's values (``named``), as ``etl.extract.sell._frame`` types
    each row's dict: integers checked (a row with a bad one, or no id, is a reject), empty
    values None, nested ones canonical JSON, the fallback name, and what the resource has no
    column for kept in ``extra``."""
    columns = COLUMNS[resource]
    known = set(columns) | {"group", "source_id"}
    bad: dict[int, str] = {}
    out: dict[str, list[Any]] = {}
    for name in columns:
        values = named.get(name)
        if name in INT_COLUMNS:
            out[name] = _integers(name, values, n, bad)
        elif values is None:
            out[name] = [None] * n
        elif name not in _NESTED:  # as read: text
            out[name] = [v or None for v in values]
        else:
            out[name] = _plain_column(values)
    for i, value in enumerate(out["id"]):
        if value is None and i not in bad:
            bad[i] = "record has no id"
    if resource in ("leads", "contacts"):
        fill_names(out)
    if resource == "contacts":
        flags = named.get("is_organization")
        out["is_organization"] = [v is True for v in flags] if flags else [False] * n
    elif resource == "leads" and "source_id" in named:
        out["source"] = [
            s if s is not None or sid is _ABSENT else str(sid)
            for s, sid in zip(out["source"], named["source_id"], strict=True)
        ]
    others = [name for name in named if name not in known]
    if others:
        out["extra"] = [_extra(named, others, i) for i in range(n)]
    if bad:
        for i in sorted(bad):
            rejects.append(Reject.of(named["source_file"][i], named["position"][i], bad[i],
                                     dump(_row(named, i)), resource[:-1]))  # fmt: skip
        keep = [i for i in range(n) if i not in bad]
        out = {name: [values[i] for i in keep] for name, values in out.items()}
    if not out["id"]:
        return finish_frame(resource, pd.DataFrame(columns=list(columns)))
    return finish_frame(resource, pd.DataFrame(out, columns=list(columns)))


def _integers(name: str, values: list[Any] | None, n: int, bad: dict[int, str]) -> list[Any]:
    """A column of integers; a value that is none (and not empty) makes its row bad, with the
    first such column named (as the record-by-record typing stops at it)."""
    if values is None:
        return [None] * n
    out: list[Any] = []
    for i, value in enumerate(values):
        if value is _ABSENT or value == "":
            out.append(None)
        elif value.isdecimal():
            out.append(int(value))
        else:
            number = as_int(value)
            if number is None and i not in bad:
                bad[i] = f"{name} is not an integer: {value!r}"
            out.append(number)
    return out


def _plain_column(values: list[Any]) -> list[Any]:
    """Empty as None, nested as canonical JSON (each shared list or dict dumped once)."""
    dumped: dict[int, str | None] = {}
    out: list[Any] = []
    for value in values:
        if type(value) is str:
            out.append(value or None)
        elif value is _ABSENT or value is None:
            out.append(None)
        elif isinstance(value, dict | list):
            key = id(value)
            if key not in dumped:
                dumped[key] = dump(value) if value else None
            out.append(dumped[key])
        else:
            out.append(value)
    return out


def _tag_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _extra(named: dict[str, list[Any]], others: list[str], i: int) -> str | None:
    found = {name: named[name][i] for name in others if named[name][i] is not _ABSENT}
    return dump(found) if found else None


def _row(named: dict[str, list[Any]], i: int) -> dict[str, Any]:
    """Row ``i`` as the dict the record-by-record typing would have had (for a reject)."""
    return {name: values[i] for name, values in named.items() if values[i] is not _ABSENT}
