"""The words every layer shares: outcome values, the frames' column lists, the plan a chunk of
chats becomes, and the run's counters.

This module imports nothing of the project. The readers (``etl.extract``) produce frames with
these columns, the planner (``etl.transform``) fills a ``ChunkPlan``, the store (``etl.load``)
applies one without knowing the planner, and the report (``etl.report``) names the outcomes
without knowing either.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # (the frame libraries load where a frame is made: not for an unchanged sync)
    import pandas as pd

# -- a chat's outcome (SPEC section 3.8): exactly one per chat read ------------------------------

OUTCOMES = (
    "matched",
    "lead_created",
    "matched_new_lead",
    "lead_skipped",
    "no_email",
    "invalid_email",
    "rejected",
    "removed",
)

# -- the frames' columns -----------------------------------------------------------------------

# a staged chat: what the chat reader makes of one transcript (etl.extract.chats)
CHAT_COLUMNS = (
    "chat_id",
    "kind",
    "started_at",
    "ended_at",
    "updated_at",
    "version",
    "visitor_id",
    "visitor_name",
    "visitor_email",
    "visitor_phone",
    "visitor_notes",
    "department_id",
    "department_name",
    "tags",
    "rating",
    "comment",
    "missed",
    "agent_ids",
    "agent_names",
    "country_code",
    "message_count",
    "transcript",
    "content_hash",
    "deleted",
    "source_file",
    "position",
)
CHAT_KINDS = ("chat", "offline_msg")

# -- a chat deleted at source (SPEC 10) ------------------------------------------------------------

REMOVED_REASON = "deleted at source"  # the reason of its outcome ``removed``
# a chat of an email erased on request (``chatsell forget``): outcome ``removed`` too, and the
# store keeps not even its row
ERASED_REASON = "erasure request"
# What such a chat keeps of its content: nothing the visitor or an agent wrote, no name, no
# contact detail, no identifier of the visitor or the agents. Its id, kind, times, version,
# department, missed flag, message count, where it was read and the fact of deletion stay. The
# blanks are the reader's own "nothing" ("" and "[]"), so every rule reads them as it reads a
# chat that never had the value.
REMOVED_BLANKS: dict[str, Any] = {
    "visitor_id": "",
    "visitor_name": "",
    "visitor_email": "",
    "visitor_phone": "",
    "visitor_notes": "",
    "tags": "[]",
    "rating": "",
    "comment": "",
    "agent_ids": "[]",
    "agent_names": "[]",
    "country_code": "",
    "transcript": "",
    "content_hash": None,  # a hash of the whole record (its version keeps the first 16 digits)
}


def without_content(chats: pd.DataFrame) -> pd.DataFrame:
    """``chats`` (CHAT_COLUMNS) with ``deleted`` a plain bool and the content of the deleted
    ones blanked (``REMOVED_BLANKS``): the reader applies it before a deleted chat is staged,
    the planner again to whatever it is given (a stored row, a stage of an older chatsell)."""
    deleted = chats["deleted"]
    if deleted.dtype != bool:  # a stored row's may be None
        deleted = deleted.eq(True).astype(bool)
        chats = chats.assign(deleted=deleted)
    if not deleted.any():
        return chats  # (the usual case costs nothing)
    chats = chats.copy()
    for column, blank in REMOVED_BLANKS.items():
        if column in chats:
            chats[column] = chats[column].where(~deleted, blank)
    return chats


AGENT_COLUMNS = ("agent_id", "email", "display_name", "enabled", "department_ids")
DEPARTMENT_COLUMNS = ("department_id", "name", "members")

# the rows of a plan
OUTCOME_COLUMNS = (
    "chat_id",
    "outcome",
    "email_normalized",
    "records",
    "reason",
    "match_count",
    "chat_started_at",
    "department",
    "agent",
)
ACTIVITY_COLUMNS = (
    "chat_id",
    "record_type",
    "record_id",
    "kind",
    "started_at",
    "ended_at",
    "agent_names",
    "agent_user_id",
    "visitor_name",
    "record_name",
    "department",
    "tags",
    "rating",
    "message_count",
    "transcript",
    "transcript_url",
    "content_hash",
    "chat_version",
)
LEAD_COLUMNS = (
    "id", "owner_id", "first_name", "last_name", "name", "email", "email_normalized", "phone",
    "status", "source", "tags", "created_at", "updated_at", "origin", "origin_chat_id",
)  # fmt: skip
NOTE_COLUMNS = (
    "chat_id",
    "record_type",
    "record_id",
    "kind",
    "creator_id",
    "content",
    "created_at",
)
NOTIFICATION_COLUMNS = (
    "chat_id",
    "record_type",
    "record_id",
    "kind",
    "user_id",
    "message",
    "created_at",
)
CHANGE_COLUMNS = (
    "record_type",
    "record_id",
    "field",
    "chat_id",
    "old_value",
    "new_value",
    "changed_at",
)
PHONE_CANDIDATE_COLUMNS = (
    "chat_id", "started_at", "ended_at", "visitor_phone", "record_type", "record_id",
)  # fmt: skip
# a row of the Sell outbox, as a plan's writes add it (etl.load.outbox)
OUTBOX_COLUMNS = ("kind", "record_type", "record_id", "chat_id", "dedupe_key", "payload")
OUTBOX_KINDS = ("lead", "activity", "note", "notification", "phone")
NOTE_KIND = "chat_notes"
NOTIFY_KIND = "notify_sales"

# the Sell resources a run counts in its report's ``inputs.sell_records``
SELL_KEYS = ("leads", "contacts", "deals", "users")
# the Sell exports' resources, in the order a run reads (and counts) them (etl.extract.sellrecords)
SELL_RESOURCES = ("leads", "contacts", "deals", "users", "notes", "lead_conversions")


# -- the plan of a chunk of chats ----------------------------------------------------------------


def _empty_assignments() -> pd.DataFrame:
    import pandas as pd  # noqa: PLC0415

    return pd.DataFrame(columns=["owner_id", "pool", "rule"])


def _no_chats() -> pd.Series:
    import pandas as pd  # noqa: PLC0415

    return pd.Series([], dtype=object)


@dataclass
class ChunkPlan:
    """Every row a chunk of chats leads to, and its outcomes: what a sink applies."""

    chats: pd.DataFrame  # the chunk's chats with email_normalized, to keep in the store
    outcomes: pd.DataFrame  # OUTCOME_COLUMNS, one row per chat
    activities: pd.DataFrame  # ACTIVITY_COLUMNS, one row per (chat, record)
    leads: pd.DataFrame  # LEAD_COLUMNS, leads created from chats
    notes: pd.DataFrame  # NOTE_COLUMNS
    notifications: pd.DataFrame  # NOTIFICATION_COLUMNS
    phone_changes: pd.DataFrame  # CHANGE_COLUMNS
    # pool name -> its rotation (an object with ``pointer``, ``assigned`` and ``to_json()``)
    pool_states: dict[str, Any] = field(default_factory=dict)
    assignments: pd.DataFrame = field(default_factory=_empty_assignments)
    multi_match_emails: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    # chats deleted at source (outcome ``removed``): everything derived from them goes with the
    # plan (their rows in ``chats`` hold no content)
    removed_chats: pd.Series = field(default_factory=_no_chats)
    # of those, the chats of an erased email: not in ``chats`` (their stored rows go too)
    erased_chats: pd.Series = field(default_factory=_no_chats)
    # activities of chats whose plan key is the stored one: planned as they are stored, so
    # neither built nor read back (``etl.transform.plankey``); counted as unchanged
    unchanged_activities: int = 0

    def outcome_counts(self) -> dict[str, int]:
        counts = self.outcomes["outcome"].value_counts()
        return {name: int(counts.get(name, 0)) for name in OUTCOMES}


@dataclass
class PlanWrite:
    """One plan to apply and what its rows need besides it."""

    plan: ChunkPlan
    record_outcomes: bool  # False for chats matched again (their outcome was recorded before)
    clear_emails: set[str] | None  # the rematch queue's emails this plan settles
    stored: pd.DataFrame | None  # the store's (chat_id, version) of the plan's chats, if read
    held: pd.Series  # chat ids the store holds already (their activities are looked up)


@dataclass
class RunInputs:
    """What a run read besides the chats themselves, recorded before its chunks."""

    agents: pd.DataFrame  # AGENT_COLUMNS: the stored ones, overridden by this run's exports
    departments: pd.DataFrame  # DEPARTMENT_COLUMNS, likewise
    rejects: pd.DataFrame  # REJECT_COLUMNS: every record set aside, with its file and position
    reject_outcomes: pd.DataFrame  # the outcome ``rejected`` of each rejected chat


REJECT_COLUMNS = ("source_file", "position", "kind", "reason", "raw", "chat_id")


@dataclass(frozen=True)
class OutboxItem:
    """One outbox row as a destination gets it: the row, the store's current content it is about
    (a lead, an activity, a note, a notification; None when gone) and the record's id at the
    destination (None: a lead chatsell created that is not there yet)."""

    id: int
    kind: str  # OUTBOX_KINDS
    record_type: str
    record_id: int
    chat_id: str | None
    payload: dict[str, Any]
    target_id: int | None
    content: dict[str, Any] | None


@dataclass(frozen=True)
class Delivered:
    """What a destination made of an item: ``sent`` (with its id there, when it has one) or
    ``skipped`` (with the reason: a phone changed there since, activities not sent)."""

    status: str  # sent | skipped
    destination_id: int | None = None
    reason: str | None = None


# -- what a run counts ---------------------------------------------------------------------------


@dataclass
class WriteCounts:
    """What applying plans wrote (the report's ``writes``)."""

    activities_inserted: int = 0
    activities_updated: int = 0
    activities_unchanged: int = 0
    activities_removed: int = 0
    leads_created: int = 0
    notes_created: int = 0
    notifications_created: int = 0
    phone_updates: int = 0

    def add(self, more: WriteCounts) -> None:
        for name in WRITE_KEYS:
            setattr(self, name, getattr(self, name) + getattr(more, name))

    def as_dict(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in WRITE_KEYS}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> WriteCounts:
        data = data or {}
        return cls(**{name: int(data.get(name, 0)) for name in WRITE_KEYS})


WRITE_KEYS = tuple(f.name for f in fields(WriteCounts))


@dataclass
class InputCounts:
    """What a run read (the report's ``inputs``)."""

    chat_files: int = 0
    chats_staged: int = 0  # (in the backfill's window)
    chat_rejects: int = 0
    sell_records: dict[str, int] = field(default_factory=dict)
    chats_rematched: int = 0
    chats_outside_window: int | None = None  # a backfill's staged chats outside its window
    leads_confirmed: int = 0  # leads chatsell pushed that this snapshot holds under their Sell id

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "chat_files": self.chat_files,
            "chats_staged": self.chats_staged,
            "chat_rejects": self.chat_rejects,
            "sell_records": dict(self.sell_records),
            "chats_rematched": self.chats_rematched,
            "leads_confirmed": self.leads_confirmed,
        }
        if self.chats_outside_window is not None:
            out["chats_outside_window"] = self.chats_outside_window
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> InputCounts:
        data = data or {}
        outside = data.get("chats_outside_window")
        return cls(
            chat_files=int(data.get("chat_files", 0)),
            chats_staged=int(data.get("chats_staged", 0)),
            chat_rejects=int(data.get("chat_rejects", 0)),
            sell_records={k: int(v) for k, v in (data.get("sell_records") or {}).items()},
            chats_rematched=int(data.get("chats_rematched", 0)),
            chats_outside_window=int(outside) if outside is not None else None,
            leads_confirmed=int(data.get("leads_confirmed", 0)),
        )


ASSIGNMENT_GROUPS = ("by_owner", "by_pool", "by_rule")


@dataclass
class RunCounters:
    """What a run counts as it goes, saved (as ``as_dict``) with every commit it covers, so a
    resumed run goes on from them."""

    inputs: InputCounts = field(default_factory=InputCounts)
    writes: WriteCounts = field(default_factory=WriteCounts)
    # group -> key (owner id, pool, rule) -> new leads
    assignments: dict[str, dict[str, int]] = field(
        default_factory=lambda: {group: {} for group in ASSIGNMENT_GROUPS}
    )
    rejects: int = 0
    warnings: list[str] = field(default_factory=list)

    def add_assignments(self, counts: dict[str, dict[str, int]]) -> None:
        for group, more in counts.items():
            target = self.assignments.setdefault(group, {})
            for key, value in more.items():
                target[key] = target.get(key, 0) + value

    def adopt(self, other: RunCounters) -> None:
        """Take ``other``'s values (the store's, after other processes added to them)."""
        self.inputs, self.writes, self.assignments = other.inputs, other.writes, other.assignments
        self.rejects, self.warnings = other.rejects, other.warnings

    def as_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs.as_dict(),
            "writes": self.writes.as_dict(),
            "assignments": {g: dict(c) for g, c in self.assignments.items()},
            "rejects": self.rejects,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RunCounters:
        """Counters as saved (a run that stopped); an empty or missing record is a new run's."""
        if not data:
            return cls()
        assignments = {group: {} for group in ASSIGNMENT_GROUPS}
        for group, counts in (data.get("assignments") or {}).items():
            assignments[group] = {str(k): int(v) for k, v in counts.items()}
        return cls(
            inputs=InputCounts.from_dict(data.get("inputs")),
            writes=WriteCounts.from_dict(data.get("writes")),
            assignments=assignments,
            rejects=int(data.get("rejects", 0)),
            warnings=list(data.get("warnings") or []),
        )
