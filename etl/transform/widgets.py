"""Sell card data for Chat (seed S11): per visitor email, the fields of each matched card.

The layout is an allow-list per card type (lead, person contact, company contact): a field
leaves the store only when the layout names it. Names are Sell's standard fields, ``owner_name``,
or custom field names (looked up in the record's custom fields).
"""

from __future__ import annotations

from typing import Any

import orjson
import pandas as pd

from etl.config import WidgetsSettings

STANDARD_FIELDS = {
    "lead": (
        "id", "owner_id", "first_name", "last_name", "name", "organization_name", "title", "email",
        "phone", "mobile", "status", "source", "tags", "created_at", "updated_at", "origin",
    ),
    "contact": (
        "id", "owner_id", "contact_id", "first_name", "last_name", "name", "organization_name",
        "title", "email", "phone", "mobile", "customer_status", "prospect_status", "tags",
        "created_at", "updated_at",
    ),
}  # fmt: skip
STANDARD_FIELDS["company"] = STANDARD_FIELDS["contact"]


def card_rows(
    emails: list[str],
    leads: pd.DataFrame,
    contacts: pd.DataFrame,
    users: pd.DataFrame,
    layout: WidgetsSettings,
    converted_statuses: list[str],
) -> list[dict[str, Any]]:
    """One row per (email, card): ``email_normalized``, ``card`` (lead|contact|company), ``record_id`` and
    ``fields`` (name -> value, in layout order, nothing else)."""
    owner_names = dict(zip(users["id"], users["name"], strict=True)) if not users.empty else {}
    contact_emails = set(contacts["email_normalized"].dropna())
    wanted = set(emails)
    rows: list[dict[str, Any]] = []
    cards = []
    for _, lead in leads.iterrows():
        if lead["email_normalized"] in wanted and not (
            lead.get("status") in converted_statuses and lead["email_normalized"] in contact_emails
        ):
            cards.append(("lead", lead))
    for _, contact in contacts.iterrows():
        if contact["email_normalized"] in wanted:
            cards.append(
                ("company" if bool(contact.get("is_organization")) else "contact", contact)
            )
    order = {"lead": 0, "contact": 1, "company": 2}
    cards.sort(key=lambda c: (c[1]["email_normalized"], order[c[0]], int(c[1]["id"])))
    for card, record in cards:
        fields = getattr(layout, card).fields
        rows.append(
            {
                "email_normalized": record["email_normalized"],
                "card": card,
                "record_id": int(record["id"]),
                "fields": {name: _field(card, record, name, owner_names) for name in fields},
            }
        )
    return rows


def _field(card: str, record: pd.Series, name: str, owner_names: dict[int, str]) -> Any:
    if name == "owner_name":
        owner = record.get("owner_id")
        return owner_names.get(int(owner)) if owner is not None and not pd.isna(owner) else None
    if name in STANDARD_FIELDS[card]:
        return _plain(record.get(name))
    custom = record.get("custom_fields")
    if isinstance(custom, str) and custom:
        return _plain(orjson.loads(custom).get(name))
    return None


def _plain(value: Any) -> Any:
    if value is None or (not isinstance(value, str | list | dict) and pd.isna(value)):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def csv_columns(layout: WidgetsSettings) -> list[str]:
    """email_normalized, card, record_id, then every layout field once, in layout order."""
    seen: dict[str, None] = {}
    for card in ("lead", "contact", "company"):
        for name in getattr(layout, card).fields:
            seen.setdefault(name, None)
    return ["email_normalized", "card", "record_id", *seen]
