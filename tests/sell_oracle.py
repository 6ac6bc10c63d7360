"""The Sell JSON typing as it was, record by record: the oracle the tests hold the columnar
reader (``etl.extract.sell.records_frame``) and the CSV reader's rows to.

Kept here, not in ``etl``, because nothing runs it any more: any difference in a value, a dtype
or a reject between this and the readers is a change of behaviour.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from etl.extract.rejects import Reject
from etl.extract.sellrecords import COLUMNS, INT_COLUMNS, as_int, dump, finish_frame, value_of
from etl.text import person_name


def typed_frame(resource: str, rows: list[dict[str, Any]], rejects: list[Reject]) -> pd.DataFrame:
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
