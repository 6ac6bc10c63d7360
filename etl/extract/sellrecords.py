"""What a Sell record is once typed, whatever file it came from: each resource's columns, the
integer and time columns, and how a frame of typed values is finished (``finish_frame``). The
JSON reader (``etl.extract.sell``) types record by record, the CSV reader
(``etl.extract.sellcsv``) column by column; both end here, so a record reads the same from
either."""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any

import orjson
import pandas as pd

from etl.extract.timestamps import parse_utc
from etl.hashing import content_hash
from etl.text import CJK, person_name
from etl.vocab import SELL_RESOURCES

RESOURCES = SELL_RESOURCES
# rows typed into one frame: a file's rows are held as dicts only this many at a time
FRAME_ROWS = 50_000
TAIL = ("extra", "sell_hash", "source_file", "position")
PARTY = (
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
        "organization_name", "status", "source", *PARTY, *TAIL,
    ),
    "contacts": (
        "id", "owner_id", "owner_ref", "creator_id", "is_organization", "contact_id", "name",
        "first_name", "last_name", "organization_name", "customer_status", "prospect_status",
        *PARTY, *TAIL,
    ),
    "deals": (
        "id", "owner_id", "owner_ref", "creator_id", "name", "value", "currency", "stage_id",
        "contact_id", "organization_id", "hot", "tags", "custom_fields", "created_at",
        "updated_at", *TAIL,
    ),
    "users": (
        "id", "name", "email", "status", "role", "team_name", "group_id", "group_name",
        "created_at", "updated_at", *TAIL,
    ),
    "notes": (
        "id", "resource_type", "resource_id", "creator_id", "content", "created_at", "updated_at",
        *TAIL,
    ),
    "lead_conversions": (
        "id", "lead_id", "individual_id", "organization_id", "deal_id", "created_at", *TAIL,
    ),
}  # fmt: skip
INT_COLUMNS = {
    "id", "owner_id", "creator_id", "contact_id", "organization_id", "stage_id", "group_id",
    "resource_id", "lead_id", "individual_id", "deal_id",
}  # fmt: skip
JSON_COLUMNS = {"tags", "custom_fields", "address", "extra"}
TIME_COLUMNS = {"created_at", "updated_at"}
# what a record may hold beyond its resource's columns without it going to ``extra``
KNOWN: dict[str, frozenset[str]] = {
    name: frozenset({*columns, "group", "source_id"}) for name, columns in COLUMNS.items()
}
ABSENT = object()  # a key a record does not have (as opposed to an empty value)
_TEXT_TYPES = frozenset({str, type(None)})


def finish_frame(resource: str, frame: pd.DataFrame) -> pd.DataFrame:
    """A resource's typed values (``COLUMNS``) as its frame: times parsed, integer columns
    nullable, each row's ``sell_hash``, one row per id (its newest version)."""
    columns = COLUMNS[resource]
    int_columns = [c for c in columns if c in INT_COLUMNS]
    for name in TIME_COLUMNS & set(columns):
        frame[name] = parse_utc(frame[name])
    for name in int_columns:
        frame[name] = frame[name].astype("Int64")
    frame["sell_hash"] = content_hash(frame[[c for c in columns if c not in TAIL]])
    if frame.empty:
        return frame
    if not frame["id"].hasnans:  # (a row without an id is a reject)
        ids = frame["id"].to_numpy(dtype="int64")
        order = ids.argsort(kind="stable")
        ordered = ids[order]
        if (ordered[1:] != ordered[:-1]).all():  # each id once, the usual file: the order of
            return frame.take(order).reset_index(drop=True)  # the sort below, by id alone
    frame = frame.sort_values(["id", "updated_at", "sell_hash"], na_position="first", kind="stable")
    return frame.drop_duplicates("id", keep="last").reset_index(drop=True)


def fill_names(out: dict[str, list[Any]], skip: Container[int] = ()) -> None:
    """A lead's or contact's name where it has none (rows in ``skip`` left be): the person's
    (``person_name``), else the organization's."""
    names = out["name"]
    todo = [i for i, name in enumerate(names) if not name and i not in skip]
    if not todo:
        return
    firsts = [out["first_name"][i] for i in todo]
    lasts = [out["last_name"][i] for i in todo]
    orgs = [out["organization_name"][i] for i in todo]
    text = set(map(type, firsts)) | set(map(type, lasts)) <= _TEXT_TYPES
    if text and not CJK.search("".join(filter(None, firsts)) + "".join(filter(None, lasts))):
        # no CJK name among them: "first last", as person_name joins it (the usual batch)
        for i, first, last, org in zip(todo, firsts, lasts, orgs, strict=True):
            names[i] = (f"{first} {last}" if first and last else first or last) or org
        return
    for i, first, last, org in zip(todo, firsts, lasts, orgs, strict=True):
        names[i] = person_name(first, last) or org


def plain_column(values: Sequence[Any]) -> list[Any]:
    """``value_of`` over a column of values (``ABSENT`` as None), each shared list or dict
    dumped once."""
    if set(map(type, values)) <= _TEXT_TYPES:  # the usual column: text and nulls
        return [value or None for value in values] if "" in values else list(values)
    dumped: dict[int, str | None] = {}
    return [
        (value or None) if type(value) is str
        else None if value is None or value is ABSENT
        else _plain(value, dumped)
        for value in values
    ]  # fmt: skip


def _plain(value: Any, dumped: dict[int, str | None]) -> Any:
    if isinstance(value, dict | list):
        if not value:
            return None
        key = id(value)
        if key not in dumped:
            dumped[key] = dump(value)
        return dumped[key]
    return value_of(value)


def value_of(value: Any) -> Any:
    """Nested values (tags, custom fields, address) as canonical JSON text; "" as None."""
    if isinstance(value, dict | list):
        return dump(value) if value else None
    if value == "":
        return None
    return value


def as_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = str(value).strip()
    if text.endswith(".0"):
        text = text[:-2]
    if text.lstrip("-").isdecimal():  # (isdigit takes "²", which int() refuses)
        return int(text)
    return None


def dump(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return repr(value)
