"""The planner's fast paths against the code they replaced (branch fast-plan).

The functions below under "reference" are the planner's as they were before: each new path is
held to its reference on the same inputs, value by value (names and dtypes included), and a
whole sync's plans are compared chunk by chunk with the references swapped in.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from unittest import mock
from urllib.parse import quote

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl import hashing
from etl.config import load_settings
from etl.generate import generate
from etl.load.store import Store
from etl.run import SyncOptions, run_sync
from etl.text import person_name
from etl.transform import assign as assign_module
from etl.transform import normalize
from etl.transform import plan as plan_module
from etl.transform.assign import Assigner, Rule
from etl.transform.normalize import (
    _ANGLE,
    _GMAIL_DOMAINS,
    _SIMPLE_ADDRESS,
    _SPECIAL_USE,
    EMPTY,
    INVALID,
    OK,
    _email_key,
    email_domain,
    split_name,
)
from etl.transform.plan import (
    Decisions,
    PlanContext,
    Planner,
    Prepared,
    _past_retention,
    _without_transcripts,
)
from etl.transform.plankey import context_key, plan_keys
from etl.vocab import (
    ACTIVITY_COLUMNS,
    ERASED_REASON,
    NOTE_COLUMNS,
    NOTE_KIND,
    NOTIFICATION_COLUMNS,
    NOTIFY_KIND,
    OUTCOME_COLUMNS,
    REMOVED_REASON,
    ChunkPlan,
)

# == reference =====================================================================================

# -- etl.transform.normalize.email_key ---------------------------------------------------------


def email_key_reference(
    raw: pd.Series, provider_rules: Iterable[str] = (), strip_plus_tags: bool = False
) -> tuple[pd.Series, pd.Series]:
    text = raw.astype("string").fillna("")
    text = text.str.strip().str.replace(r"^mailto:", "", regex=True, case=False)
    bracketed = text.str.extract(_ANGLE, expand=False)
    text = bracketed.where(bracketed.notna(), text)
    text = text.str.normalize("NFKC").str.strip().str.lower().str.rstrip(".")
    empty = text.eq("")
    simple = text.str.fullmatch(_SIMPLE_ADDRESS) & ~text.str.contains("--", regex=False)
    local_len = text.str.find("@")
    simple &= (
        (local_len <= 64) & (text.str.len() <= 254) & ~text.str.contains(_SPECIAL_USE, regex=True)
    )
    normalized = text.where(simple, None).astype(object)
    hard = ~simple & ~empty
    if hard.any():
        keys = {value: _email_key(value) for value in text[hard].unique()}
        normalized[hard] = text[hard].map(keys).astype(object)
    normalized = normalized.where(normalized.notna() & ~empty, None)
    rules = set(provider_rules)
    if "gmail" in rules or strip_plus_tags:
        normalized = _provider_rules(normalized, "gmail" in rules, strip_plus_tags)
    status = pd.Series(OK, index=raw.index, dtype=object)
    status[normalized.isna()] = INVALID
    status[empty] = EMPTY
    return normalized, status


def _provider_rules(normalized: pd.Series, gmail: bool, strip_plus_tags: bool) -> pd.Series:
    parts = normalized.astype("string").str.split("@", n=1, expand=True)
    if parts.shape[1] < 2:
        return normalized
    local, domain = parts[0], parts[1]
    if gmail:
        is_gmail = domain.isin(_GMAIL_DOMAINS)
        local = local.where(
            ~is_gmail, local.str.split("+", n=1).str[0].str.replace(".", "", regex=False)
        )
        domain = domain.where(~is_gmail, "gmail.com")
    if strip_plus_tags:
        local = local.str.split("+", n=1).str[0]
    out = (local + "@" + domain).astype(object)
    return out.where(normalized.notna() & local.ne(""), None)


# -- etl.hashing.content_hash ------------------------------------------------------------------


def content_hash_reference(frame: pd.DataFrame) -> pd.Series:
    combined = np.zeros(len(frame), dtype=np.uint64)
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_datetime64_any_dtype(column.dtype):
            values = pd.util.hash_array(column.to_numpy(dtype="datetime64[us]").view("int64"))
        else:
            values = pd.util.hash_array(column.to_numpy(dtype=object, na_value=None))
        combined = (combined * np.uint64(1_000_003)) ^ values
    return pd.Series(combined.astype(">u8").view("S8"), index=frame.index).map(bytes.hex)


# -- etl.transform.assign.Assigner.assign ------------------------------------------------------


def assign_reference(self: Assigner, leads: pd.DataFrame, agent_emails: pd.Series) -> pd.DataFrame:
    n = len(leads)
    out = pd.DataFrame(
        {"owner_id": pd.array([pd.NA] * n, dtype="Int64"), "pool": None, "rule": None},
        index=leads.index,
    )
    if n == 0:
        return out
    unassigned = pd.Series(True, index=leads.index)
    facts = _facts(leads, agent_emails)
    for rule in (*self.rules, *((self.default,) if self.default else ())):
        hit = unassigned & _holds(rule, facts)
        if not hit.any():
            continue
        out.loc[hit, "rule"] = rule.name
        if rule.owner_id is not None:
            out.loc[hit, "owner_id"] = rule.owner_id
        else:
            out.loc[hit, "pool"] = rule.pool
        unassigned &= ~hit
    for name in out["pool"].dropna().unique():
        rows = out["pool"] == name
        out.loc[rows, "owner_id"] = self._from_pool(self.pools[name], int(rows.sum()))
    if unassigned.any():
        self.warnings.append(
            "new leads matched no assignment rule and have no owner: set "
            "[assignment] default_owner or default_pool"
        )
    return out


def _facts(leads: pd.DataFrame, agent_emails: pd.Series) -> dict[str, pd.Series]:
    tags = leads["tags"].map(lambda t: {x.lower() for x in orjson.loads(t)})
    names = leads["agent_names"].map(lambda t: {x.strip().lower() for x in orjson.loads(t)})
    emails = leads["agent_ids"].map(
        lambda t: {str(agent_emails.get(a, "")).strip().lower() for a in orjson.loads(t)} - {""}
    )
    return {
        "department": leads["department"]
        .fillna("")
        .astype(str)
        .str.strip()
        .str.lower()
        .map(lambda v: {v}),
        "tags_any": tags,
        "country_code": leads["country_code"].fillna("").astype(str).str.lower().map(lambda v: {v}),
        "email_domain": email_domain(leads["email_normalized"]).fillna("").map(lambda v: {v}),
        "type": leads["kind"].astype(str).str.lower().map(lambda v: {v}),
        "agent": names.combine(emails, lambda a, b: a | b),
    }


def _holds(rule: Rule, facts: dict[str, pd.Series]) -> pd.Series:
    index = next(iter(facts.values())).index
    result = pd.Series(True, index=index)
    for key, wanted in rule.when.items():
        allowed = set(wanted)
        result &= facts[key].map(lambda have, allowed=allowed: bool(have & allowed))
    return result


# -- etl.transform.plan: building the plan ------------------------------------------------------


def lead_rows_reference(
    self: Planner, creators: pd.DataFrame, assignments: pd.DataFrame
) -> pd.DataFrame:
    ids = list(range(self.next_lead_id, self.next_lead_id - len(creators), -1))
    self.next_lead_id -= len(creators)
    names = creators["visitor_name"].map(split_name)
    first = names.str[0]
    local_part = creators["email_normalized"].str.split("@").str[0]
    last = names.str[1].where(names.str[1] != "", local_part)
    policy = self.ctx.leads
    leads = pd.DataFrame(
        {
            "id": ids,
            "owner_id": assignments["owner_id"].to_numpy(),
            "first_name": first.where(first != "", None).to_numpy(),
            "last_name": last.to_numpy(),
            "name": [person_name(f or None, la) for f, la in zip(first, last, strict=True)],
            "email": creators["visitor_email"]
            .str.strip()
            .str.replace(r"^mailto:", "", regex=True, case=False)
            .to_numpy(),
            "email_normalized": creators["email_normalized"].to_numpy(),
            "phone": creators["visitor_phone"]
            .where(creators["visitor_phone"] != "", None)
            .to_numpy(),
            "status": policy.status,
            "source": policy.source,
            "tags": orjson.dumps(list(policy.tags)).decode(),
            "created_at": creators["ended_at"].to_numpy(),
            "updated_at": creators["ended_at"].to_numpy(),
            "origin": "chat",
            "origin_chat_id": creators["chat_id"].to_numpy(),
        }
    )
    leads["owner_id"] = leads["owner_id"].astype("Int64")
    return leads


def build_plan_reference(
    prepared: Prepared,
    decisions: Decisions,
    ctx: PlanContext,
    stored_keys: pd.Series | None = None,
) -> ChunkPlan:
    """The whole plan; then, if some chats' plan key is the stored one, the rows of the plan of
    the other chats alone: what skipping them must come to."""
    plan = build_whole_plan_reference(prepared, decisions, ctx)
    chats, pairs = prepared.chats, prepared.pairs
    if not decisions.new_pairs.empty:
        pairs = pd.concat([pairs, decisions.new_pairs], ignore_index=True)
    at = pd.Index(chats["chat_id"]).get_indexer(pairs["chat_id"])
    keys = plan_keys(chats, pairs, at, _past_retention(chats, ctx), context_key(ctx))
    plan.chats = plan.chats.assign(plan_key=keys[~chats["erased"].to_numpy(dtype=bool)])
    if stored_keys is None:
        return plan
    same = {
        chat_id
        for chat_id, key, candidate, deleted, erased in zip(
            chats["chat_id"],
            keys,
            chats["lead_candidate"],
            chats["deleted"],
            chats["erased"],
            strict=True,
        )  # fmt: skip
        if stored_keys.get(chat_id) == key and not (candidate or deleted or erased)
    }
    if not same:
        return plan
    others = Prepared(
        chats=chats[~chats["chat_id"].isin(same)],
        pairs=prepared.pairs[~prepared.pairs["chat_id"].isin(same)].reset_index(drop=True),
    )
    rows = build_whole_plan_reference(others, decisions, ctx)
    rows.chats = rows.chats.assign(plan_key=plan.chats.set_index("chat_id")["plan_key"]
                                   .reindex(rows.chats["chat_id"]).to_numpy())  # fmt: skip
    return dataclasses.replace(
        plan,
        chats=rows.chats,
        activities=rows.activities,
        notes=rows.notes,
        notifications=rows.notifications,
        unchanged_activities=len(plan.activities) - len(rows.activities),
    )


def build_whole_plan_reference(
    prepared: Prepared, decisions: Decisions, ctx: PlanContext
) -> ChunkPlan:
    """Every chat's outcome and every row to write, from a prepared batch and its decisions."""
    chats, pairs = prepared.chats, prepared.pairs
    if not decisions.new_pairs.empty:
        pairs = pd.concat([pairs, decisions.new_pairs], ignore_index=True)
    people = pairs[pairs["record_type"] != "deal"]
    counts = match_counts(pairs)

    outcome = pd.Series(None, index=chats.index, dtype=object)
    reason = pd.Series(None, index=chats.index, dtype=object)
    matched = chats["chat_id"].isin(pairs["chat_id"])
    outcome[matched] = "matched"
    only_new = people.groupby("chat_id")["new_this_run"].all()
    outcome[matched & chats["chat_id"].map(only_new).eq(True)] = "matched_new_lead"
    # the lead it created this run (met again when a run resumes): still the chat's own outcome
    own = set(people.loc[people["own_lead"].astype(bool), "chat_id"]) | decisions.created
    outcome[chats["chat_id"].isin(own)] = "lead_created"
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

    labels = records_label(pairs)
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
    pairs = pairs.drop(columns=["own_lead"])
    expired = _past_retention(chats, ctx)
    return ChunkPlan(
        chats=_without_transcripts(chats, expired)[~erased].drop(
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
        activities=build_activities(chats, pairs, ctx, expired),
        leads=decisions.leads,
        notes=build_notes(chats[~expired], pairs, ctx),
        notifications=build_notifications(chats, pairs, ctx, ctx.notify_tags),
        phone_changes=decisions.phone_changes,
        pool_states=decisions.pool_states,
        assignments=decisions.assignments,
        multi_match_emails=set(chats.loc[match_count > 1, "email_normalized"].dropna()),
        warnings=decisions.warnings,
        removed_chats=chats.loc[removed, "chat_id"].astype(object).reset_index(drop=True),
        erased_chats=chats.loc[erased, "chat_id"].astype(object).reset_index(drop=True),
    )


def build_activities(
    chats: pd.DataFrame, pairs: pd.DataFrame, ctx: PlanContext, expired: pd.Series | None = None
) -> pd.DataFrame:
    """One activity per (chat, record), carrying what the activity feed shows (seed S3, S4).

    The activity of a chat past retention (``expired``) keeps no transcript, but its hash is
    the one of the whole activity: the row ``prune`` blanked is then unchanged, not rewritten
    (nor sent to Sell again)."""
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
    if expired is not None and expired.any():
        old = frame["chat_id"].isin(set(chats.loc[expired, "chat_id"]))
        frame["transcript"] = frame["transcript"].where(~old, "")
    return frame[list(ACTIVITY_COLUMNS)].reset_index(drop=True)


def build_notes(chats: pd.DataFrame, pairs: pd.DataFrame, ctx: PlanContext) -> pd.DataFrame:
    """The agent's notes (``visitor.notes``) on every record the chat attaches to (seed S8, S9).

    Authored by the agent's Sell user when the agent is one, else by the integration user.
    """
    noted = chats[chats["visitor_notes"].astype(str).str.strip() != ""]
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
    tagged = chats[chats["tags"].map(lambda t: bool({x.lower() for x in orjson.loads(t)} & wanted))]
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


def transcript_urls(chat_ids: pd.Series, ctx: PlanContext) -> pd.Series:
    """Links to the conversation in Chat, from ``[chat] transcript_url_template``."""
    template = ctx.transcript_url_template
    if not template or ("{subdomain}" in template and not ctx.subdomain):
        return pd.Series(None, index=chat_ids.index, dtype=object)
    marker = "\x00"
    filled = template.format(chat_id=marker, subdomain=ctx.subdomain)
    ids = chat_ids.astype(str)
    if filled.count(marker) == 1 and not ids.empty and ids.str.fullmatch(_URL_SAFE).all():
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


def agent_user_ids(
    chats: pd.DataFrame, agent_users: pd.Series, active: frozenset[int] | None = None
) -> pd.Series:
    """chat_id -> the Sell user id of the chat's first agent that maps to one (seed S9);
    with ``active``, only agents that map to an active Sell user count."""
    if agent_users.empty or chats.empty:
        return pd.Series(dtype="Int64")
    users = {agent: int(user) for agent, user in agent_users.items() if pd.notna(user)}

    def first_user(agent_ids: str) -> int | None:
        for agent in orjson.loads(agent_ids):
            user = users.get(agent)
            if user is not None and (active is None or user in active):
                return user
        return None

    # a chunk holds few distinct agent lists: decide each once, not once per chat
    texts = chats["agent_ids"]
    per_list = {text: first_user(text) for text in pd.unique(texts.to_numpy(dtype=object))}
    found = pd.Series(texts.map(per_list).to_numpy(), index=chats["chat_id"].to_numpy())
    found = found[found.notna()]
    return found[~found.index.duplicated()].astype("Int64")


_URL_SAFE = r"[A-Za-z0-9.\-_~]*"


def match_counts(pairs: pd.DataFrame) -> pd.Series:
    """Leads and contacts each chat matched (deals are consequences, not matches)."""
    people = pairs[pairs["record_type"] != "deal"]
    return people.groupby("chat_id").size()


_ORDER = {"lead": 0, "contact": 1, "deal": 2}


def records_label(pairs: pd.DataFrame) -> pd.Series:
    """``lead:12;contact:40;deal:7`` per chat, in a stable order."""
    if pairs.empty:
        return pd.Series(dtype=object)
    ordered = pairs.assign(_o=pairs["record_type"].map(_ORDER)).sort_values(
        ["chat_id", "_o", "record_id"]
    )
    labels = (ordered["record_type"] + ":" + ordered["record_id"].astype(str)).to_numpy(
        dtype=object
    )
    chat_ids = ordered["chat_id"].to_numpy(dtype=object)
    rank = ordered.groupby("chat_id", sort=False).cumcount().to_numpy()
    # most chats attach to one or two records: join rank by rank instead of a Python join per chat
    out = pd.Series(labels[rank == 0], index=chat_ids[rank == 0], dtype=object)
    for r in range(1, int(rank.max()) + 1):
        at = rank == r
        more = pd.Series(labels[at], index=chat_ids[at], dtype=object)
        out[more.index] = out[more.index] + ";" + more
    return out


def activity_hash(frame: pd.DataFrame) -> pd.Series:
    return content_hash_reference(frame[list(ACTIVITY_COLUMNS[3:16])])


# == the new paths against the reference ==========================================================

TRICKY_EMAILS = [
    "", " ", "  \t", None, np.nan, "a@b.com", " A@B.COM ", "mailto:x@y.org", "MAILTO:x@y.org",
    "mAiLtO: x@y.org", "mailto:mailto:x@y.org", "\u0131mailto:x@y.org", "mailto", "Name <x@y.org>",
    "<>", "< x@y.org >", "<a@b.c", "a <b> <c@d.org>", "ｎｅｗ．ｖｉｓｉｔｏｒ＠ｅｘａｍｐｌｅ．ｏｒｇ",
    "x@y.org.", "x@y.org...", "taro@", "@", "a--b@c.com", "a@b--c.com", "a@localhost",
    "a@x.local", "a@x.test", "a@b.invalid", "a@xtest", "a@b.onion", "a@b.arpa", "a@test",
    "user+tag@gmail.com", "U.s.Er+tag@GoogleMail.com", "+tag@gmail.com", "+@example.com",
    "a" * 64 + "@b.com", "a" * 65 + "@b.com", "x@" + "a" * 250 + ".com", "山田@例え.jp",
    "user@münchen.de", "\u212aa@b.com", "İ@x.com", "a@b.com\n", "a@b.com\n.", "a@b.com\x00",
    "x@y.org\u3000", "\u3000x@y.org", "a@B.Com<b@c.com>", "a.@b.com", ".a@b.com", "a..b@c.com",
    "a@b", "a@-b.com", "a@b.c0m", "a@b.co1", "\"quoted\"@b.com", "a@[127.0.0.1]", "a@b.com",
    "Visitor 123", "null", "nan",
]  # fmt: skip
EMAIL_RULES = [((), False), (("gmail",), False), ((), True), (("gmail",), True)]


def _same_keys(values: list, rules: tuple[str, ...], strip: bool) -> None:
    raw = pd.Series(values, dtype=object, index=[f"r{i}" for i in range(len(values))], name="e")
    expected = email_key_reference(raw, rules, strip)
    got = normalize.email_key(raw, rules, strip)
    pd.testing.assert_series_equal(got[0], expected[0])
    pd.testing.assert_series_equal(got[1], expected[1])


@pytest.mark.parametrize(("rules", "strip"), EMAIL_RULES)
def test_email_key_gives_what_the_column_steps_gave(rules, strip):
    _same_keys(TRICKY_EMAILS, rules, strip)
    for value in TRICKY_EMAILS:
        _same_keys([value], rules, strip)
    _same_keys([], rules, strip)
    _same_keys([None, ""], rules, strip)


@pytest.mark.parametrize(("rules", "strip"), EMAIL_RULES)
def test_email_key_of_a_string_column(rules, strip):
    raw = pd.Series(["A@b.com", None, "x+y@gmail.com", ""], dtype="str", name="visitor_email")
    pd.testing.assert_series_equal(
        normalize.email_key(raw, rules, strip)[0], email_key_reference(raw, rules, strip)[0]
    )


_EMAIL_ALPHABET = st.sampled_from(
    list('aAbzK09.-+_@<> \t\n:mMailtoILT．＠ｍ\u0131\u0130\u212a\u3000"é山')
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.text(_EMAIL_ALPHABET, max_size=30), st.text(max_size=20)), max_size=6),
    st.sampled_from(EMAIL_RULES),
)
def test_email_key_agrees_on_any_text(values, rules):
    _same_keys(values, *rules)


def test_content_hash_gives_what_it_gave():
    n = 2500
    rng = np.random.default_rng(7)
    words = np.array(["alpha", "beta", "gamma", "delta"], dtype=object)
    distinct = pd.Series([f"transcript {i} " * 3 for i in range(n)], dtype="str")
    frame = pd.DataFrame(
        {
            "few": pd.Series(words[rng.integers(0, 4, n)], dtype="str"),
            "distinct": distinct,
            "distinct_object": distinct.astype(object),
            "distinct_with_missing": distinct.where(rng.random(n) > 0.2),
            "object_with_none": distinct.astype(object).where(rng.random(n) > 0.1, None),
            "mixed": pd.Series([i if i % 3 else f"s{i}" for i in range(n)], dtype=object),
            "ints": rng.integers(0, 10, n),
            "nullable": pd.array(rng.integers(0, 5, n), dtype="Int64"),
            "floats": rng.random(n),
            "at": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 10**9, n), "s"),
            "naive": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 10**9, n), "ms"),
        }
    )  # fmt: skip
    frame.loc[::7, "nullable"] = pd.NA
    frame.loc[::11, "at"] = pd.NaT
    pd.testing.assert_series_equal(hashing.content_hash(frame), content_hash_reference(frame))
    for name in frame.columns:  # each column alone, and the first rows only (a small sample)
        for part in (frame[[name]], frame[[name]].iloc[:3], frame[[name]].iloc[:0]):
            pd.testing.assert_series_equal(hashing.content_hash(part), content_hash_reference(part))


ASSIGN_USERS = pd.DataFrame(
    {
        "id": [101, 102, 103, 104],
        "email_normalized": ["a@x.example", "b@x.example", "c@x.example", "d@x.example"],
        "status": ["active", "active", "active", "inactive"],
    }
)
ASSIGN_RULES = {
    "rules": [
        {"name": "jp", "when": {"department": ["Sales JP"], "country_code": ["jp"]}, "pool": "p1"},
        {"name": "tag", "when": {"tags_any": ["Enterprise", "vip"]}, "owner": 103},
        {"name": "dom", "when": {"email_domain": ["@acme.example"]}, "pool": "p2"},
        {"name": "offline", "when": {"type": ["offline_msg"]}, "pool": "p1"},
        {"name": "agent", "when": {"agent": ["Aiko", "ken@agents.example"]}, "pool": "p2"},
        {"name": "nan", "when": {"type": ["nan"], "department": [""]}, "owner": 101},
    ],
    "pools": {
        "p1": {"members": [101, 102, 104]},
        "p2": {"members": [101, 102, 103], "strategy": "weighted", "weights": [3, 1, 2]},
    },
}


def _assign_leads(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)

    def pick(*values):
        return pd.Series([values[i] for i in rng.integers(0, len(values), n)], dtype=object)

    return pd.DataFrame(
        {
            "department": pick("Sales JP", " sales jp ", "Support", None, np.nan, ""),
            "tags": pick("[]", '["ENTERPRISE"]', '["vip","x"]', '["other"]'),
            "country_code": pick("JP", "jp", "US", None, np.nan),
            "email_normalized": pick("a@acme.example", "b@other.example", "c@sub.acme.example"),
            "kind": pick("chat", "offline_msg", "OFFLINE_MSG", np.nan, None),
            "agent_names": pick("[]", '["Aiko"]', '[" aiko ", "Ken"]', '["Ken"]'),
            "agent_ids": pick("[]", '["1"]', '["2"]', '["1", "3"]', '["9"]'),
        },
    ).set_axis(pd.RangeIndex(5, 5 + n))


@pytest.mark.parametrize("rules", [ASSIGN_RULES, {**ASSIGN_RULES, "default_pool": "p1"}])
def test_assign_gives_what_it_gave(rules):
    config = assign_module.AssignmentSettings.model_validate(rules)
    agent_emails = pd.Series({"1": "AIKO@x.example", "2": " Ken@Agents.example", "3": None})
    old = assign_module.build_assigner(config, ASSIGN_USERS, {})
    new = assign_module.build_assigner(config, ASSIGN_USERS, {})
    for size in (0, 1, 40, 400):
        leads = _assign_leads(size)
        pd.testing.assert_frame_equal(
            new.assign(leads, agent_emails), assign_reference(old, leads, agent_emails)
        )
        assert new.state == old.state and new.warnings == old.warnings


# == whole plans: a sync's chunks planned by the new code and by the references ===================


def _with_references() -> ExitStack:
    """Swap the references in for the new paths (the planner calls them by these names)."""
    stack = ExitStack()
    stack.enter_context(mock.patch.object(plan_module, "email_key", email_key_reference))
    stack.enter_context(mock.patch.object(plan_module, "content_hash", content_hash_reference))
    stack.enter_context(mock.patch.object(Assigner, "assign", assign_reference))
    stack.enter_context(mock.patch.object(plan_module, "build_plan", build_plan_reference))
    stack.enter_context(mock.patch.object(Planner, "_lead_rows", lead_rows_reference))
    return stack


def _assert_same_plan(expected: ChunkPlan, got: ChunkPlan) -> None:
    for item in dataclasses.fields(ChunkPlan):
        want, have = getattr(expected, item.name), getattr(got, item.name)
        if isinstance(want, pd.DataFrame):
            pd.testing.assert_frame_equal(have, want, check_exact=True, obj=item.name)
        elif isinstance(want, pd.Series):
            pd.testing.assert_series_equal(have, want, check_exact=True, obj=item.name)
        else:
            assert have == want, item.name


@pytest.fixture
def plans_compared(monkeypatch):
    """Every chunk the sync plans is planned twice, by a copy of the planner with the references
    and by the planner itself with the new code; the two plans must be equal."""
    planned = []
    plan = Planner.plan

    def both(self: Planner, chats: pd.DataFrame, **options) -> ChunkPlan:
        reference = copy.deepcopy(self)
        with _with_references():
            expected = plan(reference, chats, **options)
        got = plan(self, chats, **options)
        _assert_same_plan(expected, got)
        planned.append((len(chats), len(got.leads), len(got.activities), got.unchanged_activities))
        return got

    monkeypatch.setattr(Planner, "plan", both)
    return planned


@pytest.fixture(scope="module")
def generated_exports(tmp_path_factory):
    out = tmp_path_factory.mktemp("fast_plan")
    generate(out, chats=600, records=300, seed=11, pages_size=200, workers=1)
    return out / "chat", out / "sell"


def _members(sell: Path) -> list[str]:
    users = orjson.loads((sell / "users.json").read_bytes())["items"]
    return [u["data"]["email"] for u in users if u["data"]["status"] == "active"]


VARIANTS = {
    "small chunks, every condition": {
        "run": {"chunk_size": 70},
        "phone": {"policy": "fill_empty", "update_contacts": True},
    },
    "provider rules, overwrite, retention": {
        "run": {"chunk_size": 250},
        "match": {"provider_rules": ["gmail"], "strip_plus_tags": True},
        "phone": {"policy": "overwrite", "update_contacts": True},
        "retention": {"transcripts_days": 60},
        "notify": {"tags": ["vip", "enterprise", "notify_sales"]},
    },
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_sync_plans_what_the_references_plan(
    variant, generated_exports, plans_compared, tmp_path
):
    chats, sell = generated_exports
    url = f"sqlite:///{tmp_path / 'store.db'}"
    members = _members(sell)
    data = load_settings(None, database_url=url).model_dump()
    data["assignment"] = {
        "rules": [
            {"name": "JP", "when": {"department": ["Sales JP"], "country_code": ["JP"]}, "pool": "a"},
            {"name": "Tag", "when": {"tags_any": ["enterprise"]}, "pool": "b"},
            {"name": "Agent", "when": {"agent": [members[0], "Aiko"]}, "pool": "b"},
            {"name": "Domain", "when": {"email_domain": ["example.com"]}, "pool": "a"},
            {"name": "Offline", "when": {"type": ["offline_msg"]}, "pool": "a"},
        ],
        "pools": {
            "a": {"members": members[:3]},
            "b": {"members": members[3:6], "strategy": "weighted", "weights": [3, 1, 2]},
        },
        "default_pool": "a",
    }  # fmt: skip
    data["lead_defaults"] = {"max_chat_age_days": None}
    for section, values in VARIANTS[variant].items():
        data[section] = {**data[section], **values}
    settings = type(load_settings(None, database_url=url)).model_validate(data)
    store = Store(url)
    try:
        first = run_sync(settings, SyncOptions(chats=chats, sell=sell), store=store)
        full = run_sync(settings, SyncOptions(chats=chats, sell=sell, full=True), store=store)
        before = len(plans_compared)
        # every chat's plan key is stored now: the rows of none are built again, and both
        # planners (the skip and the reference's whole plan taken apart) agree on each chunk
        again = run_sync(settings, SyncOptions(chats=chats, sell=sell, full=True), store=store)
    finally:
        store.dispose()
    assert first.report["outcomes"]["lead_created"] > 0
    assert full.report["accounting"]["balanced"]
    assert sum(chats for chats, *_ in plans_compared) >= 600
    assert sum(leads for _chats, leads, *_ in plans_compared) > 0
    assert again.report["outcomes"] == full.report["outcomes"]
    writes = again.report["writes"]
    assert writes["activities_unchanged"] == full.report["writes"]["activities_unchanged"]
    assert {key: value for key, value in writes.items() if key != "activities_unchanged"} == (
        dict.fromkeys(set(writes) - {"activities_unchanged"}, 0)
    )
    second = plans_compared[before:]
    built = sum(activities for _c, _l, activities, _u in second)
    skipped = sum(unchanged for *_, unchanged in second)
    assert skipped == full.report["writes"]["activities_unchanged"] and built == 0
