"""Which chats an erasure request covers (SPEC 10, ``chatsell forget``).

The store remembers an erased email only as its keyed hash (``etl.hashing.email_hash``), with
the time it was erased. A chat read later whose normalized email hashes to one of them, and
that started before that time, is the erased person's: a sync plans it as ``removed`` (reason
``erasure request``) without its content, so an old export cannot bring the person back. A
chat the person starts after the erasure is a new conversation and loads as any other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from etl.hashing import email_hash
from etl.transform.normalize import email_key

# what may be an address inside free text (a reject's raw record): checked by its key
_ADDRESS = re.compile(r"[^\s\"'<>,;:()\[\]{}\\/]+@[^\s\"'<>,;:()\[\]{}\\/]+")


@dataclass(frozen=True)
class Erasures:
    salt: str = ""
    erased_at: Mapping[str, pd.Timestamp] = field(default_factory=dict)  # hash -> when

    def covers(self, chats: pd.DataFrame) -> pd.Series:
        """Per chat (``email_normalized``, ``started_at``): whether an erasure covers it. Only
        the chunk's distinct emails are hashed, and nothing when no one was erased."""
        covered = pd.Series(False, index=chats.index)
        if not self.erased_at or chats.empty:
            return covered
        emails = chats["email_normalized"]
        when = {}
        for email in emails.dropna().unique():
            at = self.erased_at.get(email_hash(self.salt, str(email)))
            if at is not None:
                when[email] = at
        if not when:
            return covered
        erased_at = pd.to_datetime(emails.map(when), utc=True)
        return (erased_at.notna() & (chats["started_at"] <= erased_at)).astype(bool)

    def mentioned_in(
        self, texts: pd.Series, provider_rules: Iterable[str] = (), strip_plus_tags: bool = False
    ) -> pd.Series:
        """Per text (a reject's raw record): whether it holds an erased address, as the
        planner would normalize it. An old export's unreadable line of an erased person is
        then recorded without its text."""
        held = pd.Series(False, index=texts.index)
        if not self.erased_at or texts.empty:
            return held
        for at, text in texts.items():
            found = _ADDRESS.findall(str(text or "")) if "@" in str(text or "") else []
            if not found:
                continue
            keys, _status = email_key(
                pd.Series(found, dtype=object), provider_rules, strip_plus_tags
            )
            held[at] = any(
                email_hash(self.salt, str(key)) in self.erased_at for key in keys.dropna()
            )
        return held
