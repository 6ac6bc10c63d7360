"""Assignment of new leads to an owner or a pool (seed S6), in the one stable order.

Rules are tried in order and the first whose conditions all hold wins; a condition's list
means "any of". A pool hands leads out ``round_robin`` in member order or ``weighted`` (smooth
weighted round robin: over n leads each member's share is within one lead of its weight's),
skipping inactive or unknown Sell users. A pool's pointer is state the caller keeps in the store
and commits with the leads it assigned.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from etl.config import AssignmentSettings
from etl.errors import ConfigError
from etl.transform.normalize import email_key

CONDITION_KEYS = ("department", "tags_any", "country_code", "email_domain", "type", "agent")
DEFAULT_RULE = "default"


@dataclass
class PoolState:
    """Where a pool's rotation stands: the next member index, and weighted credit per member."""

    pointer: int = 0
    current: list[int] = field(default_factory=list)
    assigned: int = 0

    def to_json(self) -> str:
        return json.dumps({"current": self.current})

    @classmethod
    def from_row(cls, pointer: int, state: str | None, assigned: int) -> PoolState:
        data = json.loads(state) if state else {}
        return cls(
            pointer=int(pointer), current=list(data.get("current", [])), assigned=int(assigned)
        )


@dataclass(frozen=True)
class Pool:
    name: str
    strategy: str
    member_ids: tuple[int | None, ...]  # None: the configured member is no Sell user
    eligible: tuple[bool, ...]  # known and active
    weights: tuple[int, ...]


@dataclass(frozen=True)
class Rule:
    name: str
    when: dict[str, tuple[str, ...]]
    pool: str | None
    owner_id: int | None


@dataclass
class Assigner:
    rules: tuple[Rule, ...]
    pools: dict[str, Pool]
    default: Rule | None
    state: dict[str, PoolState]
    warnings: list[str] = field(default_factory=list)

    def assign(self, leads: pd.DataFrame, agent_emails: pd.Series) -> pd.DataFrame:
        """(owner_id, pool, rule) for each new lead, rows in the given (stable) order.

        ``leads`` has department, tags (JSON), country_code, email_normalized, kind, agent_names
        (JSON) and agent_ids (JSON); ``agent_emails`` maps agent id -> email. Pool state moves.
        """
        n = len(leads)
        out = pd.DataFrame(
            {"owner_id": pd.array([pd.NA] * n, dtype="Int64"), "pool": None, "rule": None},
            index=leads.index,
        )
        if n == 0:
            return out
        rules = (*self.rules, *((self.default,) if self.default else ()))
        unassigned = np.ones(n, dtype=bool)
        facts = _facts(leads, agent_emails, (key for rule in rules for key in rule.when))
        for rule in rules:
            hit = unassigned & _holds(rule, facts, n)
            if not hit.any():
                continue
            out.loc[hit, "rule"] = rule.name
            if rule.owner_id is not None:
                out.loc[hit, "owner_id"] = rule.owner_id
            else:
                out.loc[hit, "pool"] = rule.pool
            unassigned &= ~hit
        # each pool deals its members in the leads' order, whichever rule sent them there, so the
        # owners never depend on how the leads were batched (chunks, windows, Dask partitions)
        for name in out["pool"].dropna().unique():
            rows = out["pool"] == name
            out.loc[rows, "owner_id"] = self._from_pool(self.pools[name], int(rows.sum()))
        if unassigned.any():
            self.warnings.append(
                "new leads matched no assignment rule and have no owner: set "
                "[assignment] default_owner or default_pool"
            )
        return out

    def _from_pool(self, pool: Pool, count: int) -> list[int | None]:
        state = self.state.setdefault(pool.name, PoolState())
        eligible = [i for i, ok in enumerate(pool.eligible) if ok]
        if not eligible:
            self.warnings.append(f"pool {pool.name} has no active member; its leads have no owner")
            return [None] * count
        if pool.strategy == "weighted":
            picks = _smooth_weighted(pool, eligible, state, count)
        else:
            picks = _round_robin(len(pool.member_ids), eligible, state, count)
        state.assigned += count
        return [pool.member_ids[i] for i in picks]


def _round_robin(size: int, eligible: list[int], state: PoolState, count: int) -> list[int]:
    """Members in order from the pointer, skipping the ineligible; the pointer moves past the last."""
    order = np.array(eligible)
    start = int(np.searchsorted(order, state.pointer % size))
    picks = order[(start + np.arange(count)) % len(order)].tolist()
    state.pointer = (picks[-1] + 1) % size
    return picks


def _smooth_weighted(pool: Pool, eligible: list[int], state: PoolState, count: int) -> list[int]:
    """nginx's smooth weighted round robin: deterministic, evenly interleaved, exact shares."""
    current = list(state.current) + [0] * (len(pool.member_ids) - len(state.current))
    current = current[: len(pool.member_ids)]
    total = sum(pool.weights[i] for i in eligible)
    picks = []
    for _ in range(count):
        for i in eligible:
            current[i] += pool.weights[i]
        best = max(eligible, key=lambda i: (current[i], -i))
        current[best] -= total
        picks.append(best)
    state.current = current
    state.pointer = (picks[-1] + 1) % len(pool.member_ids)
    return picks


def _facts(
    leads: pd.DataFrame, agent_emails: pd.Series, keys: Iterable[str]
) -> dict[str, tuple[np.ndarray, list[set[str]]]]:
    """Per lead, the values each condition key in ``keys`` looks at (lower-cased sets of
    strings), as (a code per lead, the set of each code): a chunk's leads share few departments,
    tag lists and agent lists, so each distinct one is read once, not once per lead."""
    facts: dict[str, tuple[np.ndarray, list[set[str]]]] = {}
    for key in set(keys):
        if key == "agent":
            codes, distinct = _distinct(leads[["agent_names", "agent_ids"]])
            emails = _agent_emails(agent_emails)
            facts[key] = (codes, [_agent_fact(names, ids, emails) for names, ids in distinct])
        else:
            column, fact = _FACTS[key]
            codes, distinct = _distinct(leads[[column]])
            facts[key] = (codes, [fact(value) for (value,) in distinct])
    return facts


def _distinct(columns: pd.DataFrame) -> tuple[np.ndarray, list[tuple[Any, ...]]]:
    """(a code per row, the distinct rows in code order)."""
    rows = zip(*(columns[c].to_numpy(dtype=object) for c in columns.columns), strict=True)
    seen: dict[tuple[Any, ...], int] = {}
    codes = np.fromiter((seen.setdefault(row, len(seen)) for row in rows), dtype=np.intp)
    return codes, list(seen)


def _text_or_empty(value: Any) -> str:  # as ``fillna("").astype(str)``
    return "" if _missing(value) else str(value)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _domain(email: Any) -> str:  # as ``email_domain(...).fillna("")``
    text = _text_or_empty(email)
    return text.split("@", 1)[1] if "@" in text else ""


_FACTS = {
    "department": ("department", lambda v: {_text_or_empty(v).strip().lower()}),
    "tags_any": ("tags", lambda t: {x.lower() for x in orjson.loads(t)}),
    "country_code": ("country_code", lambda v: {_text_or_empty(v).lower()}),
    "email_domain": ("email_normalized", lambda v: {_domain(v)}),
    # (``astype(str)`` keeps a missing value missing: it equals no condition value)
    "type": ("kind", lambda v: set() if _missing(v) else {str(v).lower()}),
}


def _agent_emails(agent_emails: pd.Series) -> Callable[[str], str]:
    """agent id -> its email, as ``agent_emails.get(agent, "")`` gives it, looked up once."""
    cache: dict[Any, str] = {}

    def email_of(agent: Any) -> str:
        if agent not in cache:
            cache[agent] = str(agent_emails.get(agent, "")).strip().lower()
        return cache[agent]

    return email_of


def _agent_fact(names: str, ids: str, email_of: Callable[[str], str]) -> set[str]:
    emails = {email_of(a) for a in orjson.loads(ids)} - {""}
    return {x.strip().lower() for x in orjson.loads(names)} | emails


def _holds(rule: Rule, facts: dict[str, tuple[np.ndarray, list[set[str]]]], n: int) -> np.ndarray:
    result = np.ones(n, dtype=bool)
    for key, wanted in rule.when.items():
        allowed = set(wanted)
        codes, values = facts[key]
        result &= np.array([bool(have & allowed) for have in values], dtype=bool)[codes]
    return result


# -- building an Assigner from configuration ---------------------------------------------------


def resolve_user(ref: str | int, users: pd.DataFrame) -> tuple[int | None, bool]:
    """(Sell user id, active) for a user id or email; (None, False) when no such user."""
    return resolve_users([ref], users)[str(ref).strip()]


def resolve_users(
    refs: Iterable[str | int], users: pd.DataFrame
) -> dict[str, tuple[int | None, bool]]:
    """``resolve_user`` of many references (keyed by the stripped text of each), with the email
    ones normalized in one pass: normalizing addresses one at a time costs ~5 ms each."""
    texts = sorted({str(ref).strip() for ref in refs})
    if users.empty:
        return {text: (None, False) for text in texts}
    found: dict[str, tuple[int | None, bool]] = {}
    by_id: dict[int, tuple[int, bool]] = {}
    by_email: dict[str, tuple[int, bool]] = {}
    statuses = users["status"] if "status" in users else pd.Series(None, index=users.index)
    for user_id, email, status in zip(
        users["id"], users["email_normalized"], statuses, strict=True
    ):
        entry = (int(user_id), str(status or "active").lower() != "inactive")
        by_id.setdefault(int(user_id), entry)
        if isinstance(email, str):
            by_email.setdefault(email, entry)
    emails = [text for text in texts if not text.lstrip("-").isdigit()]
    keys = email_key(pd.Series(emails, dtype=object))[0].tolist() if emails else []
    for text, key in zip(emails, keys, strict=True):
        found[text] = by_email.get(key, (None, False)) if key is not None else (None, False)
    for text in texts:
        if text not in found:
            found[text] = by_id.get(int(text), (None, False))
    return found


def _values(value: Any, key: str) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else [value]
    out = []
    for item in items:
        text = str(item).strip().lower()
        if key == "email_domain":
            text = text.removeprefix("@")
            normalized, _ = email_key(pd.Series([f"x@{text}"]))
            text = normalized.iloc[0].split("@", 1)[1] if normalized.iloc[0] else text
        out.append(text)
    return tuple(out)


def build_assigner(
    settings: AssignmentSettings, users: pd.DataFrame, state: dict[str, PoolState]
) -> Assigner:
    """Check the rules against the Sell users and compile them; ConfigError names what is wrong."""
    problems: list[str] = []
    for name, pool_cfg in settings.pools.items():
        if pool_cfg.strategy == "weighted" and (
            pool_cfg.weights is None
            or len(pool_cfg.weights) != len(pool_cfg.members)
            or min(pool_cfg.weights) < 1
        ):
            problems.append(
                f"[assignment.pools.{name}] weighted needs one positive weight per member"
            )
    pools: dict[str, Pool] = {}
    unknown_members: list[str] = []
    owners = [r.owner for r in settings.rules if r.owner is not None]
    known = resolve_users(
        [m for p in settings.pools.values() for m in p.members] + owners
        + ([settings.default_owner] if settings.default_owner is not None else []),
        users,
    )  # fmt: skip
    for name, pool_cfg in settings.pools.items():
        ids, eligible = [], []
        for member in pool_cfg.members:
            user_id, active = known[str(member).strip()]
            ids.append(user_id)
            eligible.append(user_id is not None and active)
            if user_id is None:
                unknown_members.append(f"{name}: {member}")
        weights = tuple(pool_cfg.weights or [1] * len(pool_cfg.members))
        pools[name] = Pool(name, pool_cfg.strategy, tuple(ids), tuple(eligible), weights)

    def compile_rule(
        name: str, when: dict[str, Any], pool: str | None, owner: str | int | None, where: str
    ) -> Rule | None:
        bad_keys = sorted(set(when) - set(CONDITION_KEYS))
        if bad_keys:
            problems.append(
                f"{where}: unknown condition {', '.join(bad_keys)} (use {', '.join(CONDITION_KEYS)})"
            )
        if (pool is None) == (owner is None):
            problems.append(f"{where}: give exactly one of pool or owner")
            return None
        owner_id = None
        if pool is not None and pool not in pools:
            problems.append(f"{where}: unknown pool {pool!r}")
        if owner is not None:
            owner_id, _active = known[str(owner).strip()]
            if owner_id is None:
                problems.append(f"{where}: unknown Sell user {owner!r}")
        return Rule(
            name, {k: _values(v, k) for k, v in when.items() if k in CONDITION_KEYS}, pool, owner_id
        )

    rules = []
    for i, rule_cfg in enumerate(settings.rules):
        rule = compile_rule(
            rule_cfg.name,
            rule_cfg.when,
            rule_cfg.pool,
            rule_cfg.owner,
            f"[[assignment.rules]] #{i + 1} {rule_cfg.name!r}",
        )
        if rule:
            rules.append(rule)
    default = None
    if settings.default_pool is not None or settings.default_owner is not None:
        default = compile_rule(
            DEFAULT_RULE, {}, settings.default_pool, settings.default_owner, "[assignment] default"
        )
    if problems:
        raise ConfigError("assignment rules:\n  " + "\n  ".join(problems))
    assigner = Assigner(tuple(rules), pools, default, state)
    if unknown_members:
        assigner.warnings.append(
            "pool members that are no Sell user are skipped: " + "; ".join(unknown_members)
        )
    return assigner
