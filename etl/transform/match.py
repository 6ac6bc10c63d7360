"""Matching chats to CRM records on email_normalized (seed S1, S2).

A chat matches every lead and contact (person or company) with its normalized email, leads
chatsell created in earlier runs included; a converted lead is no target once its contact
exists. A chat matched to a contact is also attached to that contact's deals.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

TARGET_COLUMNS = (
    "record_type",
    "record_id",
    "email_normalized",
    "record_name",
    "owner_id",
    "phone",
    "origin",
    "new_this_run",
)
DEAL_COLUMNS = ("record_id", "contact_id", "organization_id", "record_name", "owner_id")
PAIR_COLUMNS = ("chat_id", "record_type", "record_id", "record_name", "owner_id", "new_this_run")


@dataclass
class CrmIndex:
    """What chats are matched against: held whole, the only thing besides a chunk in memory.

    ``base`` (TARGET_COLUMNS: every lead and contact that can take a chat) is what it is built
    from: the targets with an email are kept as ``_Targets`` (compact columns ordered by a hash of
    the email) and ``base`` is let go, so the run holds ~120 bytes a record instead of its
    frames of Python strings (~550 bytes). The leads the run creates are the planner's
    (``CreatedLeads``); their phones and the phones the run changes are kept here beside the
    index, so none of them rebuilds it.
    """

    base: pd.DataFrame | None  # None once held as ``_targets``
    deals: pd.DataFrame  # DEAL_COLUMNS
    users: pd.DataFrame  # id, email_normalized, status, name, team_name, group_name
    phones: dict[tuple[str, int], str | None] = field(default_factory=dict)
    # the phones of the leads this run creates, numbered down from created_from: a list grows
    # by 8 bytes a lead where ``phones`` would by ~120 (a key tuple, an int, a slot)
    created_from: int | None = None
    created_phones: list[str | None] = field(default_factory=list)
    # lead id -> the chat that created it, for leads this run created before it was interrupted
    origins: pd.Series = field(default_factory=lambda: pd.Series(dtype=object))
    # lead id -> the start time of that origin chat, where known (a resumed Dask backfill): a
    # chat that comes before a lead's creator was decided without that lead
    origin_starts: pd.Series = field(default_factory=lambda: pd.Series(dtype="datetime64[us, UTC]"))
    _targets: _Targets | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.base is not None:
            self._targets = _Targets.of(self.base)
            self.base = None

    def origin_chats(self) -> pd.Series:
        """lead id -> origin chat id of the leads this run created (a resumed run meets them)."""
        return self.origins

    def add_created(self, first_id: int, phones: list[str | None]) -> None:
        """Leads the run created, ids ``first_id``, ``first_id - 1``, ...: their phones."""
        if self.created_from is None:
            self.created_from = first_id
        if first_id != self.created_from - len(self.created_phones):
            raise ValueError(f"lead {first_id} does not follow the leads this run created")
        self.created_phones.extend(phones)

    def _created_at(self, record_type: str, record_id: int) -> int | None:
        if record_type != "lead" or self.created_from is None:
            return None
        at = self.created_from - int(record_id)
        return at if 0 <= at < len(self.created_phones) else None

    def set_phone(self, record_type: str, record_id: int, phone: str | None) -> None:
        at = self._created_at(record_type, record_id)
        if at is not None:
            self.created_phones[at] = phone
        else:
            self.phones[(record_type, int(record_id))] = phone

    def phone_of(self, record_type: str, record_id: int) -> str | None:
        """The record's phone as the run has it now (its own changes included). Asked only of
        records a chat matched, so of targets with an email."""
        at = self._created_at(record_type, record_id)
        if at is not None:
            return self.created_phones[at]
        key = (record_type, int(record_id))
        if key in self.phones:
            return self.phones[key]
        return self._targets.phone_of(record_type, int(record_id))

    def lookup(self, emails: pd.DataFrame) -> pd.DataFrame:
        """``emails`` (chat_id, email_normalized) joined to every target with that email.

        Binary search in the hash-ordered targets: a chunk costs O(chunk x log targets), not a
        hash table of the million-row index; a hash shared by two emails (rare) is told apart by
        comparing the emails themselves.
        """
        targets = self._targets
        values = emails["email_normalized"].to_numpy(dtype=object)
        wanted = _email_hashes(emails["email_normalized"])
        low = np.searchsorted(targets.hashes, wanted, side="left")
        high = np.searchsorted(targets.hashes, wanted, side="right")
        counts = high - low
        chat_rows = np.repeat(np.arange(len(wanted)), counts)
        starts = np.repeat(low, counts)
        at = starts + np.arange(len(chat_rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        same = targets.emails[at].astype(object) == values[chat_rows]
        if not same.all():
            at, chat_rows = at[same], chat_rows[same]
        return pd.concat(
            [emails.iloc[chat_rows][["chat_id"]].reset_index(drop=True), targets.rows(at)], axis=1
        )


_TEXT = np.dtypes.StringDType(na_object=None)  # UTF-8 in one buffer: ~16-40 bytes a value
_CODED = frozenset({"record_type", "origin"})  # text of a few distinct values: held as codes


@dataclass(frozen=True)
class _Column:
    """One target column, compact: the column's own array (numbers), codes into its few
    distinct values, or text in a ``StringDType`` array; ``take`` gives rows of it back as the
    column it was built from (its dtype)."""

    dtype: object
    values: object  # np.ndarray or a pandas extension array
    uniques: np.ndarray | None = None  # coded: the distinct values, then None for a missing one

    @classmethod
    def of(cls, column: pd.Series, rows: np.ndarray) -> _Column:
        """``column``'s values at ``rows``, held compact."""
        if column.dtype.kind not in "OT" and not pd.api.types.is_string_dtype(column.dtype):
            return cls(column.dtype, column.array.take(rows))
        values = column.to_numpy(dtype=object, na_value=None)[rows]
        if column.name in _CODED:
            codes, uniques = pd.factorize(values, use_na_sentinel=True)
            if len(uniques) < 127:
                codes = codes.astype(np.int8)
            return cls(column.dtype, codes, np.append(np.asarray(uniques, dtype=object), None))
        return cls(column.dtype, values.astype(_TEXT))

    def take(self, rows: np.ndarray) -> pd.Series:
        if self.uniques is not None:
            return pd.Series(self.uniques[self.values[rows]], dtype=self.dtype)
        if isinstance(self.values, np.ndarray) and self.values.dtype == _TEXT:
            return pd.Series(self.values[rows].astype(object), dtype=self.dtype)
        return pd.Series(self.values[rows], dtype=self.dtype)

    def __reduce__(self):
        if isinstance(self.values, np.ndarray) and self.values.dtype == _TEXT:
            return (_text_column, (self.dtype, *_packed_pieces(self.values)))
        return (_Column, (self.dtype, self.values, self.uniques))

    def value(self, row: int) -> object:
        """One row's value (a missing one None): for a lookup at a time, no frame built."""
        if self.uniques is not None:
            return self.uniques[self.values[row]]
        value = self.values[row]
        return None if value is None or pd.isna(value) else value


@dataclass
class _Targets:
    """The targets with an email, ordered by a 64-bit hash of it (then as given): one email's
    targets are adjacent, and found by a binary search over integers instead of Python string
    comparisons. ``emails`` tells apart emails whose hashes collide."""

    hashes: np.ndarray  # uint64, ascending
    emails: np.ndarray  # StringDType
    columns: dict[str, _Column]
    _by_record: dict[str, tuple[np.ndarray, np.ndarray]] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, base: pd.DataFrame) -> _Targets:
        return cls.of_columns(lambda name: base[name], list(base.columns))

    @classmethod
    def of_columns(
        cls,
        column: Callable[[str], pd.Series],
        names: list[str],
        done: Callable[[str], None] = lambda name: None,
    ) -> _Targets:
        """The targets that have an email, made column by column from ``column(name)``: no
        frame of the targets is made on the way (at a million targets each copy of one is
        ~70 MB of pointers). ``done(name)`` is told when a column is held: its source may go."""
        email_column = column("email_normalized")
        email_dtype = email_column.dtype
        usable = np.flatnonzero(email_column.notna().to_numpy())
        emails = email_column.to_numpy(dtype=object)[usable]
        del email_column
        # each column's source goes as soon as its values are taken, before their compact copy
        # is made (the emails' were ~100 MB of the index build's peak at 2.2M targets)
        done("email_normalized")
        hashes = _email_hashes(pd.Series(emails, dtype=object))
        order = np.argsort(hashes, kind="stable")
        rows = usable[order]
        emails = emails[order].astype(_TEXT)
        columns = {}
        for name in names:
            if name == "email_normalized":
                columns[name] = _Column(email_dtype, emails)
            else:
                values = column(name)
                done(name)
                columns[name] = _Column.of(values, rows)
                del values
        return cls(hashes[order], emails, columns)

    def rows(self, at: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({name: column.take(at) for name, column in self.columns.items()})

    def __reduce__(self):
        # the emails are a column too (the same array): packed once
        columns = {
            name: None if column.values is self.emails else column
            for name, column in self.columns.items()
        }
        dtypes = {name: self.columns[name].dtype for name, c in columns.items() if c is None}
        return (_targets, (self.hashes, *_packed_pieces(self.emails), columns, dtypes))

    def phone_of(self, record_type: str, record_id: int) -> str | None:
        if self._by_record is None:  # (record type ->) ids ascending, and their rows
            every = np.arange(len(self.hashes))
            kinds = self.columns["record_type"].take(every).to_numpy(dtype=object)
            ids = self.columns["record_id"].take(every).to_numpy(dtype="int64", na_value=0)
            self._by_record = {}
            for kind in pd.unique(kinds):
                rows = np.flatnonzero(kinds == kind)
                order = np.argsort(ids[rows], kind="stable")
                self._by_record[kind] = (ids[rows][order], rows[order])
        found = self._by_record.get(record_type)
        if found is None:
            return None
        ids, rows = found
        at = int(np.searchsorted(ids, record_id))
        if at == len(ids) or ids[at] != record_id:
            return None
        value = self.columns["phone"].value(int(rows[at]))
        return None if value is None else str(value)


def _packed(values: np.ndarray) -> tuple[str, np.ndarray, np.ndarray]:
    """A text array (``StringDType`` or objects) as one string, each value's length and where
    values are missing (an empty string in the text).

    How the index goes from the worker that builds it to the run (a pickle): numpy pickles such
    an array as a Python string per value, ~2 s and ~250 MB of objects a million values each
    way, and the run would keep the pages they took; one string is copied in C. How the run's
    new leads keep their emails and names too (``_Added``).
    """
    objects = values.astype(object)
    missing = pd.isna(objects)
    if missing.any():
        objects[missing] = ""
    lengths = np.fromiter(map(len, objects), dtype=np.int64, count=len(objects))
    return "".join(objects), lengths, missing


_PACKED_AT_ONCE = 65_536  # values made Python strings together to pack or unpack an index


def _packed_pieces(values: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``_packed``, a string every ``_PACKED_AT_ONCE`` values: no more than that many values
    are Python strings at once on either side (the 2.2M emails of a 3M-chat store were ~165 MB
    of them, the peak of the process that builds the index, then of the run's)."""
    texts, lengths, missing = [], [], []
    for start in range(0, len(values), _PACKED_AT_ONCE):
        text, length, absent = _packed(values[start : start + _PACKED_AT_ONCE])
        texts.append(text)
        lengths.append(length)
        missing.append(absent)
    if not texts:
        return [], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    return texts, np.concatenate(lengths), np.concatenate(missing)


def _unpacked(text: str | list[str], lengths: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """The text array ``_packed`` (one string) or ``_packed_pieces`` (a list) packed."""
    if isinstance(text, str):
        return _unpacked_one(text, lengths, missing)
    values = np.empty(len(lengths), dtype=_TEXT)
    for number, piece in enumerate(text):
        at = slice(number * _PACKED_AT_ONCE, (number + 1) * _PACKED_AT_ONCE)
        values[at] = _unpacked_one(piece, lengths[at], missing[at])
    return values


def _unpacked_one(text: str, lengths: np.ndarray, missing: np.ndarray) -> np.ndarray:
    ends = np.cumsum(lengths)
    values = np.array(
        [
            text[start:end]
            for start, end in zip((ends - lengths).tolist(), ends.tolist(), strict=True)
        ],
        dtype=_TEXT,
    )
    if missing.any():
        values[missing] = None
    return values


def _text_column(
    dtype: object, text: str | list[str], lengths: np.ndarray, missing: np.ndarray
) -> _Column:
    return _Column(dtype, _unpacked(text, lengths, missing))


def _targets(
    hashes: np.ndarray,
    text: str | list[str],
    lengths: np.ndarray,
    missing: np.ndarray,
    columns: dict[str, _Column | None],
    dtypes: dict[str, object],
) -> _Targets:
    emails = _unpacked(text, lengths, missing)
    held = {
        name: column if column is not None else _Column(dtypes[name], emails)
        for name, column in columns.items()
    }
    return _Targets(hashes, emails, held)


@dataclass(frozen=True)
class _Segment:
    """Leads ordered by the hash of their email (then as added): the hashes, and each lead's
    row in the order the leads were added (``_Added``)."""

    hashes: np.ndarray  # uint64, ascending
    rows: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.hashes)

    def ordered(self) -> _Segment:
        order = np.argsort(self.hashes, kind="stable")
        return _Segment(self.hashes[order], self.rows[order])

    @staticmethod
    def merged(older: _Segment, newer: _Segment) -> _Segment:
        return _Segment(
            np.concatenate([older.hashes, newer.hashes]), np.concatenate([older.rows, newer.rows])
        ).ordered()


@dataclass(frozen=True)
class _Added:
    """One chunk's leads as added, never moved again: the emails and names as one string each
    (``_packed``: a lead's text is a slice of it), ids and owners as integer arrays."""

    emails: str
    email_ends: np.ndarray  # int64, cumulative
    names: str
    name_ends: np.ndarray
    no_name: np.ndarray  # bool
    ids: np.ndarray  # int64
    owners: np.ndarray  # int64 (0 where missing)
    no_owner: np.ndarray  # bool

    @classmethod
    def of(cls, leads: pd.DataFrame) -> _Added:
        emails, email_lengths, _ = _packed(leads["email_normalized"].to_numpy(dtype=object))
        names, name_lengths, no_name = _packed(leads["name"].to_numpy(dtype=object, na_value=None))
        owners = pd.array(leads["owner_id"], dtype="Int64")
        return cls(
            emails, np.cumsum(email_lengths), names, np.cumsum(name_lengths), no_name,
            leads["id"].to_numpy(dtype="int64"), owners.to_numpy(dtype="int64", na_value=0),
            owners.isna(),
        )  # fmt: skip

    def email(self, at: int) -> str:
        return self.emails[(self.email_ends[at - 1] if at else 0) : self.email_ends[at]]

    def name(self, at: int) -> str | None:
        if self.no_name[at]:
            return None
        return self.names[(self.name_ends[at - 1] if at else 0) : self.name_ends[at]]


class CreatedLeads:
    """The leads a run creates, by normalized email: what the later chats of an email join.

    It grows chunk by chunk for the whole run and is never rebuilt whole: each chunk's leads are
    a segment ordered by a 64-bit hash of the email, and two segments of about the same size are
    merged into one, so n leads make O(log n) segments and each lead's hash and row move O(log n)
    times. A lookup is a binary search in each segment. (A frame indexed by email, concatenated
    at every chunk, rebuilt its hash table at every lookup: at 3M chats, 367,000 leads, that was
    ~80 ms a chunk, 300 chunks.) The leads' text stays where it was added, each chunk's emails
    and names packed in one string (``_Added``): ~115 bytes a lead in all. As a Python string
    each and object arrays, they took ~235 bytes a lead, 267 MiB of the run at 1.19M leads (3M
    chats), the planner's whole growth while it planned.
    """

    def __init__(self) -> None:
        self._segments: list[_Segment] = []
        self._added: list[_Added] = []
        self._firsts: list[int] = []  # the row of each chunk's first lead
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, leads: pd.DataFrame) -> None:
        """Leads (email_normalized, id, name, owner_id), one per email never added before."""
        if leads.empty:
            return
        rows = np.arange(self._count, self._count + len(leads), dtype=np.int64)
        self._added.append(_Added.of(leads))
        self._firsts.append(self._count)
        self._count += len(leads)
        segments = self._segments
        segments.append(_Segment(_email_hashes(leads["email_normalized"]), rows).ordered())
        while len(segments) > 1 and len(segments[-2]) <= 2 * len(segments[-1]):
            newer, older = segments.pop(), segments.pop()
            segments.append(_Segment.merged(older, newer))

    def _where(self, row: int) -> tuple[_Added, int]:
        chunk = bisect.bisect_right(self._firsts, row) - 1
        return self._added[chunk], row - self._firsts[chunk]

    def find(self, emails: pd.Series) -> pd.DataFrame:
        """Per email, in order: ``found`` and its lead's id, name and owner_id (unfound: null)."""
        values = emails.to_numpy(dtype=object)
        wanted = _email_hashes(emails)
        found = np.zeros(len(values), dtype=bool)
        ids = np.zeros(len(values), dtype=np.int64)
        names = np.full(len(values), None, dtype=object)
        owners = np.zeros(len(values), dtype=np.int64)
        no_owner = np.ones(len(values), dtype=bool)
        for segment in self._segments:
            low = np.searchsorted(segment.hashes, wanted, side="left")
            high = np.searchsorted(segment.hashes, wanted, side="right")
            for row in np.flatnonzero((high > low) & ~found).tolist():
                for at in range(int(low[row]), int(high[row])):  # (one, unless hashes collide)
                    added, place = self._where(int(segment.rows[at]))
                    if added.email(place) == values[row]:
                        found[row], ids[row], names[row] = True, added.ids[place], added.name(place)
                        owners[row], no_owner[row] = added.owners[place], added.no_owner[place]
                        break
        return pd.DataFrame(
            {
                "found": found,
                "id": ids,
                "name": names,
                "owner_id": pd.arrays.IntegerArray(owners, no_owner),
            },
            index=emails.index,
        )


_HASHED_AT_ONCE = 65_536  # emails hashed together (pandas encodes each to bytes first)


def _email_hashes(emails: pd.Series) -> np.ndarray:
    """uint64 hashes of normalized emails (pandas' SipHash of the text, computed in C), a
    piece at a time: ``hash_array`` makes a bytes object of every value it is given before
    it hashes them (~150 MB at the 2.2M targets of a 3M-chat store, the index build's peak)."""
    values = emails.to_numpy(dtype=object)
    out = np.empty(len(values), dtype=np.uint64)
    for start in range(0, len(values), _HASHED_AT_ONCE):
        piece = values[start : start + _HASHED_AT_ONCE]
        out[start : start + _HASHED_AT_ONCE] = pd.util.hash_array(piece, categorize=False)
    return out


def build_index(
    leads: pd.DataFrame,
    contacts: pd.DataFrame,
    deals: pd.DataFrame,
    users: pd.DataFrame,
    conversions: pd.DataFrame,
    converted_statuses: list[str],
    run_id: int | None = None,
    consume: bool = False,
) -> CrmIndex:
    """The match index from the store's (and this run's) CRM frames.

    ``leads``/``contacts`` carry email_normalized already. A lead is converted when a lead
    conversion names it or its status is one of ``converted_statuses``; it stops being a target
    when its contact exists (the conversion's contact, or any contact with the same email).

    ``consume``: the caller lets ``leads`` and ``contacts`` go after this; their text columns are
    dropped from them as the index takes them, so their strings are freed while the index grows
    instead of after it (the run's peak at a million records is this build).
    """
    contact_emails = set(contacts["email_normalized"].dropna())
    contact_ids = set(contacts["id"].dropna().astype("int64"))
    statuses = list(converted_statuses)
    if hasattr(leads, "text_isin"):  # (a ``CompactTable``: compared where the text is held)
        converted = leads.text_isin("status", statuses)
    else:
        converted = leads["status"].isin(statuses).to_numpy(dtype=bool)
    if not conversions.empty:
        linked = conversions[
            conversions["individual_id"].isin(contact_ids)
            | conversions["organization_id"].isin(contact_ids)
        ]
        converted_with_contact = (
            leads["id"].isin(set(linked["lead_id"].dropna())).to_numpy(dtype=bool)
        )
        converted = converted | leads["id"].isin(set(conversions["lead_id"].dropna())).to_numpy(
            dtype=bool
        )
    else:
        converted_with_contact = np.zeros(len(leads.index), dtype=bool)
    # a converted lead whose contact exists: the conversion's, else any with its email (asked
    # of those rows only)
    superseded = converted & converted_with_contact
    asked = np.flatnonzero(converted & ~converted_with_contact)
    if len(asked):
        emails = leads["email_normalized"].to_numpy(dtype=object)[asked]
        superseded[asked] = pd.Series(emails, dtype=object).isin(contact_emails).to_numpy()
    origins = pd.Series(dtype=object)
    if run_id is not None and "origin_chat_id" in leads and "created_run_id" in leads:
        # (column by column: ``leads`` may be a table that builds its columns when asked)
        mine = (leads["created_run_id"].astype("Int64") == run_id).fillna(False).astype(bool)
        origin = leads["origin_chat_id"][mine.to_numpy()]
        present = origin.notna().to_numpy()
        origins = pd.Series(
            origin[present].astype(object).to_numpy(),
            index=leads["id"][mine.to_numpy()][present].astype("int64").to_numpy(),
        )
    parts = [(leads, ~superseded, "lead"), (contacts, None, "contact")]
    del contact_emails, contact_ids, converted, superseded
    if consume:  # what the flags above were made of
        for frame, _keep, _kind in parts:
            for name in ("status", "origin_chat_id"):
                if name in frame.columns:
                    del frame[name]

    def done(name: str) -> None:  # (consume: the frames' text is let go column by column)
        source = {"record_name": "name"}.get(name, name)
        if consume and name in ("email_normalized", "record_name", "phone", "origin"):
            for frame, _keep, _kind in parts:
                if source in frame.columns:
                    del frame[source]

    targets = _Targets.of_columns(
        lambda name: pd.concat(
            [_target_column(frame, keep, kind, name, run_id) for frame, keep, kind in parts],
            ignore_index=True,
        ),
        list(TARGET_COLUMNS),
        done,
    )
    deal_frame = pd.DataFrame(
        {
            "record_id": deals["id"],
            "contact_id": deals["contact_id"],
            "organization_id": deals["organization_id"],
            "record_name": deals["name"],
            "owner_id": deals["owner_id"],
        }
    )
    return CrmIndex(base=None, deals=deal_frame, users=users, origins=origins, _targets=targets)


def _target_column(
    frame: pd.DataFrame, keep: np.ndarray | None, record_type: str, name: str, run_id: int | None
) -> pd.Series:
    """One TARGET_COLUMNS column of the leads or contacts in ``frame`` (the rows ``keep``)."""
    if name == "record_type":
        column = pd.Series(record_type, index=frame.index)
    elif name in ("record_id", "owner_id"):
        column = frame["id" if name == "record_id" else name].astype("Int64")
    elif name == "record_name":
        column = frame["name"]
    elif name == "origin":
        column = frame["origin"] if "origin" in frame else pd.Series("sell", index=frame.index)
    elif name == "new_this_run":
        # leads a resumed run created before it was interrupted are this run's too
        created = frame.get("created_run_id")
        if run_id is None or created is None:
            column = pd.Series(False, index=frame.index)
        else:
            column = (created.astype("Int64") == run_id).fillna(False).astype(bool)
    else:
        column = frame[name]
    return (column[keep] if keep is not None else column).reset_index(drop=True)


def match(chats: pd.DataFrame, index: CrmIndex, attach_to_deals: bool = True) -> pd.DataFrame:
    """(chat_id, record_type, record_id, record_name, owner_id) for every record a chat attaches to.

    ``chats`` needs chat_id and email_normalized. Leads and contacts come first, then deals of
    matched contacts (as person or as organization); each (chat, record) once.
    """
    emails = chats.loc[chats["email_normalized"].notna(), ["chat_id", "email_normalized"]]
    direct = index.lookup(emails)
    pairs = [direct[list(PAIR_COLUMNS)]]
    if attach_to_deals and not index.deals.empty:
        contacts = direct[direct["record_type"] == "contact"][["chat_id", "record_id"]]
        for link in ("contact_id", "organization_id"):
            joined = contacts.merge(
                index.deals.drop(
                    columns=[c for c in ("contact_id", "organization_id") if c != link]
                ),
                left_on="record_id",
                right_on=link,
                suffixes=("_contact", ""),
            )
            if not joined.empty:
                joined = joined.assign(record_type="deal", new_this_run=False)
                pairs.append(joined[list(PAIR_COLUMNS)])
    result = pd.concat(pairs, ignore_index=True) if len(pairs) > 1 else pairs[0]
    result = result.drop_duplicates(["chat_id", "record_type", "record_id"]).reset_index(drop=True)
    result["record_id"] = result["record_id"].astype("int64")
    result["owner_id"] = result["owner_id"].astype("Int64")
    result["new_this_run"] = result["new_this_run"].astype(bool)
    return result


_ORDER = {"lead": 0, "contact": 1, "deal": 2}


def records_labels(pairs: pd.DataFrame, at: np.ndarray, size: int) -> np.ndarray:
    """``lead:12;contact:40;deal:7`` per chat, records in a stable order (type, then id); None
    for a chat with no record. ``at``: each pair's chat, as a row number below ``size``."""
    out = np.full(size, None, dtype=object)
    if pairs.empty:
        return out
    kinds = pairs["record_type"].to_numpy(dtype=object)
    ids = pairs["record_id"].to_numpy(dtype="int64")
    order = np.lexsort((ids, pairs["record_type"].map(_ORDER).fillna(3).to_numpy(), at))
    labels = (pd.Series(kinds[order], dtype=object) + ":" + ids[order].astype(str)).to_numpy()
    rows = at[order]
    first = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])  # each chat's first record
    counts = np.diff(np.r_[first, len(rows)])
    joined = labels[first]
    # most chats attach to one or two records: join rank by rank instead of a Python join per chat
    for rank in range(1, int(counts.max())):
        more = counts > rank
        joined[more] = joined[more] + ";" + labels[first[more] + rank]
    out[rows[first]] = joined
    return out
