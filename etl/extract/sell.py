"""Zendesk Sell exports: leads, contacts, deals, users, notes and lead conversions.

Shapes: API collection pages ``{"items": [{"data": {...}, "meta": {"type": "lead"}}], ...}``
(the collection info may sit under ``meta`` or at the top level), JSON arrays and NDJSON of plain
records, and CSV Smart List exports whose header row holds UI labels. A record's resource is its
item's ``meta.type``, else the file name (``leads*``, ``contacts*``, ...), else its content.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import pandas as pd

from etl.extract.files import SourceFile, sell_kind_from_name
from etl.extract.jsondoc import iter_values
from etl.extract.rejects import Reject
from etl.extract.sellcsv import csv_frames
from etl.extract.sellrecords import (
    ABSENT,
    COLUMNS,
    FRAME_ROWS,
    INT_COLUMNS,
    KNOWN,
    RESOURCES,
    as_int,
    dump,
    fill_names,
    finish_frame,
    plain_column,
    value_of,
)

_META_TYPES = {
    "lead": "leads",
    "contact": "contacts",
    "deal": "deals",
    "user": "users",
    "note": "notes",
    "lead_conversion": "lead_conversions",
}

DEFAULT_CSV_LABELS: dict[str, str] = {
    "Id": "id",
    "Name": "name",
    "First Name": "first_name",
    "Last Name": "last_name",
    "Company Name": "organization_name",
    "Email": "email",
    "Phone": "phone",
    "Mobile": "mobile",
    "Owner": "owner",
    "Status": "status",
    "Source": "source",
    "Tags": "tags",
    "Title": "title",
    "Is Organization": "is_organization",
    "Type": "is_organization",
    "Company Id": "contact_id",
    "Contact Id": "contact_id",
    "Organization Id": "organization_id",
    "Value": "value",
    "Currency": "currency",
    "Created At": "created_at",
    "Updated At": "updated_at",
    "Role": "role",
    "Team": "team_name",
    "Team Name": "team_name",
    "Group": "group_name",
}


@dataclass(slots=True)
class SellExtract:
    """Every Sell record read, one frame per resource, and what could not be read."""

    frames: dict[str, pd.DataFrame]
    rejects: list[Reject] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            name: len(frame) for name, frame in self.frames.items() if name != "notes" or len(frame)
        }


def read_sell(
    files: Iterable[SourceFile],
    csv_labels: Mapping[str, str] | None = None,
    encoding: str | None = None,
) -> SellExtract:
    """Read Sell export files into one frame per resource (the same id twice: the newest wins)."""
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in RESOURCES}
    rejects: list[Reject] = []
    for resource, frame in iter_sell_frames(files, rejects, csv_labels, encoding):
        parts[resource].append(frame)
    frames = {
        name: newest(parts.pop(name)) if parts[name] else empty_frame(name) for name in RESOURCES
    }
    return SellExtract(frames, rejects)


def iter_sell_frames(
    files: Iterable[SourceFile],
    rejects: list[Reject],
    csv_labels: Mapping[str, str] | None = None,
    encoding: str | None = None,
) -> Iterator[tuple[str, pd.DataFrame]]:
    """(resource, typed frame) for each resource of each file, one file at a time and at most
    ``FRAME_ROWS`` rows a frame; what cannot be read goes to ``rejects``. Within a frame an id is
    unique (its newest version); across frames (of a file or of several), ``newest`` decides."""
    labels = {k.strip().lower(): v for k, v in {**DEFAULT_CSV_LABELS, **(csv_labels or {})}.items()}
    for source in files:  # one file's raw records at a time: typed frames are far smaller
        if source.is_csv:
            yield from csv_frames(source, labels, encoding, rejects)
            continue
        held: dict[str, tuple[list[dict[str, Any]], list[str]]] = {}
        for item in _iter_json(source):
            if isinstance(item, Reject):
                rejects.append(item)
                continue
            resource, batch, where = item
            records, positions = held.setdefault(resource, ([], []))
            records.extend(batch)
            positions.extend(where)
            while len(records) >= FRAME_ROWS:  # a file of a million records, a frame at a time
                full, records, positions = (
                    (records[:FRAME_ROWS], positions[:FRAME_ROWS]),
                    records[FRAME_ROWS:],
                    positions[FRAME_ROWS:],
                )
                held[resource] = (records, positions)
                yield resource, records_frame(resource, *full, source.name, rejects)
        for name in RESOURCES:
            if held.get(name, ((),))[0]:
                records, positions = held.pop(name)
                yield name, records_frame(name, records, positions, source.name, rejects)


def empty_frame(resource: str) -> pd.DataFrame:
    """A resource's frame with its columns and dtypes, and no rows."""
    return finish_frame(resource, pd.DataFrame(columns=list(COLUMNS[resource])))


def newest(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per id across files: the newest ``updated_at``, then the highest hash.

    Takes the list's frames (it is emptied): at a million records the per-file frames, their
    concatenation and its sorted copy would otherwise be held at once.
    """
    if len(frames) == 1:
        return frames.pop()
    frame = pd.concat(frames, ignore_index=True)
    frames.clear()
    if frame["id"].is_unique:  # the usual snapshot: each record in one file; order by id only
        order = frame["id"].to_numpy(dtype="int64").argsort(kind="stable")
        return frame.take(order).reset_index(drop=True)
    frame = frame.sort_values(["id", "updated_at", "sell_hash"], na_position="first", kind="stable")
    return frame.drop_duplicates("id", keep="last").reset_index(drop=True)


def _iter_json(
    source: SourceFile,
) -> Iterator[tuple[str, list[dict[str, Any]], list[str]] | Reject]:
    """(resource, records, their positions) of a JSON file, in file order, or a reject: an
    API page of one resource's items at once, any other value record by record."""
    name_kind = sell_kind_from_name(source)
    for item in iter_values(source, (name_kind or "records").removesuffix("s")):
        if isinstance(item, Reject):
            yield item
            continue
        position, value = item
        prefix = "" if position == "document" else f"{position} "
        if isinstance(value, dict) and isinstance(value.get("items"), list):
            elements = value["items"]
        elif isinstance(value, list):
            elements = value
        else:
            elements = [value]
        if len(elements) > 1 or not prefix:
            wheres = [f"{prefix}record {index}" for index in range(1, len(elements) + 1)]
        else:
            wheres = [prefix.strip()]
        page = _page(elements)
        if page is not None:
            yield page[0], page[1], wheres
            continue
        for element, where in zip(elements, wheres, strict=True):
            located = _located(source, where, element, name_kind)
            yield located if isinstance(located, Reject) else (located[0], [located[1]], [where])


def _page(elements: list[Any]) -> tuple[str, list[dict[str, Any]]] | None:
    """(resource, records) of the usual page: each item ``{"data": {...}, "meta": {"type":
    ...}}`` of one resource; None for anything else (``_located`` reads it item by item)."""
    try:
        kinds = {element["meta"]["type"] for element in elements}
        records = [element["data"] for element in elements]
    except (KeyError, TypeError, IndexError):
        return None
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    resource = _META_TYPES.get(kind) if type(kind) is str else None
    if resource is None or not all(type(record) is dict for record in records):
        return None
    return resource, records


def _located(
    source: SourceFile, position: str, element: Any, name_kind: str | None
) -> tuple[str, dict[str, Any]] | Reject:
    """``element``'s resource and record, or a reject (any shape of item)."""
    if not isinstance(element, dict):
        return Reject.of(
            source.name, position, "record is not a JSON object", dump(element), "record"
        )
    meta = element.get("meta") if isinstance(element.get("meta"), dict) else {}
    data = element.get("data") if isinstance(element.get("data"), dict) else None
    record = data if data is not None else element
    resource = (
        _META_TYPES.get(str(meta.get("type", "")).lower()) or name_kind or _kind_by_content(record)
    )
    if resource is None:
        return Reject.of(
            source.name,
            position,
            "cannot tell the Sell resource of this record",
            dump(element),
            "record",
        )
    return resource, record


def records_frame(
    resource: str,
    records: list[dict[str, Any]],
    positions: list[str],
    source_name: str,
    rejects: list[Reject],
) -> pd.DataFrame:
    """The typed frame of JSON records, column by column (``tests/sell_oracle.py`` types them
    record by record, as this reader once did, to hold it to the same frames):
    integers checked (a record with a bad one, or no id, is a reject), empty values None,
    nested ones canonical JSON, the fallback name, and what has no column kept in ``extra``."""
    n = len(records)
    named: dict[str, Sequence[Any]] = _by_key(records)
    named["source_file"] = [source_name] * n
    named["position"] = positions
    columns = COLUMNS[resource]
    bad: dict[int, str] = {}
    out: dict[str, list[Any]] = {}
    groups = named.get("group") if resource == "users" else None
    for name in columns:
        values = named.get(name)
        if name == "group_id" and groups is not None:
            values = [
                g.get("id") if type(g) is dict else v
                for g, v in zip(groups, values or [None] * n, strict=True)
            ]
        if name in INT_COLUMNS:
            out[name] = _integers(name, values, n, bad)
        elif values is None:
            out[name] = [None] * n
        else:
            out[name] = plain_column(values)
    for i in [i for i, value in enumerate(out["id"]) if value is None]:
        bad.setdefault(i, "record has no id")
    if resource == "users":
        out["group_name"] = _group_names(named.get("group_name"), groups, n)
    elif resource in ("leads", "contacts"):
        fill_names(out, bad)
    if resource == "contacts":
        flags = named.get("is_organization")
        out["is_organization"] = (
            [v is not ABSENT and bool(v) for v in flags] if flags else [False] * n
        )
    elif resource == "leads" and "source_id" in named:
        out["source"] = [
            s if s is not None or sid is ABSENT or sid is None else str(sid)
            for s, sid in zip(out["source"], named["source_id"], strict=True)
        ]
    others = [name for name in named if name not in KNOWN[resource]]
    if others:  # a record with a key of its own keeps them all in ``extra``
        extras = out["extra"]
        for i, values in enumerate(zip(*(named[k] for k in others), strict=True)):
            found = {k: v for k, v in zip(others, values, strict=True) if v is not ABSENT}
            if found:
                extras[i] = dump(found)
    if bad:
        for i in sorted(bad):
            row = {k: values[i] for k, values in named.items() if values[i] is not ABSENT}
            rejects.append(Reject.of(source_name, positions[i], bad[i], dump(row), resource[:-1]))
        keep = [i for i in range(n) if i not in bad]
        out = {name: [values[i] for i in keep] for name, values in out.items()}
    if not out["id"]:
        return finish_frame(resource, pd.DataFrame(columns=list(columns)))
    return finish_frame(resource, pd.DataFrame(out, columns=list(columns)))


def _by_key(records: list[dict[str, Any]]) -> dict[str, Sequence[Any]]:
    """The records' values by key (``ABSENT`` where a record has no such key)."""
    keys = sorted(set().union(*records))
    if keys and all(len(record) == len(keys) for record in records):  # each has every key
        if len(keys) == 1:
            return {keys[0]: [record[keys[0]] for record in records]}
        columns = zip(*map(itemgetter(*keys), records), strict=True)
        return dict(zip(keys, columns, strict=True))
    return {k: [record.get(k, ABSENT) for record in records] for k in keys}


def _integers(name: str, values: Sequence[Any] | None, n: int, bad: dict[int, str]) -> list[Any]:
    """A column of integers (int as it is, else ``as_int``); a value that is none, and not
    empty, makes its row bad, with the first such column named (as the record-by-record typing stopped at it)."""
    if values is None:
        return [None] * n
    out = [v if type(v) is int else None for v in values]
    if None not in out:
        return out
    for i in [i for i, number in enumerate(out) if number is None]:
        value = values[i]
        if value is None or value is ABSENT or value == "":
            continue
        number = as_int(value)
        if number is None:
            bad.setdefault(i, f"{name} is not an integer: {value!r}")
        out[i] = number
    return out


def _group_names(names: Sequence[Any] | None, groups: Sequence[Any] | None, n: int) -> list[Any]:
    """A user's group name: its own, else its group's."""
    names = names or [ABSENT] * n
    groups = groups or [ABSENT] * n
    return [
        value_of(
            (name if name is not ABSENT and name else None)
            or (group.get("name") if isinstance(group, dict) else None)
        )
        for name, group in zip(names, groups, strict=True)
    ]


def _kind_by_content(record: dict[str, Any]) -> str | None:
    keys = record.keys()
    if "resource_type" in keys and "content" in keys:
        return "notes"
    if "lead_id" in keys and ("individual_id" in keys or "deal_id" in keys):
        return "lead_conversions"
    if "stage_id" in keys or ("value" in keys and "currency" in keys):
        return "deals"
    if keys & {"is_organization", "customer_status", "prospect_status"}:
        return "contacts"
    if keys & {"team_name", "roles", "confirmed", "role"}:
        return "users"
    if keys & {"first_name", "last_name", "organization_name"} and "status" in keys:
        return "leads"
    return None
