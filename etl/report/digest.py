"""What the report page shows of a run's outcomes, gathered without holding them.

A run of a million chats has a million outcome rows; the page shows counts (per day, department
and agent, by outcome) and the first rows of each exception list. A store counts with GROUP BYs
and sends only the exception lists' rows (``Store.outcome_digest_rows``), which ``from_store``
folds, the counts through ``add_counts`` and the rows through ``add_listed`` a fetch at a time;
rows at hand go through ``add`` (a dry run's, chunk by chunk; a test's). Either way the page is
the same as from the rows taken whole. Only plain data comes in: nothing here knows the store.

Frames are built only for rows: a digest of none (an unchanged sync's run) holds ``None`` where
its tables and lists would be, and neither it nor its page loads pandas.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from etl.vocab import OUTCOME_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

LIST_LIMIT = 500  # rows per exception list; the rest is counted, not shown

_INVALID = ["chat_id", "chat_started_at", "reason"]
_SKIPPED = ["chat_id", "email_normalized", "reason", "chat_started_at"]
_REMOVED = ["chat_id", "chat_started_at", "reason"]
_INVALID_ORDER = ["chat_started_at", "chat_id"]
_SKIPPED_ORDER = ["reason", "chat_started_at", "chat_id"]


@dataclass
class OutcomeDigest:
    """Counts and first rows of a run's outcomes (chat ids are unique in a run, so every
    ordering below is total and the first rows do not depend on how the rows were chunked).
    A table or list is ``None`` until rows come for it (then a frame, possibly empty)."""

    rows: int = 0
    undated: int = 0
    first_started: pd.Timestamp | None = None  # naive UTC
    last_started: pd.Timestamp | None = None
    by_day: pd.DataFrame | None = None  # day x outcome
    by_department: pd.DataFrame | None = None  # label x outcome
    by_agent: pd.DataFrame | None = None
    invalid: pd.DataFrame | None = None  # columns _INVALID
    invalid_count: int = 0  # the first LIST_LIMIT above, by start time and chat id
    skipped: pd.DataFrame | None = None  # columns _SKIPPED
    skipped_count: int = 0  # the first LIST_LIMIT above, by reason, start time and chat id
    # skipped leads per reason (None: none given)
    skipped_reasons: Counter = field(default_factory=Counter)
    removed: pd.DataFrame | None = None  # columns _REMOVED
    removed_count: int = 0  # the first LIST_LIMIT above, by start time and chat id
    removed_reasons: Counter = field(default_factory=Counter)  # chats removed per reason
    # email -> [chats, most records matched, where each record was first listed]: the emails
    # more than one CRM record share, so bounded by the CRM, not by the chats
    _multi: dict[str, list[Any]] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def of(cls, outcomes: pd.DataFrame) -> OutcomeDigest:
        digest = cls()
        digest.add(outcomes)
        return digest

    @classmethod
    def from_store(cls, counts: Mapping[str, Any], listed: Iterable[pd.DataFrame]) -> OutcomeDigest:
        """A run's digest from what a store sends (``Store.outcome_digest_rows``): ``counts``,
        the arguments of ``add_counts`` by name (``rows``, ``first``, ``last``, ``groups``),
        and ``listed``, the exception lists' rows in chat id order, a fetch at a time."""
        digest = cls()
        digest.add_counts(counts["rows"], counts["first"], counts["last"], counts["groups"])
        for frame in listed:
            digest.add_listed(frame)
        return digest

    def add(self, outcomes: pd.DataFrame) -> None:
        """Fold in the next rows (``OUTCOME_COLUMNS``; a store's are read in chat id order)."""
        if not len(outcomes):
            return
        import pandas as pd  # noqa: PLC0415

        frame = normalized(outcomes)
        started = _naive_utc(frame["chat_started_at"])
        groups = {
            "day": started.dt.floor("D"),
            "department": frame["department"],
            "agent": frame["agent"],
        }
        self.add_counts(
            len(frame),
            started.min(),
            started.max(),
            {
                name: pd.DataFrame({name: key, "outcome": frame["outcome"]})
                .value_counts(dropna=False)
                .rename("n")
                .reset_index()
                for name, key in groups.items()
            },
        )
        self.add_listed(frame)

    def add_counts(self, rows: int, first: Any, last: Any, groups: dict[str, pd.DataFrame]) -> None:
        """Fold in rows already counted (a store's GROUP BY): ``groups`` has, for each of
        "day" (the UTC day started, or missing), "department" and "agent", a frame of that
        value as stored, the outcome and ``n``, the rows that have both (with ``rows`` 0 there
        is nothing to fold, and ``groups`` may be empty)."""
        if not rows:
            return
        import pandas as pd  # noqa: PLC0415

        self.rows += rows
        for stamp in (first, last):
            if stamp is None or pd.isna(stamp):
                continue
            stamp = _naive_utc(pd.Series([pd.Timestamp(stamp)])).iloc[0]
            self.first_started = (
                stamp if self.first_started is None else min(self.first_started, stamp)
            )
            self.last_started = (
                stamp if self.last_started is None else max(self.last_started, stamp)
            )
        days = groups["day"]
        days = days.assign(day=_naive_utc(pd.to_datetime(days["day"], utc=True)).dt.floor("D"))
        dated = days["day"].notna()
        self.undated += int(days.loc[~dated, "n"].sum())
        self.by_day = _plus(self.by_day, _table(days[dated], "day", days.loc[dated, "day"]))
        for name in ("department", "agent"):
            counts = groups[name]
            labels = counts[name].astype("string").fillna("").str.strip()
            labels = labels.where(labels != "", _MISSING_LABEL[name])
            table = _table(counts, name, labels)
            if name == "department":
                self.by_department = _plus(self.by_department, table)
            else:
                self.by_agent = _plus(self.by_agent, table)

    def add_listed(self, outcomes: pd.DataFrame) -> None:
        """Fold in rows for the exception lists only (their counts come from ``add_counts``):
        a store sends only the invalid emails, skipped leads, removed chats and multi-matches."""
        if not len(outcomes):
            return
        frame = normalized(outcomes)
        invalid = frame.loc[frame["outcome"] == "invalid_email", _INVALID]
        self.invalid_count += len(invalid)
        self.invalid = self._first(self.invalid, invalid, _INVALID_ORDER)

        skipped = frame.loc[frame["outcome"] == "lead_skipped", _SKIPPED]
        self.skipped_count += len(skipped)
        reasons = skipped["reason"].astype("string").tolist()
        self.skipped_reasons.update(r if isinstance(r, str) else None for r in reasons)
        self.skipped = self._first(self.skipped, skipped, _SKIPPED_ORDER)

        removed = frame.loc[frame["outcome"] == "removed", _REMOVED]
        self.removed_count += len(removed)
        self.removed_reasons.update(removed["reason"].astype("string").fillna("").tolist())
        self.removed = self._first(self.removed, removed, _INVALID_ORDER)

        multi = frame.loc[frame["match_count"] > 1]
        emails = multi["email_normalized"].astype("string").fillna("").tolist()
        records = multi["records"].astype("string").tolist()
        matches = multi["match_count"].astype("int64").tolist()
        chat_ids = multi["chat_id"].astype(str).tolist()
        for email, most, listed, chat_id in zip(emails, matches, records, chat_ids, strict=True):
            entry = self._multi.setdefault(email, [0, 0, {}])
            entry[0] += 1
            entry[1] = max(entry[1], most)
            if not isinstance(listed, str):
                continue
            first = entry[2]  # record -> (chat id, place in its list) where first listed
            for place, record in enumerate(r for r in listed.split(";") if r):
                seen = (chat_id, place)
                if record not in first or seen < first[record]:
                    first[record] = seen

    def _first(
        self, kept: pd.DataFrame | None, more: pd.DataFrame, order: list[str]
    ) -> pd.DataFrame:
        import pandas as pd  # noqa: PLC0415

        if kept is None or kept.empty:
            both = more
        elif more.empty:
            both = kept
        else:
            both = pd.concat([kept, more], ignore_index=True)
        return both.sort_values(order, na_position="last", kind="stable").head(LIST_LIMIT)

    def reasons(self) -> list[tuple[str, int]]:
        """Skipped leads per reason ("" for none given), most first; ties by reason, "" first
        when a reason was given as empty text, else last (as the list's own order has it)."""
        counts = self.skipped_reasons
        given_empty, missing = counts.get("", 0), counts.get(None, 0)
        items = [(r, n) for r, n in counts.items() if r]
        if given_empty or missing:
            items.append(("", given_empty + missing))

        def order(item: tuple[str, int]) -> tuple[int, int, str]:
            reason, count = item
            rank = 1 if reason else (0 if given_empty else 2)
            return -count, rank, reason

        return sorted(items, key=order)

    def multi_match_count(self) -> int:
        """How many emails more than one CRM record share (``multi_match`` lists them)."""
        return len(self._multi)

    def multi_match(self) -> tuple[pd.DataFrame, int]:
        """The first LIST_LIMIT emails (most records first) with the union of their chats'
        records, and how many emails there are."""
        import pandas as pd  # noqa: PLC0415

        if not self._multi:
            return pd.DataFrame(columns=["email", "records", "chats"]), 0
        emails = pd.DataFrame(
            [(email, chats, matches) for email, (chats, matches, _) in self._multi.items()],
            columns=["email", "chats", "matches"],
        ).sort_values(["matches", "chats", "email"], ascending=[False, False, True])
        shown = emails.head(LIST_LIMIT)
        records = []
        for email in shown["email"]:
            first = self._multi[email][2]  # in chat id order, whatever order the rows came in
            records.append(";".join(sorted(first, key=first.__getitem__)) or None)
        return shown.assign(records=records), len(emails)


def normalized(outcomes: pd.DataFrame) -> pd.DataFrame:
    """The outcome columns, with a numeric match count and UTC start times (a store's SQLite
    gives naive text; a missing or bad value becomes NaT)."""
    import pandas as pd  # noqa: PLC0415

    frame = outcomes.reindex(columns=list(OUTCOME_COLUMNS)).reset_index(drop=True)
    frame["match_count"] = pd.to_numeric(frame["match_count"], errors="coerce").fillna(0)
    frame["chat_started_at"] = pd.to_datetime(frame["chat_started_at"], utc=True, errors="coerce")
    return frame


_MISSING_LABEL = {"department": "(no department)", "agent": "(no agent)"}


def _naive_utc(stamps: pd.Series) -> pd.Series:
    import pandas as pd  # noqa: PLC0415

    stamps = pd.to_datetime(stamps, utc=True, errors="coerce")
    return stamps.dt.tz_convert("UTC").dt.tz_localize(None)


def _table(counts: pd.DataFrame, name: str, keys: pd.Series) -> pd.DataFrame:
    """``n`` summed per key and outcome: a key x outcome table (a missing outcome "(none)")."""
    import pandas as pd  # noqa: PLC0415

    if counts.empty:
        return pd.DataFrame()
    outcome = counts["outcome"].astype("string").fillna("(none)")
    summed = counts["n"].groupby([keys.rename(name), outcome.rename("outcome")]).sum()
    return summed.unstack("outcome", fill_value=0).astype("int64")


def _plus(total: pd.DataFrame | None, more: pd.DataFrame) -> pd.DataFrame:
    """Two count tables added cell by cell (a label or outcome one lacks counts 0 there)."""
    if total is None or total.empty:
        return more
    if more.empty:
        return total
    summed = total.add(more, fill_value=0).fillna(0).astype("int64")
    return summed.sort_index().reindex(columns=sorted(summed.columns))
