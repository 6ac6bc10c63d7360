"""The Sell snapshot against the store: what is new or changed, and the CRM as it will be.

Records are upserted by id only when the exported version differs from the one last imported
(its ``sell_hash``); re-reading an unchanged export changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from etl.transform.normalize import email_key

PEOPLE = ("leads", "contacts", "users")


@dataclass
class SellDelta:
    """New or changed records per resource, and the emails whose matches may have changed."""

    changes: dict[str, pd.DataFrame]
    affected_emails: set[str] = field(default_factory=set)

    def counts(self) -> dict[str, int]:
        return {name: len(frame) for name, frame in self.changes.items()}


def with_email_keys(
    frames: dict[str, pd.DataFrame],
    provider_rules: Iterable[str] = (),
    strip_plus_tags: bool = False,
) -> dict[str, pd.DataFrame]:
    """Leads, contacts and users gain ``email_normalized`` (the same rules as chats)."""
    out = dict(frames)
    for name in PEOPLE:
        frame = frames.get(name)
        if frame is not None and "email" in frame:
            normalized, _status = email_key(frame["email"], tuple(provider_rules), strip_plus_tags)
            out[name] = frame.assign(email_normalized=normalized)
    return out


def resolve_owners(frames: dict[str, pd.DataFrame], users: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """CSV exports name owners by email or name: resolve those to ``owner_id`` via Sell users."""
    if users.empty:
        return frames
    by_email = (
        users.dropna(subset=["email_normalized"])
        .drop_duplicates("email_normalized")
        .set_index("email_normalized")["id"]
    )
    by_name = users.dropna(subset=["name"]).assign(_n=lambda f: f["name"].str.strip().str.lower())
    by_name = by_name.drop_duplicates("_n").set_index("_n")["id"]
    out = dict(frames)
    for name in ("leads", "contacts", "deals"):
        frame = frames.get(name)
        if frame is None or frame.empty or "owner_ref" not in frame:
            continue
        ref = frame["owner_ref"].astype("string").str.strip().str.lower()
        resolved = ref.map(by_email).fillna(ref.map(by_name))
        owner = frame["owner_id"].astype("Int64").fillna(resolved.astype("Int64"))
        out[name] = frame.assign(owner_id=owner)
    return out


def diff(
    store: dict[str, pd.DataFrame], exported: dict[str, pd.DataFrame], track_emails: bool = True
) -> SellDelta:
    """Exported rows that are new (id unknown) or changed (sell_hash differs) versus the store.

    ``track_emails`` False skips collecting the emails whose matches may change (a store with no
    chats yet has nothing to rematch).
    """
    changes: dict[str, pd.DataFrame] = {}
    affected: set[str] = set()
    for name, frame in exported.items():
        changes[name] = changed_rows(frame, store.get("sell_notes" if name == "notes" else name))
        if track_emails:
            affected |= changed_emails(name, changes[name])
    if track_emails:
        affected |= deal_emails(changes, store.get("contacts"))
    return SellDelta(changes, affected)


def changed_rows(frame: pd.DataFrame, stored: pd.DataFrame | None) -> pd.DataFrame:
    """The rows of one resource's ``frame`` that ``stored`` (id, sell_hash) does not hold as
    they are: one resource at a time, a run holds one resource's keys at once."""
    if frame.empty:
        return frame
    if stored is None or stored.empty:
        return frame.reset_index(drop=True)
    known = stored.set_index("id")["sell_hash"]
    old_hash = frame["id"].map(known)
    return frame[old_hash.isna() | (old_hash != frame["sell_hash"])].reset_index(drop=True)


def changed_emails(name: str, changed: pd.DataFrame) -> set[str]:
    """The emails whose matches a new or changed lead or contact may change."""
    if name not in ("leads", "contacts") or changed.empty:
        return set()
    return set(changed["email_normalized"].dropna())


def deal_emails(changes: dict[str, pd.DataFrame], stored_contacts: pd.DataFrame | None) -> set[str]:
    """The emails of the contacts (as person or organization) of new or changed deals."""
    deals = changes.get("deals")
    contacts = overlay(stored_contacts, changes.get("contacts"))
    if deals is None or deals.empty or contacts is None or contacts.empty:
        return set()
    linked = set(deals["contact_id"].dropna()) | set(deals["organization_id"].dropna())
    return set(contacts.loc[contacts["id"].isin(linked), "email_normalized"].dropna())


def overlay(stored: pd.DataFrame | None, changed: pd.DataFrame | None) -> pd.DataFrame | None:
    """The store's rows with this run's new or changed rows in their place."""
    if changed is None or changed.empty:
        return stored
    if stored is None:
        return changed.reset_index(drop=True)
    # only the store's (index) columns: the exported rows' other fields are written, not kept
    columns = [c for c in stored.columns if c in changed.columns]
    if stored.empty:
        merged = changed[columns].reset_index(drop=True).reindex(columns=stored.columns)
    else:
        kept = stored[~stored["id"].isin(set(changed["id"]))]
        merged = pd.concat([kept, changed[columns]], ignore_index=True)
    if "origin" in stored.columns:
        merged["origin"] = merged["origin"].astype(object).fillna("sell")
    return merged


def crm_after(store: dict[str, pd.DataFrame], delta: SellDelta) -> dict[str, pd.DataFrame]:
    """The CRM frames as they are once ``delta`` is applied (what a dry run matches against)."""
    out = dict(store)
    for name, frame in delta.changes.items():
        target = "sell_notes" if name == "notes" else name
        merged = overlay(store.get(target), frame)
        if merged is not None:
            out[target] = merged
    for name in ("leads", "contacts"):
        # a phone chatsell filled stays filled when the export has none (writers.KEEP_WHEN_EXPORT_EMPTY)
        before = store.get(name)
        if name not in out or before is None or before.empty or "phone" not in before:
            continue
        if out[name] is before:  # nothing exported changed it: its phones are the store's
            continue
        old_phone = out[name]["id"].map(before.set_index("id")["phone"])
        empty = out[name]["phone"].isna() | (out[name]["phone"].astype("string") == "")
        out[name].loc[empty, "phone"] = old_phone[empty]
    return out


class CompactTable:
    """A CRM table (leads, contacts) as ``crm_after`` leaves it, given one column at a time.

    What ``build_index`` reads of a table it reads column by column (``frame[name]``, ``name in
    frame``, ``del frame[name]``): the store's text waits compact (``Store.crm_compact``) and a
    column asked for is built then, the changed rows overlaid (``overlay``: the origin filled,
    a phone chatsell filled kept), so the table's Python strings are never all alive at once:
    at 1.4M records a frame of them took ~540 MB of the run's peak.
    """

    def __init__(
        self, name: str, stored: dict[str, Any], rows: int, changed: pd.DataFrame | None
    ) -> None:
        self.name = name
        self._stored, self._rows = stored, rows
        self._changed = changed if changed is not None and not changed.empty else None
        self.columns = list(stored)
        self._cache: dict[str, pd.Series] = {}
        self._keep = None
        length = rows
        if self._changed is not None:
            length = len(self._changed)
            if rows:
                ids = self._stored_series("id")
                self._keep = ~ids.isin(set(self._changed["id"])).to_numpy()
                length += int(self._keep.sum())
        self.index = pd.RangeIndex(length)

    def __contains__(self, column: str) -> bool:
        return column in self.columns

    def __getitem__(self, column: str) -> pd.Series:
        if column not in self.columns:
            raise KeyError(column)
        if column not in self._cache:
            self._cache[column] = self._merged(column)
        return self._cache[column]

    def __delitem__(self, column: str) -> None:
        self.columns.remove(column)
        self._cache.pop(column, None)
        if column not in ("id", "phone"):  # (the phones' merge reads the stored ids and phones)
            self._stored.pop(column, None)

    def get(self, column: str, default=None):
        return self[column] if column in self.columns else default

    def text_isin(self, column: str, values: Iterable[str]) -> Any:
        """``self[column].isin(values)`` as a bool array. A text column not built yet is
        compared where it is held (``StringDType``): none of its strings is made (the leads'
        statuses, 1.7M Python strings at 3M chats, only to be told which are converted)."""
        import numpy as np  # noqa: PLC0415

        values = list(values)
        wanted = [value for value in values if isinstance(value, str)]
        stored = self._stored.get(column)
        if (
            column in ("origin", "phone")  # (``_merged`` fills these: built then)
            or column in self._cache
            or not hasattr(stored, "series")
            or len(wanted) != len(values)
        ):
            return self[column].isin(values).to_numpy(dtype=bool)
        hit = np.isin(stored.values, wanted) if wanted else np.zeros(len(stored.values), bool)
        if self._changed is None:
            return hit
        part = np.zeros(len(self._changed), dtype=bool)
        if column in self._changed.columns:
            part = self._changed[column].isin(wanted).to_numpy(dtype=bool)
        return np.concatenate([hit[self._keep], part]) if self._rows else part

    def _stored_series(self, column: str) -> pd.Series:
        value = self._stored[column]
        return value.series() if hasattr(value, "series") else value  # (text: built now)

    def _merged(self, column: str) -> pd.Series:
        stored = self._stored_series(column)
        changed = self._changed
        if changed is None:  # (``overlay`` gives the stored frame itself)
            return stored
        part = changed[[column]] if column in changed.columns else changed[[]]
        if not self._rows:
            merged = part.reset_index(drop=True).reindex(columns=[column])[column]
        else:
            kept = stored[self._keep].to_frame(column)
            merged = pd.concat([kept, part], ignore_index=True)[column]
        if column == "origin":
            merged = merged.astype(object).fillna("sell")
        if column == "phone" and self._rows and self.name in ("leads", "contacts"):
            # a phone chatsell filled stays filled when the export has none (``crm_after``)
            before = pd.DataFrame({"id": self._stored_series("id"), "phone": stored})
            old_phone = self["id"].map(before.set_index("id")["phone"])
            out = merged.to_frame(column)
            empty = out["phone"].isna() | (out["phone"].astype("string") == "")
            out.loc[empty, "phone"] = old_phone[empty]
            merged = out["phone"]
        return merged
