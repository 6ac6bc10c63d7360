"""A chat read again whose plan key is the stored one is not planned into rows again
(``etl.transform.plankey``): the store and the report must be what planning it would give.

Two stores go through the same runs and the same changes to the exports and the settings, one
as chatsell runs, one with the skip turned off (every chat planned into rows, as before plan
keys). After every run their data and their reports are equal; a change a key missed would
leave the skipping store with the old rows.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from etl.transform import plan as plan_module

from builders import chat, contact, lead, sell_dir, user, write_json, write_ndjson
from integration.scenario import make_exports, settings_for, sync
from storecheck import dump

pytestmark = pytest.mark.store


@contextmanager
def _no_skip():
    """Every chat planned into rows: its key compared with nothing."""

    def never(chats, keys, stored_keys):
        return np.zeros(len(chats), dtype=bool)

    with mock.patch.object(plan_module, "_unchanged", never):
        yield


@contextmanager
def _built(counts: dict[str, int]):
    """Counts the activities the planner builds."""
    real = plan_module.build_activities

    def counting(chats, pairs, *args, **kwargs):
        counts["activities"] += len(pairs)
        return real(chats, pairs, *args, **kwargs)

    with mock.patch.object(plan_module, "build_activities", counting):
        yield


def _exports(root: Path) -> tuple[Path, Path]:
    chats, sell = make_exports(root)
    write_ndjson(
        chats / "chats_tagged.jsonl",
        [
            chat("c9", "b@example.com", name="Bea Brown", start="2026-11-04T09:00:00Z",
                 tags=["notify_sales"], notes="Wants a quote"),
            chat("c10", "a@example.com", name="Ann Archer", start="2026-11-04T10:00:00Z",
                 tags=["notify_sales"], notes="Asked for the catalogue"),
        ],
    )  # fmt: skip
    return chats, sell


def _leads(sell: Path, **changes) -> None:
    records = [
        lead(1, "a@example.com", **changes),
        lead(2, "multi@example.com"),
        lead(3, None, last_name="NoMail"),
    ]
    sell_dir(sell.parent / "sell_new", leads=records)
    shutil.copy(sell.parent / "sell_new" / "leads.json", sell / "leads.json")


def _settings(url: str, template: str | None = None, write_process: bool = True):
    data = settings_for(url).model_dump()
    data["run"]["write_process"] = write_process
    data["chat"]["subdomain"] = "acme"
    if template is not None:
        data["chat"]["transcript_url_template"] = template
    data["notify"]["tags"] = ["notify_sales"]
    return type(settings_for(url)).model_validate(data)


# each step: a name, and what it changes in the exports (chats dir, sell dir) before the run,
# and the settings' transcript link template from then on
def _rename_lead(chats: Path, sell: Path) -> None:
    _leads(sell, last_name="Archer-Smith")


def _new_owner(chats: Path, sell: Path) -> None:
    _leads(sell, last_name="Archer-Smith", owner_id=102)


def _agent_is_a_user(chats: Path, sell: Path) -> None:
    agents = [{"id": 4120927, "email": "owner1@example.com", "display_name": "Aiko Agent",
               "enabled": True, "departments": []}]  # fmt: skip
    write_json(chats / "agents.json", agents)


def _contact_for_new_email(chats: Path, sell: Path) -> None:
    contacts = [
        contact(20, "info@acme.example", is_organization=True, name="Acme Inc"),
        contact(10, "b@example.com", contact_id=20, name="Bea Brown"),
        contact(11, "Multi@Example.com", name="Multi Person"),
        contact(12, "new.visitor@example.org", name="New Visitor"),
    ]
    sell_dir(sell.parent / "sell_contacts", contacts=contacts)
    shutil.copy(sell.parent / "sell_contacts" / "contacts.json", sell / "contacts.json")


def _users_renamed(chats: Path, sell: Path) -> None:
    users = [user(101, "owner1@example.com", name="Owner One"), user(102, "aiko@example.com")]
    sell_dir(sell.parent / "sell_users", users=users)
    shutil.copy(sell.parent / "sell_users" / "users.json", sell / "users.json")


# (name, the change, the new link template, whether chats are planned into rows again)
STEPS = [
    ("nothing", None, None, False),
    ("a lead renamed", _rename_lead, None, True),
    ("the lead's owner changed", _new_owner, None, True),
    ("the transcript link changed", None, "https://chat.example/{chat_id}", True),
    ("the agent is a Sell user", _agent_is_a_user, None, True),
    ("a contact for a new email", _contact_for_new_email, None, True),
    ("a Sell user renamed (no row shows a user's name)", _users_renamed, None, False),
    ("nothing again", None, None, False),
]


def test_a_full_run_that_skips_unchanged_chats_writes_what_planning_them_writes(
    store_url, tmp_path
):
    planned = f"sqlite:///{tmp_path / 'planned.db'}"
    mine = _exports(tmp_path / "mine")
    theirs = _exports(tmp_path / "theirs")
    template = None

    def both(**options) -> tuple[dict, dict, int]:
        counts = {"activities": 0}
        with _built(counts):
            got = sync(store_url, *mine, settings=_settings(store_url, template), **options)
        with _no_skip():
            want = sync(planned, *theirs, settings=_settings(planned, template, False), **options)
        apart = frozenset({"source_file"})  # (each store reads its own copy of the exports)
        assert dump(store_url, drop_run_columns=True, drop=apart) == dump(
            planned, drop_run_columns=True, drop=apart
        )
        return got.report, want.report, counts["activities"]

    first, _, _ = both()
    assert first["writes"]["activities_inserted"] > 0
    assert first["writes"]["notifications_created"] > 0
    both(full=True)  # the leads chats created are no run's own now: their chats planned again
    for name, change, new_template, replanned in STEPS:
        if change is not None:
            change(*mine)
            change(*theirs)
        template = new_template or template
        got, want, built = both(full=True)
        for key in ("outcomes", "writes", "accounting", "multi_match_emails"):
            assert got[key] == want[key], (name, key)
        if replanned:
            assert built > 0, name  # the chats the change reaches were planned again
        else:
            assert built == 0, name  # nothing was built again
            assert got["writes"]["activities_unchanged"] > 0, name
