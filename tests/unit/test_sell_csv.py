"""The CSV reader types column by column (``etl.extract.sellcsv``); what it gives must be what
the record-by-record typing (``tests/sell_oracle.py``, the JSON path's) gives each row as a
dict. The dicts here are built as the CSV reader built them before it went columnar, so any
difference in a value, a dtype, a reject or its text fails."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest
from sell_oracle import typed_frame

from etl.extract import sellcsv
from etl.extract.files import discover
from etl.extract.sell import DEFAULT_CSV_LABELS, iter_sell_frames, newest
from etl.extract.sellrecords import as_int

EXTRA_LABELS = {"Source Id": "source_id", "Team": "team_name", "E-mail": "email"}
LABELS = {k.strip().lower(): v for k, v in {**DEFAULT_CSV_LABELS, **EXTRA_LABELS}.items()}


def _rows_as_dicts(name: str, text: str) -> tuple[str, list[dict]]:
    """The rows as the row-by-row reader made them: the oracle."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    fields = [LABELS.get(label.strip().lower()) for label in header]
    resource = name.rsplit("/", 1)[-1].split(".")[0]
    rows = []
    for values in reader:
        if not any(v.strip() for v in values) or len(values) != len(header):
            continue
        row, custom = {}, {}
        for label, field, value in zip(header, fields, values, strict=True):
            value = value.strip()
            if field is None:
                if value:
                    custom[label.strip()] = value
            elif value != "" or field not in row:
                row[field] = value
        if "tags" in row:
            row["tags"] = [t.strip() for t in str(row["tags"]).split(",") if t.strip()]
        if "is_organization" in row:
            flag = str(row["is_organization"]).strip().lower()
            row["is_organization"] = flag in (
                "1", "true", "yes", "company", "organization", "organisation"
            )  # fmt: skip
        owner = row.pop("owner", None)
        if owner not in (None, ""):
            row["owner_id" if as_int(owner) is not None else "owner_ref"] = owner
        if custom:
            row["custom_fields"] = custom
        row["source_file"] = name
        row["position"] = f"line {reader.line_num}"
        rows.append(row)
    return resource, rows


LEADS = """\
Id,Name,First Name,Last Name,Company Name,Email,E-mail,Phone,Owner,Status,Tags,Source Id,Role,Industry,Industry,Created At,Updated At
1,,Hanako,Yamada,Acme,hanako@example.jp,,+81 3,101,New,"vip, 2026 ,,",,,Retail,,2026-01-02T03:04:05Z,2026-02-02T00:00:00Z
2, Ann Lee ,Ann,Lee,,  ann@example.com ,ann2@example.com,,ops@example.com,,,7,admin,,Food,2026-01-02,
3,,,,Solo Corp,,,,,,,,,,,,
4,,太郎,山田,,taro@example.jp,,,,Won,x,,,,,,2026-03-01T00:00:00+09:00
x9,,Bad,Id,,,,,,,,,,,,,
,,No,Id,,,,,,,,,,,,,
5,,,,,,,,12.0,,,,,,,,
6,,,,,,,,-3,,,,,,,,
7,,Dup,Old,,dup@example.com,,,,,,,,,,2026-01-01T00:00:00Z,2026-01-01T00:00:00Z
7,,Dup,New,,dup@example.com,,,,,,,,,,2026-01-01T00:00:00Z,2026-05-01T00:00:00Z
8,,Sup,Erscript,,,,,²,,,,,,,,
  ,  ,  ,  ,  ,  ,  ,  ,  ,  ,  ,  ,  ,  ,  ,  ,
"""

CONTACTS = """\
Id,Name,Is Organization,Type,Contact Id,Email,Owner,Customer Status,Tags
10,Acme,1,,,info@acme.example,101,,
11,,,person,10,p@acme.example,Jane,active,a
12,Org2,,company,,,,,
13,,no,,bad,,,,
"""

USERS = """\
Id,Name,Email,Role,Team,Group,Status,Owner
101,Owner One,o1@example.com,admin,East,Sales,active,5
102,Owner Two,o2@example.com,user,,,inactive,
"""


@pytest.mark.parametrize(
    ("name", "text"),
    [("leads.csv", LEADS), ("contacts.csv", CONTACTS), ("users.csv", USERS)],
)
@pytest.mark.parametrize("frame_rows", [50_000, 3])
def test_columnar_csv_types_each_row_as_the_record_typing_does(
    tmp_path, monkeypatch, name, text, frame_rows
):
    monkeypatch.setattr(sellcsv, "FRAME_ROWS", frame_rows)
    (tmp_path / name).write_text(text, encoding="utf-8")
    rejects: list = []
    frames = list(iter_sell_frames(discover(tmp_path), rejects, EXTRA_LABELS))
    resource, dicts = _rows_as_dicts(str(tmp_path / name), text)
    expected_rejects: list = []
    expected = typed_frame(resource, dicts, expected_rejects)
    assert {r for r, _f in frames} == {resource}
    # one frame, or several (the newest version of an id across them, as a run keeps it)
    got = newest([f for _r, f in frames])
    # (frames joined from several batches, as from several files, may hold a column of text
    # as object where one frame infers strings: the values are what count)
    got = got.reset_index(drop=True)
    if frame_rows > len(dicts):
        pd.testing.assert_frame_equal(got, expected, check_dtype=True)
    else:
        pd.testing.assert_frame_equal(_plain(got), _plain(expected))
    assert expected_rejects or resource != "leads"  # the oracle itself sets rows aside
    assert sorted((r.position, r.reason, r.raw) for r in rejects) == sorted(
        (r.position, r.reason, r.raw) for r in expected_rejects
    )


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(object).where(frame.notna(), None)


def test_the_typed_values_themselves(tmp_path):
    (tmp_path / "leads.csv").write_text(LEADS, encoding="utf-8")
    rejects: list = []
    [(_resource, frame)] = list(iter_sell_frames(discover(tmp_path), rejects, EXTRA_LABELS))
    by_id = frame.set_index("id")
    assert by_id.at[1, "name"] == "Hanako Yamada" and by_id.at[4, "name"] == "山田 太郎"
    assert by_id.at[3, "name"] == "Solo Corp"
    assert by_id.at[1, "tags"] == '["vip","2026"]' and by_id.at[1, "owner_id"] == 101
    assert by_id.at[2, "email"] == "ann2@example.com"  # the later of two labels when not empty
    assert by_id.at[1, "email"] == "hanako@example.jp"  # the earlier when the later is empty
    assert by_id.at[2, "owner_ref"] == "ops@example.com" and by_id.at[2, "source"] == "7"
    assert by_id.at[2, "extra"] == '{"role":"admin"}'
    assert by_id.at[1, "custom_fields"] == '{"Industry":"Retail"}'
    assert by_id.at[2, "custom_fields"] == '{"Industry":"Food"}'  # the later label's value
    assert by_id.at[5, "owner_id"] == 12 and by_id.at[6, "owner_id"] == -3
    assert by_id.at[7, "last_name"] == "New"  # the newest version of a repeated id
    assert sorted((r.position, r.reason) for r in rejects) == [
        ("line 6", "id is not an integer: 'x9'"),
        ("line 7", "record has no id"),
    ]
    assert by_id.at[8, "owner_ref"] == "²"  # not a number, though isdigit() says it is
