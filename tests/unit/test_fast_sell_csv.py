"""The Sell CSV reader takes the usual row (all the header's fields, text in the first) with
one test and looks closer only at the others; the rows it reads, sets aside and skips, and the
lines it names, must be those of the row-by-row checks it replaced (the oracle below)."""

from __future__ import annotations

import csv
import io

import pytest

from etl.extract import sellcsv
from etl.extract.files import discover
from etl.extract.sell import iter_sell_frames, newest

TEXT = (
    "Id,First Name,Last Name,Email,Status\n"
    "1,Ann,Lee,a@example.com,New\n"
    "\n"
    ",,,,\n"
    "  , \t,,  ,\n"
    " ,Only,Later,l@example.com,\n"  # text, but not in the first field: read (a reject: no id)
    "2,Short,Row\n"
    "3,Long,Row,x@example.com,New,extra\n"
    '4,"Multi\nLine","Quoted ""x""",m@example.com,Won\n'
    "5,Ok,After,o@example.com,\n"
    "6," + "y" * 40 + ",Big,b@example.com,\n"  # over the field limit below: malformed
    "7,Go,On,g@example.com,Lost\n"
    "   \n"
    '8,"a\r\nb",,,\n'
    "9,太郎,山田,t@example.jp,\n"
    "10,,,,\n"
)


def _oracle(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(positions of the rows read, (position, reason) of the reading's rejects), row by row."""
    reader = csv.reader(io.StringIO(text, newline=""))
    width = len(next(reader))
    read, rejects = [], []
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            rejects.append((f"line {reader.line_num}", f"malformed CSV: {exc}"))
            continue
        if not "".join(values).strip():
            continue
        if len(values) != width:
            rejects.append(
                (f"line {reader.line_num}", f"{len(values)} fields where the header has {width}")
            )
            continue
        read.append(f"line {reader.line_num}")
    return read, rejects


@pytest.fixture
def small_field_limit():
    previous = csv.field_size_limit(30)
    yield
    csv.field_size_limit(previous)


@pytest.mark.parametrize("frame_rows", [50_000, 2])
def test_rows_read_skipped_and_set_aside_as_row_by_row(
    tmp_path, monkeypatch, small_field_limit, frame_rows
):
    monkeypatch.setattr(sellcsv, "FRAME_ROWS", frame_rows)
    (tmp_path / "leads.csv").write_text(TEXT, encoding="utf-8", newline="")
    read, reading_rejects = _oracle(TEXT)
    rejects: list = []
    frames = [f for _r, f in iter_sell_frames(discover(tmp_path), rejects)]
    frame = newest(frames)
    typed = {r.position for r in rejects if r.reason == "record has no id"}
    assert sorted(frame["position"].tolist() + sorted(typed)) == sorted(read)
    assert typed == {"line 6"}  # the row with text only after its first field
    got = [(r.position, r.reason) for r in rejects if r.reason != "record has no id"]
    assert got == reading_rejects
    assert [p for p, _ in got] == ["line 7", "line 8", "line 12"]
    by_id = frame.set_index("id")
    assert by_id.at[4, "first_name"] == "Multi\nLine" and by_id.at[5, "position"] == "line 11"
    assert by_id.at[7, "position"] == "line 13" and by_id.at[8, "position"] == "line 16"
    assert by_id.at[9, "name"] == "山田 太郎" and by_id.at[1, "name"] == "Ann Lee"
    assert by_id.at[10, "name"] is None or by_id.at[10, "name"] != by_id.at[10, "name"]
