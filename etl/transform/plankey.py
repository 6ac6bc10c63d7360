"""A chat's plan key: what a replan of a chat the store holds would write for it, as 64 bits.

A chat's activities, notes and notifications are a function of the chat's content, of the
records its email matched (as the run's index holds them) and of a few settings. The key hashes
exactly those inputs: the chat's id, version, content hash, normalized email, department and
first agent, whether it is past ``[retention] transcripts_days``, the (record, name, owner)
pairs it attaches to, and the settings the rows are built with (``context_key``). Whether a
record is new this run (or the chat's own new lead) is not in it: it decides the chat's
outcome, which is planned every time, and no row (so a chat that created its lead keeps its
key when the next run meets the lead as any other). The store keeps each chat's key beside it (``chats.plan_key``), written in
the transaction that writes the rows the plan built.

A chat staged again whose key equals the stored one (a ``--full`` run over unchanged exports,
the CRM unchanged for its email) would be replanned into the rows the store holds already:
``build_plan`` then builds none of them, the writer reads none back, and its activities count
as unchanged (``ChunkPlan.unchanged_activities``). Its outcome is still planned and recorded.
Lead candidates, chats deleted at source and erased chats are always planned: their rows
depend on decisions made in order (``Planner.decide``) or remove what is stored.
"""

from __future__ import annotations

import hashlib

import numpy as np
import orjson
import pandas as pd

import etl
from etl.hashing import row_hashes

# bump when what a plan writes for a chat changes (its activities, notes or notifications):
# every stored key is then stale, and the next run plans every chat it reads
PLAN_KEY_VERSION = 1

_KEYED_CHAT = ("chat_id", "version", "content_hash", "email_normalized", "department", "agent")
_KEYED_PAIR_TEXT = ("record_type", "record_name")
_PRIME = np.uint64(1_000_003)


def context_key(ctx) -> int:
    """The settings a chat's rows are built with (``PlanContext``), hashed: a change of any of
    them makes every stored key stale. Per-chat facts the context decides (the department's
    name, the email's normalization, retention) are in the chat's part of the key."""
    agents = sorted((str(a), int(u)) for a, u in ctx.agent_users.items() if pd.notna(u))
    parts = [
        PLAN_KEY_VERSION,
        etl.__version__,
        ctx.transcript_url_template,
        ctx.subdomain,
        agents,
        ctx.integration_user_id,
        sorted(ctx.notify_tags),
        ctx.attach_to_deals,
        list(ctx.provider_rules),
        ctx.strip_plus_tags,
    ]
    digest = hashlib.blake2b(orjson.dumps(parts), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def plan_keys(
    chats: pd.DataFrame, pairs: pd.DataFrame, at: np.ndarray, expired: pd.Series, context: int
) -> np.ndarray:
    """Each chat's key (int64, never 0, one per row of ``chats``). ``pairs``: every record the chat
    attaches to (``PAIR_COLUMNS``), ``at``: each pair's row in ``chats``;
    ``expired``: past retention; ``context``: ``context_key``. Order-independent in the pairs."""
    n = len(chats)
    key = row_hashes(chats[list(_KEYED_CHAT)])
    key = _mix(key, expired.to_numpy(dtype=bool).astype(np.uint64))
    summed = np.zeros(n, dtype=np.uint64)  # (a chat's key never depends on the other chats)
    if len(pairs):
        per_pair = row_hashes(pairs[list(_KEYED_PAIR_TEXT)])
        numbers = (
            pairs["record_id"].astype("int64").to_numpy(),
            pairs["owner_id"].astype("Int64").fillna(-1).astype("int64").to_numpy(),
        )
        for values in numbers:
            per_pair = _mix(per_pair, values.view(np.uint64))
        np.add.at(summed, at, per_pair)  # (wraps modulo 2**64: any order gives the same sum)
    key = _mix(key, summed)
    key = _mix(key, np.bincount(at, minlength=n).astype(np.uint64))
    key = _mix(key, np.full(n, context, dtype=np.uint64))
    key[key == 0] = 1  # 0 is the store's "no key"
    return key.view(np.int64)


def _mix(key: np.ndarray, values: np.ndarray) -> np.ndarray:
    return (key * _PRIME) ^ pd.util.hash_array(values)
