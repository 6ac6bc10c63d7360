"""Zendesk Sell exports: leads, contacts, deals, users, notes and lead conversions.

Shapes: API collection pages ``{"items": [{"data": {...}, "meta": {"type": "lead"}}], ...}``
(the collection info may sit under ``meta`` or at the top level), JSON arrays and NDJSON of plain
records, and CSV Smart List exports whose header row holds UI labels. A record's resource is its
item's ``meta.type``, else the file name (``leads*``, ``contacts*``, ...), else its content.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from etl.extract.files import SourceFile, sell_kind_from_name
from etl.extract.jsondoc import iter_values
from etl.extract.rejects import Reject
from etl.extract.sellcsv import csv_frames
from etl.extract.sellrecords import (
    COLUMNS,
    FRAME_ROWS,
    INT_COLUMNS,
    RESOURCES,
    as_int,
    dump,
    finish_frame,
    value_of,
)
from etl.text import person_name

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
        rows: dict[str, list[dict[str, Any]]] = {name: [] for name in RESOURCES}
        for item in _iter_json(source):
            if isinstance(item, Reject):
                rejects.append(item)
                continue
            resource, row = item
            held = rows[resource]
            held.append(row)
            if len(held) >= FRAME_ROWS:  # a file of a million records, a frame at a time
                rows[resource] = []
                yield resource, _frame(resource, held, rejects)
        for name in RESOURCES:
            if rows[name]:
                yield name, _frame(name, rows.pop(name), rejects)


def empty_frame(resource: str) -> pd.DataFrame:
    """A resource's frame with its columns and dtypes, and no rows."""
    return _frame(resource, [], [])


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


def _iter_json(source: SourceFile) -> Iterator[tuple[str, dict[str, Any]] | Reject]:
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
        for index, element in enumerate(elements, start=1):
            where = f"{prefix}record {index}" if len(elements) > 1 or not prefix else prefix.strip()
            yield _typed(source, where, element, name_kind)


def _typed(
    source: SourceFile, position: str, element: Any, name_kind: str | None
) -> tuple[str, dict[str, Any]] | Reject:
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
    row = dict(record)
    row["source_file"] = source.name
    row["position"] = position
    return resource, row


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


def _frame(resource: str, rows: list[dict[str, Any]], rejects: list[Reject]) -> pd.DataFrame:
    columns = COLUMNS[resource]
    known = set(columns) | {"group", "source_id"}
    int_columns = [c for c in columns if c in INT_COLUMNS]
    plain_columns = [c for c in columns if c not in INT_COLUMNS]
    typed_rows = []
    for row in rows:
        values: dict[str, Any] = {}
        bad = None
        for name in int_columns:
            value = row.get(name)
            if name == "group_id" and type(row.get("group")) is dict:
                value = row["group"].get("id")
            number = value if type(value) is int else as_int(value)
            if number is None and value is not None and value != "":
                bad = f"{name} is not an integer: {value!r}"
                break
            values[name] = number
        if bad is None and values.get("id") is None:
            bad = "record has no id"
        if bad is not None:
            rejects.append(
                Reject.of(row["source_file"], row["position"], bad, dump(row), resource[:-1])
            )
            continue
        for name in plain_columns:
            value = row.get(name)
            values[name] = value if type(value) is str and value else value_of(value)
        if resource == "users":
            group = row.get("group") if isinstance(row.get("group"), dict) else {}
            values["group_name"] = value_of(row.get("group_name") or group.get("name"))
        elif resource in ("leads", "contacts") and not values.get("name"):
            values["name"] = person_name(
                values.get("first_name"), values.get("last_name")
            ) or values.get("organization_name")
        if resource == "contacts":
            values["is_organization"] = bool(row.get("is_organization"))
        elif (
            resource == "leads"
            and values.get("source") is None
            and row.get("source_id") is not None
        ):
            values["source"] = str(row["source_id"])
        if len(row) > len(known) or not known.issuperset(row):
            extra = {k: v for k, v in row.items() if k not in known}
            values["extra"] = dump(extra) if extra else None
        typed_rows.append(values)
    frame = (
        pd.DataFrame.from_records(typed_rows, columns=list(columns))
        if typed_rows
        else pd.DataFrame(columns=list(columns))
    )
    return finish_frame(resource, frame)
