"""Zendesk Sell exports: leads, contacts, deals, users, notes and lead conversions.

Shapes: API collection pages ``{"items": [{"data": {...}, "meta": {"type": "lead"}}], ...}``
(the collection info may sit under ``meta`` or at the top level), JSON arrays and NDJSON of plain
records, and CSV Smart List exports whose header row holds UI labels. A record's resource is its
item's ``meta.type``, else the file name (``leads*``, ``contacts*``, ...), else its content.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import pandas as pd

from etl.extract.files import SourceFile, decode_text, read_bytes, sell_kind_from_name
from etl.extract.jsondoc import iter_values
from etl.extract.rejects import Reject
from etl.extract.timestamps import parse_utc
from etl.hashing import content_hash
from etl.text import person_name

RESOURCES = ("leads", "contacts", "deals", "users", "notes", "lead_conversions")
_META_TYPES = {
    "lead": "leads",
    "contact": "contacts",
    "deal": "deals",
    "user": "users",
    "note": "notes",
    "lead_conversion": "lead_conversions",
}
_TAIL = ("extra", "sell_hash", "source_file", "position")
_PARTY = (
    "email",
    "phone",
    "mobile",
    "title",
    "tags",
    "custom_fields",
    "address",
    "created_at",
    "updated_at",
)
COLUMNS: dict[str, tuple[str, ...]] = {
    "leads": (
        "id", "owner_id", "owner_ref", "creator_id", "first_name", "last_name", "name",
        "organization_name", "status", "source", *_PARTY, *_TAIL,
    ),
    "contacts": (
        "id", "owner_id", "owner_ref", "creator_id", "is_organization", "contact_id", "name",
        "first_name", "last_name", "organization_name", "customer_status", "prospect_status",
        *_PARTY, *_TAIL,
    ),
    "deals": (
        "id", "owner_id", "owner_ref", "creator_id", "name", "value", "currency", "stage_id",
        "contact_id", "organization_id", "hot", "tags", "custom_fields", "created_at",
        "updated_at", *_TAIL,
    ),
    "users": (
        "id", "name", "email", "status", "role", "team_name", "group_id", "group_name",
        "created_at", "updated_at", *_TAIL,
    ),
    "notes": (
        "id", "resource_type", "resource_id", "creator_id", "content", "created_at", "updated_at",
        *_TAIL,
    ),
    "lead_conversions": (
        "id", "lead_id", "individual_id", "organization_id", "deal_id", "created_at", *_TAIL,
    ),
}  # fmt: skip
_INT_COLUMNS = {
    "id", "owner_id", "creator_id", "contact_id", "organization_id", "stage_id", "group_id",
    "resource_id", "lead_id", "individual_id", "deal_id",
}  # fmt: skip
_JSON_COLUMNS = {"tags", "custom_fields", "address", "extra"}
_TIME_COLUMNS = {"created_at", "updated_at"}

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
    """(resource, typed frame) for each resource of each file, one file at a time; what cannot
    be read goes to ``rejects``. Within a frame an id is unique (its newest version)."""
    labels = {k.strip().lower(): v for k, v in {**DEFAULT_CSV_LABELS, **(csv_labels or {})}.items()}
    for source in files:  # one file's raw records at a time: typed frames are far smaller
        rows: dict[str, list[dict[str, Any]]] = {name: [] for name in RESOURCES}
        items = _iter_csv(source, labels, encoding) if source.is_csv else _iter_json(source)
        for item in items:
            if isinstance(item, Reject):
                rejects.append(item)
                continue
            resource, row = item
            rows[resource].append(row)
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
            source.name, position, "record is not a JSON object", _dump(element), "record"
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
            _dump(element),
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


def _iter_csv(
    source: SourceFile, labels: Mapping[str, str], encoding: str | None
) -> Iterator[tuple[str, dict[str, Any]] | Reject]:
    try:
        text, _used = decode_text(read_bytes(source.path), encoding)
    except (OSError, LookupError, UnicodeDecodeError) as exc:
        yield Reject.of(source.name, "file", f"cannot read CSV: {exc}", kind="file")
        return
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        return
    fields = [labels.get(label.strip().lower()) for label in header]
    resource = sell_kind_from_name(source) or _csv_kind(fields)
    if resource is None:
        yield Reject.of(
            source.name,
            "line 1",
            "cannot tell the Sell resource of this CSV; name it leads*.csv, contacts*.csv, deals*.csv or users*.csv",
            ",".join(header),
            "file",
        )
        return
    row_no = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            row_no += 1
            yield Reject.of(
                source.name, f"line {reader.line_num}", f"malformed CSV: {exc}", "", resource[:-1]
            )
            continue
        row_no += 1
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            yield Reject.of(
                source.name,
                f"line {reader.line_num}",
                f"{len(values)} fields where the header has {len(header)}",
                ",".join(values),
                resource[:-1],
            )
            continue
        row: dict[str, Any] = {}
        custom: dict[str, str] = {}
        for label, name, value in zip(header, fields, values, strict=True):
            value = value.strip()
            if name is None:
                if value:
                    custom[label.strip()] = value
            elif value != "" or name not in row:
                row[name] = value
        _csv_values(row)
        if custom:
            row["custom_fields"] = custom
        row["source_file"] = source.name
        row["position"] = f"line {reader.line_num}"
        yield resource, row


def _csv_kind(fields: list[str | None]) -> str | None:
    present = set(fields)
    if "is_organization" in present:
        return "contacts"
    if {"value", "currency"} & present:
        return "deals"
    if "role" in present or "team_name" in present:
        return "users"
    return None


def _csv_values(row: dict[str, Any]) -> None:
    """CSV text into the API's types: tags to a list, Type/Is Organization to a bool, owner."""
    if "tags" in row:
        row["tags"] = [t.strip() for t in str(row["tags"]).split(",") if t.strip()]
    if "is_organization" in row:
        flag = str(row["is_organization"]).strip().lower()
        row["is_organization"] = flag in (
            "1",
            "true",
            "yes",
            "company",
            "organization",
            "organisation",
        )
    owner = row.pop("owner", None)
    if owner not in (None, ""):
        if _as_int(owner) is not None:
            row["owner_id"] = owner
        else:
            row["owner_ref"] = owner


def _frame(resource: str, rows: list[dict[str, Any]], rejects: list[Reject]) -> pd.DataFrame:
    columns = COLUMNS[resource]
    known = set(columns) | {"group", "source_id"}
    int_columns = [c for c in columns if c in _INT_COLUMNS]
    plain_columns = [c for c in columns if c not in _INT_COLUMNS]
    typed_rows = []
    for row in rows:
        values: dict[str, Any] = {}
        bad = None
        for name in int_columns:
            value = row.get(name)
            if name == "group_id" and type(row.get("group")) is dict:
                value = row["group"].get("id")
            number = value if type(value) is int else _as_int(value)
            if number is None and value is not None and value != "":
                bad = f"{name} is not an integer: {value!r}"
                break
            values[name] = number
        if bad is None and values.get("id") is None:
            bad = "record has no id"
        if bad is not None:
            rejects.append(
                Reject.of(row["source_file"], row["position"], bad, _dump(row), resource[:-1])
            )
            continue
        for name in plain_columns:
            value = row.get(name)
            values[name] = value if type(value) is str and value else _value(value)
        if resource == "users":
            group = row.get("group") if isinstance(row.get("group"), dict) else {}
            values["group_name"] = _value(row.get("group_name") or group.get("name"))
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
            values["extra"] = _dump(extra) if extra else None
        typed_rows.append(values)
    frame = (
        pd.DataFrame.from_records(typed_rows, columns=list(columns))
        if typed_rows
        else pd.DataFrame(columns=list(columns))
    )
    for name in _TIME_COLUMNS & set(columns):
        frame[name] = parse_utc(frame[name])
    for name in int_columns:
        frame[name] = frame[name].astype("Int64")
    frame["sell_hash"] = content_hash(frame[[c for c in columns if c not in _TAIL]])
    if not frame.empty:
        frame = frame.sort_values(
            ["id", "updated_at", "sell_hash"], na_position="first", kind="stable"
        )
        frame = frame.drop_duplicates("id", keep="last").reset_index(drop=True)
    return frame


def _value(value: Any) -> Any:
    """Nested values (tags, custom fields, address) as canonical JSON text; "" as None."""
    if isinstance(value, dict | list):
        return _dump(value) if value else None
    if value == "":
        return None
    return value


def _as_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = str(value).strip()
    if text.endswith(".0"):
        text = text[:-2]
    if text.lstrip("-").isdigit():
        return int(text)
    return None


def _dump(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return repr(value)
