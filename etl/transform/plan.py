"""A chunk's plan: every chat's outcome and every row to write, computed without I/O.

The loader applies a plan; a dry run reports it without applying. Chats arrive in the one
stable order (start time, then chat id) and decisions that depend on order are made in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

import orjson
import pandas as pd

from etl.transform.match import CrmIndex, match, match_counts, records_label
from etl.transform.normalize import EMPTY, INVALID, email_key

OUTCOMES = (
    "matched",
    "lead_created",
    "matched_new_lead",
    "lead_skipped",
    "no_email",
    "invalid_email",
    "rejected",
)
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
_HASHED = ACTIVITY_COLUMNS[3:16]


@dataclass(frozen=True)
class PlanContext:
    """What a plan depends on besides the chats and the index; ``now`` is passed in, not read."""

    now: pd.Timestamp
    run_id: int | None = None
    provider_rules: tuple[str, ...] = ()
    strip_plus_tags: bool = False
    attach_to_deals: bool = True
    transcript_url_template: str = ""
    subdomain: str = ""
    agent_users: pd.Series = field(
        default_factory=lambda: pd.Series(dtype="Int64")
    )  # agent_id -> user id
    department_names: pd.Series = field(
        default_factory=lambda: pd.Series(dtype=object)
    )  # id -> name


@dataclass
class ChunkPlan:
    chats: pd.DataFrame  # the chunk's chats with email_normalized, to keep in the store
    outcomes: pd.DataFrame  # OUTCOME_COLUMNS, one row per chat
    activities: pd.DataFrame  # ACTIVITY_COLUMNS, one row per (chat, record)
    multi_match_emails: set[str] = field(default_factory=set)

    def outcome_counts(self) -> dict[str, int]:
        counts = self.outcomes["outcome"].value_counts()
        return {name: int(counts.get(name, 0)) for name in OUTCOMES}


def normalize_chats(chats: pd.DataFrame, ctx: PlanContext) -> pd.DataFrame:
    """The chunk with ``email_normalized`` and ``email_status`` added."""
    normalized, status = email_key(chats["visitor_email"], ctx.provider_rules, ctx.strip_plus_tags)
    return chats.assign(email_normalized=normalized, email_status=status)


def plan_chunk(chats: pd.DataFrame, index: CrmIndex, ctx: PlanContext) -> ChunkPlan:
    """Outcomes and activities for a chunk of chats (already deduplicated, in stable order)."""
    chats = normalize_chats(chats, ctx).reset_index(drop=True)
    chats = chats.assign(department=_department(chats, ctx), agent=_first_agent_name(chats))
    pairs = match(chats, index, ctx.attach_to_deals)
    counts = match_counts(pairs)
    labels = records_label(pairs)

    outcome = pd.Series("lead_skipped", index=chats.index, dtype=object)
    reason = pd.Series("lead creation not enabled", index=chats.index, dtype=object)
    matched = chats["chat_id"].isin(pairs["chat_id"])
    outcome[matched] = "matched"
    reason[matched] = None
    outcome[chats["email_status"] == EMPTY] = "no_email"
    reason[chats["email_status"] == EMPTY] = "visitor gave no email"
    invalid = chats["email_status"] == INVALID
    outcome[invalid] = "invalid_email"
    reason[invalid] = (
        "not an email address: " + chats.loc[invalid, "visitor_email"].astype(str).str[:200]
    )

    match_count = chats["chat_id"].map(counts).fillna(0).astype("int64")
    outcomes = pd.DataFrame(
        {
            "chat_id": chats["chat_id"],
            "outcome": outcome,
            "email_normalized": chats["email_normalized"],
            "records": chats["chat_id"].map(labels).astype(object),
            "reason": reason,
            "match_count": match_count,
            "chat_started_at": chats["started_at"],
            "department": chats["department"],
            "agent": chats["agent"],
        },
        columns=list(OUTCOME_COLUMNS),
    )
    outcomes["records"] = outcomes["records"].where(outcomes["records"].notna(), None)
    multi = set(chats.loc[match_count > 1, "email_normalized"].dropna())
    activities = build_activities(chats, pairs, ctx)
    return ChunkPlan(
        chats=chats.drop(columns=["email_status", "department", "agent"]),
        outcomes=outcomes,
        activities=activities,
        multi_match_emails=multi,
    )


def build_activities(chats: pd.DataFrame, pairs: pd.DataFrame, ctx: PlanContext) -> pd.DataFrame:
    """One activity per (chat, record), carrying what the activity feed shows (seed S3, S4)."""
    if pairs.empty:
        return pd.DataFrame(columns=list(ACTIVITY_COLUMNS))
    per_chat = chats.set_index("chat_id")
    joined = pairs.join(per_chat, on="chat_id")
    frame = pd.DataFrame(
        {
            "chat_id": joined["chat_id"],
            "record_type": joined["record_type"],
            "record_id": joined["record_id"].astype("int64"),
            "kind": joined["kind"],
            "started_at": joined["started_at"],
            "ended_at": joined["ended_at"],
            "agent_names": joined["agent_names"],
            "agent_user_id": joined["chat_id"]
            .map(agent_user_ids(chats, ctx.agent_users))
            .astype("Int64"),
            "visitor_name": joined["visitor_name"],
            "record_name": joined["record_name"],
            "department": joined["department"],
            "tags": joined["tags"],
            "rating": joined["rating"],
            "message_count": joined["message_count"],
            "transcript": joined["transcript"],
            "transcript_url": transcript_urls(joined["chat_id"], ctx),
            "chat_version": joined["version"],
        }
    )
    frame["content_hash"] = activity_hash(frame)
    return frame[list(ACTIVITY_COLUMNS)].reset_index(drop=True)


def activity_hash(frame: pd.DataFrame) -> pd.Series:
    """A stable 64-bit hash (hex) of what an activity shows; unchanged hash = nothing to write."""
    hashed = (
        frame[list(_HASHED)].astype(object).where(frame[list(_HASHED)].notna(), None).astype(str)
    )
    values = pd.util.hash_pandas_object(hashed, index=False)
    return values.map("{:016x}".format)


def transcript_urls(chat_ids: pd.Series, ctx: PlanContext) -> pd.Series:
    """Links to the conversation in Chat, from ``[chat] transcript_url_template``."""
    template = ctx.transcript_url_template
    if not template or ("{subdomain}" in template and not ctx.subdomain):
        return pd.Series(None, index=chat_ids.index, dtype=object)
    return pd.Series(
        [template.format(chat_id=quote(c, safe=".-_~"), subdomain=ctx.subdomain) for c in chat_ids],
        index=chat_ids.index,
        dtype=object,
    )


def _agent_lists(column: pd.Series) -> pd.Series:
    return column.map(orjson.loads)


def agent_user_ids(chats: pd.DataFrame, agent_users: pd.Series) -> pd.Series:
    """chat_id -> the Sell user id of the chat's first agent that maps to one (seed S9)."""
    if agent_users.empty or chats.empty:
        return pd.Series(dtype="Int64")
    exploded = pd.DataFrame(
        {"chat_id": chats["chat_id"], "agent_id": _agent_lists(chats["agent_ids"])}
    ).explode("agent_id")
    exploded["user_id"] = exploded["agent_id"].map(agent_users)
    mapped = exploded.dropna(subset=["user_id"])
    return mapped.groupby("chat_id", sort=False)["user_id"].first()


def agent_user_map(agents: pd.DataFrame, users: pd.DataFrame) -> pd.Series:
    """agent_id -> Sell user id, where the agent's email is a Sell user's (seed S9).

    Chat's agent export gives integer ids and chats list them as strings: keys are text.
    """
    if agents.empty or users.empty:
        return pd.Series(dtype="Int64")
    emails, _status = email_key(agents["email"])
    by_email = users.dropna(subset=["email_normalized"]).drop_duplicates("email_normalized")
    mapping = emails.map(by_email.set_index("email_normalized")["id"])
    result = pd.Series(mapping.to_numpy(), index=agents["agent_id"].astype(str)).dropna()
    return result.astype("Int64")


def _first_agent_name(chats: pd.DataFrame) -> pd.Series:
    names = _agent_lists(chats["agent_names"])
    return names.map(lambda items: items[0] if items else None)


def _department(chats: pd.DataFrame, ctx: PlanContext) -> pd.Series:
    by_id = chats["department_id"].map(ctx.department_names)
    named = chats["department_name"].where(chats["department_name"].astype(str) != "", None)
    out = named.astype(object).where(named.notna(), by_id)
    return out.where(out.notna(), None)
