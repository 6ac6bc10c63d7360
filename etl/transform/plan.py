"""A chunk's plan: every chat's outcome and every row to write, computed without I/O.

The loader applies a plan; a dry run reports it without applying. Chats arrive in the one
stable order (start time, then chat id) and every decision that depends on order (which chat
creates a lead, who owns it, which chat fills a phone) is made in it. The ``Planner`` carries
what one chunk's decisions leave for the next: leads created, phones filled, pool pointers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote

import numpy as np
import orjson
import pandas as pd

from etl.hashing import content_hash
from etl.text import person_name
from etl.transform.assign import Assigner, PoolState
from etl.transform.erasure import Erasures
from etl.transform.match import (
    PAIR_COLUMNS,
    CreatedLeads,
    CrmIndex,
    match,
    records_labels,
)
from etl.transform.normalize import (
    EMPTY,
    INVALID,
    OK,
    email_domain,
    email_key,
    phone_key,
    split_name,
)
from etl.transform.plankey import context_key, plan_keys
from etl.vocab import (
    ACTIVITY_COLUMNS,
    CHANGE_COLUMNS,
    ERASED_REASON,
    LEAD_COLUMNS,
    NOTE_COLUMNS,
    NOTE_KIND,
    NOTIFICATION_COLUMNS,
    NOTIFY_KIND,
    OUTCOME_COLUMNS,
    PHONE_CANDIDATE_COLUMNS,
    REMOVED_REASON,
    ChunkPlan,
    without_content,
)

_HASHED = ACTIVITY_COLUMNS[3:16]
_MAILTO = re.compile(r"^mailto:", re.IGNORECASE)


@dataclass(frozen=True)
class LeadPolicy:
    """When an unmatched chat with a usable email may create a lead (SPEC 3.3)."""

    enabled: bool = True
    source: str = "Chat"
    status: str = "New"
    tags: tuple[str, ...] = ("chat",)
    max_chat_age_days: int | None = None
    ignore_domains: tuple[str, ...] = ()
    create_from_offline: bool = True
    disabled_reason: str = "lead creation not enabled"


@dataclass(frozen=True)
class PhonePolicy:
    policy: str = "fill_empty"  # fill_empty | overwrite | never
    update_contacts: bool = False
    require_sell_agent: bool = False
    default_region: str = "US"


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
    active_users: frozenset[int] = frozenset()
    agent_emails: pd.Series = field(
        default_factory=lambda: pd.Series(dtype=object)
    )  # agent_id -> email
    department_names: pd.Series = field(
        default_factory=lambda: pd.Series(dtype=object)
    )  # id -> name
    leads: LeadPolicy = field(default_factory=LeadPolicy)
    phone: PhonePolicy = field(default_factory=PhonePolicy)
    notify_tags: frozenset[str] = frozenset({"notify_sales"})
    integration_user_id: int | None = None
    erasures: Erasures = field(default_factory=Erasures)  # the emails erased on request
    # [retention] transcripts_days: chats that ended before it keep no transcript, no note text
    transcripts_before: pd.Timestamp | None = None


def assignment_counts(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    """New leads by owner, by pool and by rule (the report's ``assignments``)."""
    return {
        "by_owner": {str(k): int(v) for k, v in frame["owner_id"].dropna().value_counts().items()},
        "by_pool": {str(k): int(v) for k, v in frame["pool"].dropna().value_counts().items()},
        "by_rule": {str(k): int(v) for k, v in frame["rule"].dropna().value_counts().items()},
    }


def normalize_chats(chats: pd.DataFrame, ctx: PlanContext) -> pd.DataFrame:
    """The chunk with ``email_normalized`` and ``email_status`` added."""
    normalized, status = email_key(chats["visitor_email"], ctx.provider_rules, ctx.strip_plus_tags)
    return chats.assign(email_normalized=normalized, email_status=status)


# -- the three steps of a plan ---------------------------------------------------------------------
#
# prepare: per chat, no order (normalize, match against the index as the run began, policy);
# decide:  in the one stable order, carried from chunk to chunk (new leads, owners, phones);
# build:   per chat again (outcomes, activities, notes, notifications).
# A single process runs all three per chunk; a Dask backfill runs prepare and build on the workers
# and decide in one place over the whole window. Both give the same rows, whatever the batching.

LEAD_CANDIDATE_DROP = ("transcript", "visitor_notes")  # decide never needs them; they are big


@dataclass
class Prepared:
    """A batch of chats, normalized and matched, with what decide needs marked on each."""

    chats: pd.DataFrame  # + email_normalized, email_status, department, agent, lead_candidate,
    #                      skip_reason (None: may create a lead), phone_ok
    pairs: pd.DataFrame  # PAIR_COLUMNS + own_lead: the records the index already holds

    def lead_candidates(self) -> pd.DataFrame:
        """Chats that match nothing yet and have a usable email: decide creates or attaches."""
        chats = self.chats
        return chats.loc[chats["lead_candidate"]].drop(columns=list(LEAD_CANDIDATE_DROP))

    def phone_candidates(self, ctx: PlanContext) -> pd.DataFrame:
        """(chat, lead or contact) pairs a visitor phone could go to (decide picks in order)."""
        kinds = ["lead", "contact"] if ctx.phone.update_contacts else ["lead"]
        if ctx.phone.policy == "never" or self.pairs.empty:
            return pd.DataFrame(columns=list(PHONE_CANDIDATE_COLUMNS))
        pairs = self.pairs[self.pairs["record_type"].isin(kinds) & ~self.pairs["own_lead"]]
        return _phone_rows(self.chats, pairs)


def _phone_rows(chats: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    with_phone = chats.loc[
        chats["phone_ok"], ["chat_id", "started_at", "ended_at", "visitor_phone"]
    ]
    rows = pairs[["chat_id", "record_type", "record_id"]].merge(with_phone, on="chat_id")
    return rows[list(PHONE_CANDIDATE_COLUMNS)].reset_index(drop=True)


def prepare(
    chats: pd.DataFrame, index: CrmIndex, ctx: PlanContext, *, record_outcomes: bool = True
) -> Prepared:
    """Normalize and match a batch of chats (any order, any batching): no decision is made here.

    With ``record_outcomes`` False (rematching chats already accounted for) no chat may create a
    lead, but a chat still attaches to a lead the run created for its email.

    A chat deleted at source is planned without its content (SPEC 10): no email, so it matches
    nothing, creates no lead and gives no phone; ``build_plan`` gives it the outcome ``removed``.
    So is a chat an erasure request covers (``erased``), once its email was matched to it.
    """
    chats = normalize_chats(without_content(chats), ctx).reset_index(drop=True)
    erased = ctx.erasures.covers(chats)
    if erased.any():
        chats = normalize_chats(
            without_content(chats.assign(deleted=chats["deleted"] | erased)), ctx
        )
    chats = chats.assign(erased=erased.to_numpy())
    chats = chats.assign(department=_department(chats, ctx), agent=_first_agent_name(chats))
    pairs = match(chats, index, ctx.attach_to_deals)
    origin = index.origin_chats()
    own = pd.Series(False, index=pairs.index)
    if not origin.empty and not pairs.empty:
        own = (
            (pairs["record_type"] == "lead")
            & (pairs["record_id"].map(origin).astype(object) == pairs["chat_id"])
            & pairs["new_this_run"]
        )
    pairs = pairs.assign(own_lead=own.astype(bool))
    if record_outcomes:
        pairs = _without_later_leads(chats, pairs, index)
    matched = chats["chat_id"].isin(pairs["chat_id"])
    skip = (
        skip_reasons(chats, ctx)
        if record_outcomes
        else pd.Series("rematch", index=chats.index, dtype=object)
    )
    phone_ok = chats["visitor_phone"].astype(str).str.strip() != ""
    if ctx.phone.require_sell_agent:
        agent_users = agent_user_ids(chats[phone_ok], ctx.agent_users, ctx.active_users)
        phone_ok &= chats["chat_id"].isin(agent_users.index)
    chats = chats.assign(
        lead_candidate=~matched & (chats["email_status"] == OK),
        skip_reason=skip,
        phone_ok=phone_ok,
    )
    return Prepared(chats=chats, pairs=pairs)


def _without_later_leads(chats: pd.DataFrame, pairs: pd.DataFrame, index: CrmIndex) -> pd.DataFrame:
    """Drop pairs to leads this run created from a chat that comes later in the stable order.

    Such a chat was decided before the lead existed (it could not create it: lead_skipped); a
    resumed run meets the lead in the store and must decide the chat as the first time.
    """
    starts = index.origin_starts
    if starts.empty or pairs.empty:
        return pairs
    new = pairs[
        (pairs["record_type"] == "lead")
        & pairs["new_this_run"]
        & ~pairs["own_lead"]
        & pairs["record_id"].isin(starts.index)
    ]
    if new.empty:
        return pairs
    chat_start = new["chat_id"].map(chats.set_index("chat_id")["started_at"])
    origin_start = new["record_id"].map(starts)
    origin_chat = new["record_id"].map(index.origins).astype(object)
    before = (chat_start < origin_start) | (
        (chat_start == origin_start) & (new["chat_id"] < origin_chat)
    )
    return pairs.drop(index=new.index[before.fillna(False).astype(bool)]).reset_index(drop=True)


def skip_reasons(chats: pd.DataFrame, ctx: PlanContext) -> pd.Series:
    """Why policy keeps each chat from creating a lead (None: it may create one)."""
    policy = ctx.leads
    reason = pd.Series(None, index=chats.index, dtype=object)
    if policy.max_chat_age_days is not None:
        age = (ctx.now - chats["started_at"]).dt.days
        old = age > policy.max_chat_age_days
        reason[old] = f"chat older than max_chat_age_days ({policy.max_chat_age_days})"
    if not policy.create_from_offline:
        reason[chats["kind"] == "offline_msg"] = "offline message (create_from_offline = false)"
    if policy.ignore_domains:
        domains = email_domain(chats["email_normalized"]).fillna("")
        ignored = pd.Series(False, index=chats.index)
        for domain in policy.ignore_domains:
            ignored |= (domains == domain) | domains.str.endswith("." + domain)
        reason[ignored] = "email domain " + domains[ignored] + " is in ignore_domains"
    if not policy.enabled:
        reason[:] = policy.disabled_reason
    return reason


@dataclass
class Decisions:
    """What decide settled for a batch, in order: new leads and their owners, which chats created
    or joined them, and the phones to write."""

    leads: pd.DataFrame  # LEAD_COLUMNS
    assignments: pd.DataFrame  # owner_id, pool, rule: one row per new lead
    new_pairs: pd.DataFrame  # PAIR_COLUMNS + own_lead: chats joined to leads created this run
    created: frozenset[str]  # chat ids that created a lead
    attached: frozenset[str]  # chat ids that joined a lead created this run
    phone_changes: pd.DataFrame  # CHANGE_COLUMNS
    pool_states: dict[str, PoolState] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def for_chats(self, chat_ids: pd.Series) -> Decisions:
        """The part a partition of these chats needs to build its rows."""
        ids = set(chat_ids)
        return Decisions(
            leads=self.leads.iloc[0:0],
            assignments=self.assignments.iloc[0:0],
            new_pairs=self.new_pairs[self.new_pairs["chat_id"].isin(ids)],
            created=frozenset(self.created & ids),
            attached=frozenset(self.attached & ids),
            phone_changes=self.phone_changes.iloc[0:0],
        )


@dataclass
class Planner:
    """Plans chunk after chunk; holds what earlier chunks decided (new leads, pools, phones)."""

    index: CrmIndex
    ctx: PlanContext
    assigner: Assigner
    next_lead_id: int = -1  # chat-created leads get negative ids: they are no Sell record (yet)
    created_leads: CreatedLeads = field(default_factory=CreatedLeads)  # so far, by email

    def plan(
        self,
        chats: pd.DataFrame,
        *,
        record_outcomes: bool = True,
        applied_changes: frozenset = frozenset(),
        stored_keys: pd.Series | None = None,
    ) -> ChunkPlan:
        """Plan a chunk of chats (deduplicated, in stable order).

        ``applied_changes`` holds (record_type, record_id, chat_id) of phone changes already made,
        so a rerun never makes them twice. With ``record_outcomes`` False (rematching chats
        already accounted for), no lead is created. ``stored_keys``: see ``build_plan``.
        """
        prepared = prepare(chats, self.index, self.ctx, record_outcomes=record_outcomes)
        decisions = self.decide(
            prepared.lead_candidates(), prepared.phone_candidates(self.ctx), applied_changes
        )
        return build_plan(prepared, decisions, self.ctx, stored_keys)

    def decide(
        self, candidates: pd.DataFrame, phones: pd.DataFrame, applied: frozenset = frozenset()
    ) -> Decisions:
        """The order-dependent part, for batches given in the stable order (start time, chat id).

        ``candidates`` are lead candidates (``Prepared.lead_candidates``), ``phones`` the phone
        candidates of the same chats; what is decided here is carried to the next batch.
        """
        leads, assignments, new_pairs, created, attached = self._create_leads(candidates)
        if not new_pairs.empty and self.ctx.phone.policy != "never":
            kinds = ["lead", "contact"] if self.ctx.phone.update_contacts else ["lead"]
            joined = new_pairs[new_pairs["record_type"].isin(kinds) & ~new_pairs["own_lead"]]
            more = _phone_rows(candidates, joined)
            if not more.empty:
                phones = pd.concat([phones, more], ignore_index=True) if not phones.empty else more
        decisions = Decisions(
            leads=leads,
            assignments=assignments,
            new_pairs=new_pairs,
            created=created,
            attached=attached,
            phone_changes=self._phone_changes(phones, applied),
            pool_states={
                name: PoolState(s.pointer, list(s.current), s.assigned)
                for name, s in self.assigner.state.items()
                if name in set(assignments["pool"].dropna())
            },
            warnings=list(self.assigner.warnings),
        )
        self.assigner.warnings.clear()
        return decisions

    # -- leads ----------------------------------------------------------------------------------

    def _create_leads(
        self, candidates: pd.DataFrame
    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, frozenset[str], frozenset[str]]:
        """One lead per email: the first chat (in order) allowed to create one does; chats of that
        email from then on, in this batch or later ones, join it (SPEC 3.3).
        Returns (leads, assignments, pairs, created, attached)."""
        no_assignments = pd.DataFrame(columns=["owner_id", "pool", "rule"])
        empty = pd.DataFrame(columns=list(LEAD_COLUMNS))
        if candidates.empty:
            return empty, no_assignments, _no_pairs(), frozenset(), frozenset()
        candidates = candidates.reset_index(drop=True)
        emails = candidates["email_normalized"]
        earlier = self.created_leads.find(emails)["found"]  # a lead an earlier batch created
        allowed = candidates["skip_reason"].isna() & ~earlier
        order = pd.Series(range(len(candidates)), index=candidates.index)
        first_allowed = order[allowed].groupby(emails[allowed]).min()
        creator_pos = emails.map(first_allowed)
        is_creator = order == creator_pos
        joins = earlier | (creator_pos.notna() & (order > creator_pos))
        creators = candidates[is_creator]
        leads, assignments = empty, no_assignments
        if not creators.empty:
            assignments = self.assigner.assign(creators, self.ctx.agent_emails)
            leads = self._lead_rows(creators, assignments)
            self.created_leads.add(leads)
            phones = [
                phone if isinstance(phone, str) or not pd.isna(phone) else None
                for phone in leads["phone"].to_numpy(dtype=object)
            ]
            self.index.add_created(int(leads["id"].iloc[0]), phones)  # (ids count down)
            assignments = assignments.reset_index(drop=True)
        joined = candidates[is_creator | joins]
        lead = self.created_leads.find(joined["email_normalized"])
        if not lead["found"].all():  # (joins are of an earlier batch's lead or this batch's)
            raise RuntimeError("a chat joins a lead this run has not created")
        new_pairs = pd.DataFrame(
            {
                "chat_id": joined["chat_id"],
                "record_type": "lead",
                "record_id": lead["id"],
                "record_name": lead["name"],
                "owner_id": lead["owner_id"],
                "new_this_run": True,
                "own_lead": is_creator[joined.index].to_numpy(),
            }
        )
        return (
            leads,
            assignments,
            new_pairs.reset_index(drop=True),
            frozenset(creators["chat_id"].to_numpy(dtype=object)),
            frozenset(candidates.loc[joins, "chat_id"].to_numpy(dtype=object)),
        )

    def _lead_rows(self, creators: pd.DataFrame, assignments: pd.DataFrame) -> pd.DataFrame:
        ids = list(range(self.next_lead_id, self.next_lead_id - len(creators), -1))
        self.next_lead_id -= len(creators)
        firsts, lasts, names = [], [], []
        for visitor, email in zip(
            creators["visitor_name"].to_numpy(dtype=object),
            creators["email_normalized"].to_numpy(dtype=object),
            strict=True,
        ):  # (one pass a lead: each step as a column operation cost more than the whole)
            first, last = split_name(visitor)
            last = last if last != "" else email.split("@")[0]
            firsts.append(first if first != "" else None)
            lasts.append(last)
            names.append(person_name(first or None, last))
        ended = creators["ended_at"]
        # (the frame infers the same dtype from the column as from its Timestamps; not from NaT)
        ended_at = ended.array if ended.notna().all() else ended.to_numpy()
        policy = self.ctx.leads
        leads = pd.DataFrame(
            {
                "id": ids,
                "owner_id": assignments["owner_id"].to_numpy(),
                "first_name": np.array(firsts, dtype=object),
                "last_name": np.array(lasts, dtype=object),
                "name": names,
                "email": np.array(
                    [_MAILTO.sub("", email.strip()) for email in creators["visitor_email"]],
                    dtype=object,
                ),
                "email_normalized": creators["email_normalized"].to_numpy(),
                "phone": creators["visitor_phone"]
                .where(creators["visitor_phone"] != "", None)
                .to_numpy(),
                "status": policy.status,
                "source": policy.source,
                "tags": orjson.dumps(list(policy.tags)).decode(),
                "created_at": ended_at,
                "updated_at": ended_at,
                "origin": "chat",
                "origin_chat_id": creators["chat_id"].to_numpy(),
            }
        )
        leads["owner_id"] = leads["owner_id"].astype("Int64")
        return leads

    # -- phones ---------------------------------------------------------------------------------

    def _phone_changes(self, candidates: pd.DataFrame, applied: frozenset) -> pd.DataFrame:
        """Visitor phones onto matched leads (and contacts) per ``[phone]`` (seed S10), in order."""
        policy = self.ctx.phone
        empty = pd.DataFrame(columns=list(CHANGE_COLUMNS))
        if policy.policy == "never" or candidates.empty:
            return empty
        candidates = candidates.sort_values(
            ["started_at", "chat_id", "record_type", "record_id"], kind="stable"
        )
        rows = []
        for chat_id, ended_at, phone, record_type, record_id in candidates[
            ["chat_id", "ended_at", "visitor_phone", "record_type", "record_id"]
        ].itertuples(index=False):
            if (record_type, int(record_id), chat_id) in applied:
                continue
            new = str(phone).strip()
            current = self.index.phone_of(record_type, record_id)
            has_current = current is not None and str(current).strip() != ""
            if policy.policy == "fill_empty" and has_current:
                continue
            if (
                policy.policy == "overwrite"
                and has_current
                and _same_phone(current, new, policy.default_region)
            ):
                continue
            rows.append((record_type, int(record_id), "phone", chat_id, current if has_current else None, new, ended_at))  # fmt: skip
            self.index.set_phone(record_type, record_id, new)
        return pd.DataFrame(rows, columns=list(CHANGE_COLUMNS)) if rows else empty


def _no_pairs() -> pd.DataFrame:
    return pd.DataFrame(columns=[*PAIR_COLUMNS, "own_lead"])


def build_plan(
    prepared: Prepared,
    decisions: Decisions,
    ctx: PlanContext,
    stored_keys: pd.Series | None = None,
) -> ChunkPlan:
    """Every chat's outcome and every row to write, from a prepared batch and its decisions.

    ``stored_keys``: chat id -> the plan key the store holds for it (int64, 0 for none:
    ``etl.transform.plankey``).
    A chat whose key is the one stored gets its outcome and no rows: the store holds them
    already (``ChunkPlan.unchanged_activities`` counts its activities), and it is left out of
    ``ChunkPlan.chats`` (its row is the stored one)."""
    chats, pairs = prepared.chats, prepared.pairs
    if not decisions.new_pairs.empty:
        pairs = pd.concat([pairs, decisions.new_pairs], ignore_index=True)
    # each pair's chat as a row of ``chats``: per-chat facts are counts over it, not groupbys
    at = chat_rows(chats, pairs)
    expired = _past_retention(chats, ctx)
    keys = plan_keys(chats, pairs, at, expired, context_key(ctx))
    chats = chats.assign(plan_key=keys)
    person = (pairs["record_type"] != "deal").to_numpy(dtype=bool)
    people = np.bincount(at[person], minlength=len(chats))  # leads and contacts matched
    old = np.bincount(
        at[person & ~pairs["new_this_run"].to_numpy(dtype=bool)], minlength=len(chats)
    )
    mine = np.bincount(at[person & pairs["own_lead"].to_numpy(dtype=bool)], minlength=len(chats))

    outcome = pd.Series(None, index=chats.index, dtype=object)
    reason = pd.Series(None, index=chats.index, dtype=object)
    matched = np.bincount(at, minlength=len(chats)) > 0
    outcome[matched] = "matched"
    outcome[matched & (people > 0) & (old == 0)] = "matched_new_lead"
    # the lead it created this run (met again when a run resumes): still the chat's own outcome
    outcome[(mine > 0) | chats["chat_id"].isin(decisions.created).to_numpy()] = "lead_created"
    empty = chats["email_status"] == EMPTY
    outcome[empty] = "no_email"
    reason[empty] = "visitor gave no email"
    invalid = chats["email_status"] == INVALID
    outcome[invalid] = "invalid_email"
    reason[invalid] = (
        "not an email address: " + chats.loc[invalid, "visitor_email"].astype(str).str[:200]
    )
    skipped = chats["lead_candidate"] & ~matched
    outcome[skipped] = "lead_skipped"
    reason[skipped] = chats.loc[skipped, "skip_reason"]
    removed = chats["deleted"]  # (blanked by prepare: no email, so no record, no row from it)
    outcome[removed] = "removed"
    reason[removed] = REMOVED_REASON
    erased = chats["erased"]
    reason[erased] = ERASED_REASON

    match_count = pd.Series(people.astype("int64"), index=chats.index)
    outcomes = pd.DataFrame(
        {
            "chat_id": chats["chat_id"],
            "outcome": outcome,
            "email_normalized": chats["email_normalized"],
            "records": pd.Series(
                records_labels(pairs, at, len(chats)), index=chats.index, dtype=object
            ),
            "reason": reason,
            "match_count": match_count,
            "chat_started_at": chats["started_at"],
            "department": chats["department"],
            "agent": chats["agent"],
        },
        columns=list(OUTCOME_COLUMNS),
    )
    pairs = pairs.drop(columns=["own_lead"])
    multi_match = set(chats.loc[match_count > 1, "email_normalized"].dropna())
    removed_chats = chats.loc[removed, "chat_id"].astype(object).reset_index(drop=True)
    erased_chats = chats.loc[erased, "chat_id"].astype(object).reset_index(drop=True)
    unchanged_activities = 0
    if stored_keys is not None and not stored_keys.empty:
        same = _unchanged(chats, keys, stored_keys)
        if same.any():  # their rows are the stored ones: built from what is left
            unchanged_activities = int(same[at].sum())
            kept = ~same
            pairs = pairs[kept[at]].reset_index(drop=True)
            chats, expired, erased = chats[kept], expired[kept], erased[kept]
            at = chat_rows(chats, pairs)
    return ChunkPlan(
        chats=_without_erased(_without_transcripts(chats, expired), erased).drop(
            columns=[
                "email_status",
                "department",
                "agent",
                "lead_candidate",
                "skip_reason",
                "phone_ok",
                "erased",
            ]
        ),  # fmt: skip
        outcomes=outcomes,
        activities=build_activities(chats, pairs, ctx, expired, at=at),
        leads=decisions.leads,
        notes=build_notes(chats[~expired], pairs, ctx),
        notifications=build_notifications(chats, pairs, ctx, ctx.notify_tags),
        phone_changes=decisions.phone_changes,
        pool_states=decisions.pool_states,
        assignments=decisions.assignments,
        multi_match_emails=multi_match,
        warnings=decisions.warnings,
        removed_chats=removed_chats,
        erased_chats=erased_chats,
        unchanged_activities=unchanged_activities,
    )


def _unchanged(chats: pd.DataFrame, keys: np.ndarray, stored_keys: pd.Series) -> np.ndarray:
    """Where a chat's key is the stored one and nothing decided in order or removed enters its
    rows (not a lead candidate, not deleted at source, not erased)."""
    at = pd.Index(stored_keys.index).get_indexer(chats["chat_id"])  # (-1: not stored)
    held = at >= 0
    same = np.zeros(len(chats), dtype=bool)  # (no float on the way: a key takes all 64 bits)
    same[held] = stored_keys.to_numpy(dtype=np.int64)[at[held]] == keys[held]
    return (
        same
        & ~chats["lead_candidate"].to_numpy(dtype=bool)
        & ~chats["deleted"].to_numpy(dtype=bool)
        & ~chats["erased"].to_numpy(dtype=bool)
    )


def chat_rows(chats: pd.DataFrame, pairs: pd.DataFrame) -> np.ndarray:
    """Each pair's chat as a row number of ``chats`` (a chunk holds each chat once)."""
    ids = pd.Index(chats["chat_id"])
    if not ids.is_unique:
        raise ValueError("a chunk to plan holds a chat twice")
    return ids.get_indexer(pairs["chat_id"])


def _past_retention(chats: pd.DataFrame, ctx: PlanContext) -> pd.Series:
    """Chats that ended before ``[retention] transcripts_days``: planned without their
    transcript and note text, so a re-read of an old export does not bring them back."""
    if ctx.transcripts_before is None:
        return pd.Series(False, index=chats.index)
    return (chats["ended_at"] < ctx.transcripts_before).fillna(False).astype(bool)


def _without_erased(chats: pd.DataFrame, erased: pd.Series) -> pd.DataFrame:
    return chats[~erased] if erased.any() else chats  # (a copy of every column saved)


def _without_transcripts(chats: pd.DataFrame, expired: pd.Series) -> pd.DataFrame:
    if not expired.any():
        return chats
    return chats.assign(
        transcript=chats["transcript"].where(~expired, ""),
        visitor_notes=chats["visitor_notes"].where(~expired, ""),
    )


def _same_phone(a: str, b: str, region: str) -> bool:
    if str(a).strip() == str(b).strip():
        return True
    keys = phone_key(pd.Series([a, b], dtype=object), region)
    return keys.iloc[0] is not None and keys.iloc[0] == keys.iloc[1]


# -- rows for activities, notes and notifications ------------------------------------------------


def build_activities(
    chats: pd.DataFrame,
    pairs: pd.DataFrame,
    ctx: PlanContext,
    expired: pd.Series | None = None,
    at: np.ndarray | None = None,
) -> pd.DataFrame:
    """One activity per (chat, record), carrying what the activity feed shows (seed S3, S4).

    The activity of a chat past retention (``expired``) keeps no transcript, but its hash is
    the one of the whole activity: the row ``prune`` blanked is then unchanged, not rewritten
    (nor sent to Sell again). ``at``: each pair's chat as a row of ``chats`` (``chat_rows``)."""
    if pairs.empty:
        return pd.DataFrame(columns=list(ACTIVITY_COLUMNS))
    at = chat_rows(chats, pairs) if at is None else at
    pairs = pairs.reset_index(drop=True)
    of = chats[list(_FROM_CHAT)].iloc[at].reset_index(drop=True)
    users = _first_users(chats["agent_ids"], ctx.agent_users)
    frame = pd.DataFrame(
        {
            "chat_id": pairs["chat_id"],
            "record_type": pairs["record_type"],
            "record_id": pairs["record_id"].astype("int64"),
            "kind": of["kind"],
            "started_at": of["started_at"],
            "ended_at": of["ended_at"],
            "agent_names": of["agent_names"],
            "agent_user_id": pd.array(users[at], dtype="Int64"),
            "visitor_name": of["visitor_name"],
            "record_name": pairs["record_name"],
            "department": of["department"],
            "tags": of["tags"],
            "rating": of["rating"],
            "message_count": of["message_count"],
            "transcript": of["transcript"],
            "transcript_url": transcript_urls(pairs["chat_id"], ctx),
            "chat_version": of["version"],
        }
    )
    frame["content_hash"] = activity_hash(frame)
    if expired is not None and expired.any():
        old = expired.to_numpy(dtype=bool)[at]
        frame["transcript"] = frame["transcript"].where(~old, "")
    return frame[list(ACTIVITY_COLUMNS)]


_NOTE_FROM_CHAT = ("chat_id", "visitor_notes", "agent", "agent_ids", "started_at", "ended_at")
_NOTIFY_FROM_CHAT = ("chat_id", "visitor_name", "agent", "started_at", "ended_at")
_FROM_CHAT = (
    "kind", "started_at", "ended_at", "agent_names", "visitor_name", "department", "tags",
    "rating", "message_count", "transcript", "version",
)  # fmt: skip


def build_notes(chats: pd.DataFrame, pairs: pd.DataFrame, ctx: PlanContext) -> pd.DataFrame:
    """The agent's notes (``visitor.notes``) on every record the chat attaches to (seed S8, S9).

    Authored by the agent's Sell user when the agent is one, else by the integration user.
    """
    notes = chats["visitor_notes"]
    noted = (notes != "").to_numpy(dtype=bool, copy=True)  # (most have none: strip the others)
    noted[noted] = (notes[noted].astype(str).str.strip() != "").to_numpy(dtype=bool)
    noted = chats.loc[noted, list(_NOTE_FROM_CHAT)]  # (not the transcripts: they are big)
    targets = pairs[pairs["chat_id"].isin(noted["chat_id"])]
    if targets.empty:
        return pd.DataFrame(columns=list(NOTE_COLUMNS))
    per_chat = noted.set_index("chat_id")
    authors = agent_user_ids(noted, ctx.agent_users)
    urls = transcript_urls(per_chat.index.to_series(), ctx)
    agent = per_chat["agent"].fillna("a chat agent")
    content = (
        "Note from " + agent + " (Zendesk Chat, " + per_chat["started_at"].dt.strftime("%Y-%m-%d %H:%M UTC") + "):\n"
        + per_chat["visitor_notes"].astype(str).str.strip()
        + urls.map(lambda u: f"\nTranscript: {u}" if u else "").to_numpy()
    )  # fmt: skip
    creator = (
        authors.reindex(per_chat.index).astype("Int64").fillna(ctx.integration_user_id)
        if ctx.integration_user_id is not None
        else authors.reindex(per_chat.index).astype("Int64")
    )
    return pd.DataFrame(
        {
            "chat_id": targets["chat_id"].to_numpy(),
            "record_type": targets["record_type"].to_numpy(),
            "record_id": targets["record_id"].astype("int64").to_numpy(),
            "kind": NOTE_KIND,
            "creator_id": targets["chat_id"].map(creator).astype("Int64").to_numpy(),
            "content": targets["chat_id"].map(content).to_numpy(),
            "created_at": targets["chat_id"].map(per_chat["ended_at"]).to_numpy(),
        }
    )


def build_notifications(
    chats: pd.DataFrame, pairs: pd.DataFrame, ctx: PlanContext, tags: frozenset[str]
) -> pd.DataFrame:
    """A notification to each attached record's owner for chats tagged for sales (seed S8)."""
    if not tags or pairs.empty:
        return pd.DataFrame(columns=list(NOTIFICATION_COLUMNS))
    wanted = {t.lower() for t in tags}
    # a chunk holds few distinct tag lists: read each once
    codes, lists = pd.factorize(chats["tags"].to_numpy(dtype=object), use_na_sentinel=False)
    hit = np.array([bool({x.lower() for x in orjson.loads(t)} & wanted) for t in lists], dtype=bool)
    tagged = chats.loc[hit[codes], list(_NOTIFY_FROM_CHAT)]
    targets = pairs[pairs["chat_id"].isin(tagged["chat_id"]) & pairs["owner_id"].notna()]
    if targets.empty:
        return pd.DataFrame(columns=list(NOTIFICATION_COLUMNS))
    per_chat = tagged.set_index("chat_id")
    urls = transcript_urls(per_chat.index.to_series(), ctx)
    visitor = per_chat["visitor_name"].where(per_chat["visitor_name"] != "", "A visitor")
    message = (
        visitor + " chatted with " + per_chat["agent"].fillna("Chat") + " on "
        + per_chat["started_at"].dt.strftime("%Y-%m-%d %H:%M UTC") + urls.map(lambda u: f": {u}" if u else "").to_numpy()
    )  # fmt: skip
    return pd.DataFrame(
        {
            "chat_id": targets["chat_id"].to_numpy(),
            "record_type": targets["record_type"].to_numpy(),
            "record_id": targets["record_id"].astype("int64").to_numpy(),
            "kind": NOTIFY_KIND,
            "user_id": targets["owner_id"].astype("Int64").to_numpy(),
            "message": targets["chat_id"].map(message).to_numpy(),
            "created_at": targets["chat_id"].map(per_chat["ended_at"]).to_numpy(),
        }
    )


def activity_hash(frame: pd.DataFrame) -> pd.Series:
    """What an activity shows, hashed: an unchanged hash means nothing to write."""
    return content_hash(frame[list(_HASHED)])


def transcript_urls(chat_ids: pd.Series, ctx: PlanContext) -> pd.Series:
    """Links to the conversation in Chat, from ``[chat] transcript_url_template``."""
    template = ctx.transcript_url_template
    if not template or ("{subdomain}" in template and not ctx.subdomain):
        return pd.Series(None, index=chat_ids.index, dtype=object)
    marker = "\x00"
    filled = template.format(chat_id=marker, subdomain=ctx.subdomain)
    ids = chat_ids.astype(str)
    if filled.count(marker) == 1 and not ids.empty and _url_safe(ids):
        # the usual case (ids need no quoting, the id once in the link): one vectorized join
        head, tail = filled.split(marker)
        return (head + ids + tail).astype(object)
    return pd.Series(
        [
            template.format(chat_id=quote(str(c), safe=".-_~"), subdomain=ctx.subdomain)
            for c in chat_ids
        ],
        index=chat_ids.index,
        dtype=object,
    )


_URL_SAFE = re.compile(r"[A-Za-z0-9.\-_~]*")  # what quote(safe=".-_~") leaves as it is


def _url_safe(ids: pd.Series) -> bool:
    """Whether every id needs no quoting: one match over them all, not a match per id."""
    values = ids.to_numpy(dtype=object)
    if not all(isinstance(value, str) for value in values):
        return False
    return _URL_SAFE.fullmatch("".join(values)) is not None


def agent_user_ids(
    chats: pd.DataFrame, agent_users: pd.Series, active: frozenset[int] | None = None
) -> pd.Series:
    """chat_id -> the Sell user id of the chat's first agent that maps to one (seed S9);
    with ``active``, only agents that map to an active Sell user count."""
    if agent_users.empty or chats.empty:
        return pd.Series(dtype="Int64")
    found = pd.Series(
        _first_users(chats["agent_ids"], agent_users, active), index=chats["chat_id"].to_numpy()
    )
    found = found[found.notna()]
    return found[~found.index.duplicated()].astype("Int64")


def _first_users(
    agent_ids: pd.Series, agent_users: pd.Series, active: frozenset[int] | None = None
) -> np.ndarray:
    """Per chat (its ``agent_ids``), the Sell user id of its first agent that maps to one, or
    None (an object array)."""
    if agent_users.empty or agent_ids.empty:
        return np.full(len(agent_ids), None, dtype=object)
    users = {agent: int(user) for agent, user in agent_users.items() if pd.notna(user)}

    def first_user(agent_ids: str) -> int | None:
        for agent in orjson.loads(agent_ids):
            user = users.get(agent)
            if user is not None and (active is None or user in active):
                return user
        return None

    # a chunk holds few distinct agent lists: decide each once, not once per chat
    codes, texts = pd.factorize(agent_ids.to_numpy(dtype=object), use_na_sentinel=False)
    return np.array([first_user(text) for text in texts], dtype=object)[codes]


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
    """The first agent of each chat, from the canonical JSON list (``["Aiko", "Ken"]``)."""
    names = chats["agent_names"].astype("string")
    first = names.str.extract(r'^\["([^"\\]*)"', expand=False).astype(object)
    escaped = names.str.startswith('["') & first.isna()  # a name with a JSON escape: decode it
    if escaped.any():
        first[escaped] = names[escaped].map(lambda text: orjson.loads(text)[0])
    return first.where(first.notna(), None)


def _department(chats: pd.DataFrame, ctx: PlanContext) -> pd.Series:
    by_id = chats["department_id"].map(ctx.department_names)
    named = chats["department_name"].where(chats["department_name"].astype(str) != "", None)
    out = named.astype(object).where(named.notna(), by_id)
    return out.where(out.notna(), None)
