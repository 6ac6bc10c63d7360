"""Matching chats to CRM records on email_normalized (seed S1, S2).

A chat matches every lead and contact (person or company) with its normalized email, leads
chatsell created in earlier runs included; a converted lead is no target once its contact
exists. A chat matched to a contact is also attached to that contact's deals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

TARGET_COLUMNS = (
    "record_type",
    "record_id",
    "email_normalized",
    "record_name",
    "owner_id",
    "phone",
    "origin",
    "created_run_id",
)
DEAL_COLUMNS = ("record_id", "contact_id", "organization_id", "record_name", "owner_id")
PAIR_COLUMNS = ("chat_id", "record_type", "record_id", "record_name", "owner_id")


@dataclass
class CrmIndex:
    """What chats are matched against: held whole, the only thing besides a chunk in memory."""

    targets: pd.DataFrame  # TARGET_COLUMNS: every lead and contact that can take a chat
    deals: pd.DataFrame  # DEAL_COLUMNS
    users: pd.DataFrame  # id, email_normalized, status, name, team_name, group_name
    _by_email: pd.DataFrame | None = field(default=None, repr=False)

    def add_targets(self, rows: pd.DataFrame) -> None:
        """Records created during the run (leads from chats) become targets at once."""
        if rows.empty:
            return
        self.targets = pd.concat([self.targets, rows[list(TARGET_COLUMNS)]], ignore_index=True)
        self._by_email = None

    @property
    def by_email(self) -> pd.DataFrame:
        if self._by_email is None:
            usable = self.targets[self.targets["email_normalized"].notna()]
            self._by_email = usable.set_index("email_normalized").sort_index()
        return self._by_email


def build_index(
    leads: pd.DataFrame,
    contacts: pd.DataFrame,
    deals: pd.DataFrame,
    users: pd.DataFrame,
    conversions: pd.DataFrame,
    converted_statuses: list[str],
) -> CrmIndex:
    """The match index from the store's (and this run's) CRM frames.

    ``leads``/``contacts`` carry email_normalized already. A lead is converted when a lead
    conversion names it or its status is one of ``converted_statuses``; it stops being a target
    when its contact exists (the conversion's contact, or any contact with the same email).
    """
    contact_emails = set(contacts["email_normalized"].dropna())
    contact_ids = set(contacts["id"].dropna().astype("int64"))
    converted = leads["status"].isin(converted_statuses)
    if not conversions.empty:
        linked = conversions[
            conversions["individual_id"].isin(contact_ids)
            | conversions["organization_id"].isin(contact_ids)
        ]
        converted_with_contact = leads["id"].isin(set(linked["lead_id"].dropna()))
        converted = converted | leads["id"].isin(set(conversions["lead_id"].dropna()))
    else:
        converted_with_contact = pd.Series(False, index=leads.index)
    superseded = converted & (
        converted_with_contact | leads["email_normalized"].isin(contact_emails)
    )
    lead_targets = leads[~superseded]
    targets = pd.concat(
        [
            _targets(lead_targets, "lead"),
            _targets(contacts, "contact"),
        ],
        ignore_index=True,
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
    return CrmIndex(targets=targets, deals=deal_frame, users=users)


def _targets(frame: pd.DataFrame, record_type: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "record_type": record_type,
            "record_id": frame["id"].astype("Int64"),
            "email_normalized": frame["email_normalized"],
            "record_name": frame["name"],
            "owner_id": frame["owner_id"].astype("Int64"),
            "phone": frame["phone"],
            "origin": frame.get("origin", "sell"),
            "created_run_id": frame.get("created_run_id", pd.NA),
        },
        columns=list(TARGET_COLUMNS),
    )


def match(chats: pd.DataFrame, index: CrmIndex, attach_to_deals: bool = True) -> pd.DataFrame:
    """(chat_id, record_type, record_id, record_name, owner_id) for every record a chat attaches to.

    ``chats`` needs chat_id and email_normalized. Leads and contacts come first, then deals of
    matched contacts (as person or as organization); each (chat, record) once.
    """
    emails = chats.loc[chats["email_normalized"].notna(), ["chat_id", "email_normalized"]]
    by_email = index.by_email
    hits = emails[emails["email_normalized"].isin(by_email.index)]
    direct = hits.merge(by_email.reset_index(), on="email_normalized", how="inner")
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
                joined = joined.assign(record_type="deal")
                pairs.append(joined[list(PAIR_COLUMNS)])
    result = pd.concat(pairs, ignore_index=True) if len(pairs) > 1 else pairs[0]
    result = result.drop_duplicates(["chat_id", "record_type", "record_id"])
    result["record_id"] = result["record_id"].astype("int64")
    return result.reset_index(drop=True)


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
    labels = ordered["record_type"] + ":" + ordered["record_id"].astype(str)
    return labels.groupby(ordered["chat_id"]).agg(";".join)
