"""The pure planner's rules (SPEC 3.3, 3.4, 3.7, 3.8) on frames of a few chats, without a store.

A Planner is built as the pipeline builds one (``build_index`` over the CRM frames, an assigner
from ``build_assigner``, a ``PlanContext``) and plans chats given in the one stable order (start
time, then chat id). Each test names the values it expects: an outcome, a reason, an owner, a
phone change.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from etl.config import AssignmentSettings
from etl.transform.assign import build_assigner
from etl.transform.match import build_index
from etl.transform.plan import (
    LeadPolicy,
    PhonePolicy,
    PlanContext,
    Planner,
    build_plan,
    prepare,
    skip_reasons,
)
from etl.vocab import CHAT_COLUMNS  # (may move to etl.vocab)

NOW = pd.Timestamp("2026-11-10T12:00:00Z")
# the outcomes of SPEC 3.8 (``rejected`` is decided before planning, by the reader)
OUTCOMES = (
    "matched", "lead_created", "matched_new_lead", "lead_skipped", "no_email", "invalid_email",
    "rejected", "removed",
)  # fmt: skip
USERS = pd.DataFrame(
    {
        "id": pd.array([101, 102, 103, 105], dtype="Int64"),
        "name": ["Ann Owner", "Bo Owner", "Cy Owner", "Off Owner"],
        "email": ["a@sales.example", "b@sales.example", "c@sales.example", "off@sales.example"],
        "email_normalized": [
            "a@sales.example",
            "b@sales.example",
            "c@sales.example",
            "off@sales.example",
        ],
        "status": ["active", "active", "active", "inactive"],
    }
)
# round robin over 101, 102 for every new lead no rule claims; chats of "Sales JP" go to 103
ASSIGNMENT = {
    "rules": [{"name": "Japan desk", "when": {"department": ["Sales JP"]}, "owner": 103}],
    "pools": {"inbound": {"members": [101, 102]}},
    "default_pool": "inbound",
}


# -- tiny frames -------------------------------------------------------------------------------


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC") if "Z" in text else pd.Timestamp(text, tz="UTC")


def chat(chat_id: str, email: str = "", start: str = "2026-11-02T09:00:00Z", **fields) -> dict:
    """One chat row with CHAT_COLUMNS (what ``etl.extract.chats`` types a Chat record into)."""
    started = _ts(start)
    agents = fields.pop("agents", [("1", "Aiko Agent")])
    row = {
        "chat_id": chat_id,
        "kind": "chat",
        "started_at": started,
        "ended_at": started + pd.Timedelta(minutes=10),
        "updated_at": started + pd.Timedelta(minutes=10),
        "version": f"v/{chat_id}",
        "visitor_id": f"v.{chat_id}",
        "visitor_name": "Visitor 12345678",
        "visitor_email": email,
        "visitor_phone": "",
        "visitor_notes": "",
        "department_id": "",
        "department_name": "",
        "tags": "[]",
        "rating": "",
        "comment": "",
        "missed": False,
        "agent_ids": json.dumps([a for a, _ in agents]),
        "agent_names": json.dumps([n for _, n in agents]),
        "country_code": "US",
        "message_count": 2,
        "transcript": "09:00:10 Visitor: Hi\n09:00:11 Aiko Agent: Hello!",
        "content_hash": f"hash-{chat_id}",
        "deleted": False,
        "source_file": "chats.json",
        "position": f"record {chat_id}",
    }
    unknown = set(fields) - set(row)
    assert not unknown, unknown
    row.update(fields)
    return row


def chats(*rows: dict) -> pd.DataFrame:
    """A chunk as the planner receives it: CHAT_COLUMNS, in the stable order."""
    frame = pd.DataFrame(list(rows), columns=list(CHAT_COLUMNS))
    for column in ("started_at", "ended_at", "updated_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True).dt.as_unit("us")
    frame["message_count"] = frame["message_count"].astype("int64")
    return frame.sort_values(["started_at", "chat_id"], kind="stable").reset_index(drop=True)


def crm(leads=(), contacts=(), deals=(), conversions=()) -> dict[str, pd.DataFrame]:
    """The CRM frames ``build_index`` takes (the columns ``Store.crm_frames`` gives)."""
    lead_rows = [
        {"id": i, "owner_id": owner, "name": f"Lead {i}", "status": "New",
         "email_normalized": email, "phone": phone, "origin": "sell", "origin_chat_id": None,
         "created_run_id": None}
        for i, email, owner, phone in leads
    ]  # fmt: skip
    contact_rows = [
        {"id": i, "owner_id": owner, "is_organization": False, "contact_id": None,
         "name": f"Contact {i}", "email_normalized": email, "phone": phone}
        for i, email, owner, phone in contacts
    ]  # fmt: skip
    deal_rows = [
        {"id": i, "owner_id": owner, "name": f"Deal {i}", "contact_id": contact,
         "organization_id": None}
        for i, contact, owner in deals
    ]  # fmt: skip

    def frame(rows, columns):
        out = pd.DataFrame(rows, columns=columns)
        for column in columns:
            if column == "id" or (column.endswith("_id") and column != "origin_chat_id"):
                out[column] = out[column].astype("Int64")
        return out

    return {
        "leads": frame(lead_rows, ["id", "owner_id", "name", "status", "email_normalized",
                                   "phone", "origin", "origin_chat_id", "created_run_id"]),
        "contacts": frame(contact_rows, ["id", "owner_id", "is_organization", "contact_id",
                                         "name", "email_normalized", "phone"]),
        "deals": frame(deal_rows, ["id", "owner_id", "name", "contact_id", "organization_id"]),
        "users": USERS,
        "lead_conversions": frame(
            list(conversions), ["id", "lead_id", "individual_id", "organization_id", "deal_id"]
        ),
    }  # fmt: skip


def planner(
    frames: dict[str, pd.DataFrame] | None = None,
    *,
    leads: LeadPolicy | None = None,
    phone: PhonePolicy | None = None,
    **context,
) -> Planner:
    """A Planner as ``etl.run.planning.build_planner`` builds one (new lead ids count down from -1)."""
    frames = frames or crm()
    index = build_index(
        frames["leads"], frames["contacts"], frames["deals"], frames["users"],
        frames["lead_conversions"], ["Converted"], run_id=7,
    )  # fmt: skip
    assigner = build_assigner(AssignmentSettings.model_validate(ASSIGNMENT), USERS, {})
    ctx = PlanContext(
        now=NOW,
        run_id=7,
        leads=leads or LeadPolicy(),
        phone=phone or PhonePolicy(),
        active_users=frozenset({101, 102, 103}),
        **context,
    )
    return Planner(index=index, ctx=ctx, assigner=assigner, next_lead_id=-1)


def outcomes_of(plan) -> dict[str, str]:
    frame = plan.outcomes
    assert frame["chat_id"].is_unique
    return dict(zip(frame["chat_id"], frame["outcome"], strict=True))


def _none(value):
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


def reasons_of(plan) -> dict[str, str | None]:
    frame = plan.outcomes
    return {c: _none(r) for c, r in zip(frame["chat_id"], frame["reason"], strict=True)}


def changes_of(plan) -> list[tuple]:
    frame = plan.phone_changes
    return [
        (r, int(i), c, None if pd.isna(old) else old, new)
        for r, i, c, old, new in frame[
            ["record_type", "record_id", "chat_id", "old_value", "new_value"]
        ].itertuples(index=False)
    ]


# -- lead creation (SPEC 3.3, 3.4) -------------------------------------------------------------


def test_an_unmatched_chat_with_a_valid_email_creates_one_lead_owned_by_assignment():
    plan = planner().plan(
        chats(
            chat("c1", " mailto:Ann.Smith@Shop.EXAMPLE ", visitor_name="Ann Smith",
                 visitor_phone="+1 415 555 0101")
        )
    )  # fmt: skip
    assert len(plan.leads) == 1
    lead = plan.leads.iloc[0]
    assert int(lead["id"]) == -1
    assert int(lead["owner_id"]) == 101  # the first member of the default pool
    assert (lead["first_name"], lead["last_name"], lead["name"]) == ("Ann", "Smith", "Ann Smith")
    assert lead["email"] == "Ann.Smith@Shop.EXAMPLE"  # as given, mailto: stripped
    assert lead["email_normalized"] == "ann.smith@shop.example"
    assert lead["phone"] == "+1 415 555 0101"
    assert (lead["status"], lead["source"], json.loads(lead["tags"])) == ("New", "Chat", ["chat"])
    assert (lead["origin"], lead["origin_chat_id"]) == ("chat", "c1")
    assert lead["created_at"] == _ts("2026-11-02T09:10:00Z")  # the chat's end
    assert plan.assignments[["owner_id", "pool", "rule"]].values.tolist() == [
        [101, "inbound", "default"]
    ]
    assert outcomes_of(plan) == {"c1": "lead_created"}
    row = plan.outcomes.iloc[0]
    assert (row["records"], row["match_count"], _none(row["reason"])) == ("lead:-1", 1, None)
    assert plan.activities[["chat_id", "record_type", "record_id"]].values.tolist() == [
        ["c1", "lead", -1]
    ]


def test_owners_follow_the_rules_then_the_pool_in_the_stable_order():
    """A rule's owner for the chat it claims; the pool deals the others in chat order."""
    plan = planner().plan(
        chats(
            chat("c3", "three@shop.example", "2026-11-02T11:00:00Z"),
            chat("c1", "one@shop.example", "2026-11-02T09:00:00Z"),
            chat("c2", "jp@shop.example", "2026-11-02T10:00:00Z", department_name="Sales JP"),
            chat("c0", "zero@shop.example", "2026-11-02T09:00:00Z"),  # same start: id first
        )
    )
    owners = dict(
        zip(plan.leads["origin_chat_id"], plan.leads["owner_id"].astype(int), strict=True)
    )
    assert owners == {"c0": 101, "c1": 102, "c2": 103, "c3": 101}
    assert plan.assignments["rule"].value_counts().to_dict() == {"default": 3, "Japan desk": 1}
    assert plan.assignments["pool"].value_counts().to_dict() == {"inbound": 3}
    assert plan.leads["id"].tolist() == [-1, -2, -3, -4]  # ids count down in the stable order
    assert plan.leads["origin_chat_id"].tolist() == ["c0", "c1", "c2", "c3"]


def test_two_chats_of_one_email_create_one_lead_by_the_earliest_chat():
    # "a-late" sorts first by id, but "z-early" started first: the start time decides
    plan = planner().plan(
        chats(
            chat("a-late", "Pat@Shop.example", "2026-11-02T10:00:00Z", visitor_name="Pat Late"),
            chat("z-early", "pat@shop.example", "2026-11-02T09:00:00Z", visitor_name="Pat Early"),
        )
    )
    assert len(plan.leads) == 1
    lead = plan.leads.iloc[0]
    assert lead["origin_chat_id"] == "z-early"
    assert lead["name"] == "Pat Early"
    assert lead["email"] == "pat@shop.example"  # the creator's address, as given
    assert int(lead["owner_id"]) == 101 and len(plan.assignments) == 1  # one pool turn, not two
    assert outcomes_of(plan) == {"z-early": "lead_created", "a-late": "matched_new_lead"}
    assert plan.activities[["chat_id", "record_id"]].values.tolist() == [
        ["z-early", -1],
        ["a-late", -1],
    ]


def test_same_start_time_the_smaller_chat_id_creates_the_lead():
    plan = planner().plan(chats(chat("b", "tie@shop.example"), chat("a", "tie@shop.example")))
    assert plan.leads["origin_chat_id"].tolist() == ["a"]
    assert outcomes_of(plan) == {"a": "lead_created", "b": "matched_new_lead"}


def test_a_later_chunk_joins_the_lead_an_earlier_chunk_created():
    p = planner()
    first = p.plan(chats(chat("c1", "sam@shop.example", "2026-11-02T09:00:00Z")))
    second = p.plan(
        chats(
            chat("c2", "SAM@shop.example", "2026-11-03T09:00:00Z"),
            chat("c3", "other@shop.example", "2026-11-03T10:00:00Z"),
        )
    )
    assert first.leads["id"].tolist() == [-1]
    assert second.leads["email_normalized"].tolist() == ["other@shop.example"]  # no second sam
    assert second.leads["id"].tolist() == [-2]
    assert int(second.leads["owner_id"].iloc[0]) == 102  # the pool continues from chunk 1
    assert outcomes_of(second) == {"c2": "matched_new_lead", "c3": "lead_created"}
    assert second.outcomes.set_index("chat_id").loc["c2", "records"] == "lead:-1"


def test_a_chat_matching_a_crm_record_creates_no_lead():
    frames = crm(leads=[(1, "kim@shop.example", 102, None)])
    plan = planner(frames).plan(chats(chat("c1", "Kim@Shop.example")))
    assert plan.leads.empty and plan.assignments.empty
    assert outcomes_of(plan) == {"c1": "matched"}
    assert plan.outcomes["records"].tolist() == ["lead:1"]


# -- policy skips (SPEC 3.3) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "disabled"),
    [
        (LeadPolicy(enabled=False), "lead creation not enabled"),
        (
            LeadPolicy(enabled=False, disabled_reason="lead creation disabled (--no-create-leads)"),
            "lead creation disabled (--no-create-leads)",
        ),
    ],
)
def test_lead_creation_disabled_skips_every_unmatched_chat_and_still_matches(policy, disabled):
    frames = crm(contacts=[(10, "known@shop.example", 102, None)])
    plan = planner(frames, leads=policy).plan(
        chats(chat("c1", "new@shop.example"), chat("c2", "known@shop.example"))
    )
    assert plan.leads.empty
    assert outcomes_of(plan) == {"c1": "lead_skipped", "c2": "matched"}
    assert reasons_of(plan) == {"c1": disabled, "c2": None}


def test_ignore_domains_skip_the_domain_and_its_subdomains_only():
    policy = LeadPolicy(ignore_domains=("mycorp.example",))
    plan = planner(leads=policy).plan(
        chats(
            chat("c1", "me@mycorp.example", "2026-11-02T09:00:00Z"),
            chat("c2", "me@eu.mycorp.example", "2026-11-02T09:01:00Z"),
            chat("c3", "me@notmycorp.example", "2026-11-02T09:02:00Z"),  # no dot before: not it
        )
    )
    assert outcomes_of(plan) == {"c1": "lead_skipped", "c2": "lead_skipped", "c3": "lead_created"}
    assert reasons_of(plan) == {
        "c1": "email domain mycorp.example is in ignore_domains",
        "c2": "email domain eu.mycorp.example is in ignore_domains",
        "c3": None,
    }
    assert plan.leads["email_normalized"].tolist() == ["me@notmycorp.example"]


def test_max_chat_age_days_skips_older_chats_only():
    policy = LeadPolicy(max_chat_age_days=30)
    plan = planner(leads=policy).plan(
        chats(
            chat("old", "old@shop.example", "2026-10-10T11:00:00Z"),  # 31 days before NOW
            chat("edge", "edge@shop.example", "2026-10-11T12:00:00Z"),  # exactly 30 days
            chat("new", "new@shop.example", "2026-11-09T12:00:00Z"),
        )
    )
    assert outcomes_of(plan) == {
        "old": "lead_skipped",
        "edge": "lead_created",
        "new": "lead_created",
    }
    assert reasons_of(plan)["old"] == "chat older than max_chat_age_days (30)"
    assert sorted(plan.leads["origin_chat_id"]) == ["edge", "new"]


def test_offline_messages_create_no_lead_when_create_from_offline_is_false():
    frame = chats(
        chat("off", "off@shop.example", "2026-11-02T09:00:00Z", kind="offline_msg"),
        chat("live", "live@shop.example", "2026-11-02T10:00:00Z"),
    )
    plan = planner(leads=LeadPolicy(create_from_offline=False)).plan(frame)
    assert outcomes_of(plan) == {"off": "lead_skipped", "live": "lead_created"}
    assert reasons_of(plan)["off"] == "offline message (create_from_offline = false)"
    # the default (true): an offline message creates a lead like a chat
    default = planner().plan(frame)
    assert outcomes_of(default) == {"off": "lead_created", "live": "lead_created"}


def test_a_missed_live_chat_is_no_offline_message():
    """create_from_offline is about ``type = offline_msg`` (SPEC 3.3 names offline messages); a
    live chat nobody answered (``missed``) still creates its lead."""
    plan = planner(leads=LeadPolicy(create_from_offline=False)).plan(
        chats(chat("m", "missed@shop.example", missed=True))
    )
    assert outcomes_of(plan) == {"m": "lead_created"}


def test_a_chat_without_an_email_or_with_an_invalid_one_creates_no_lead():
    plan = planner().plan(
        chats(
            chat("none", "", "2026-11-02T09:00:00Z"),
            chat("blank", "   ", "2026-11-02T09:01:00Z"),
            chat("bad", "not-an-email", "2026-11-02T09:02:00Z"),
            chat("bad2", "someone@", "2026-11-02T09:03:00Z"),
        )
    )
    assert plan.leads.empty and plan.activities.empty
    assert outcomes_of(plan) == {
        "none": "no_email",
        "blank": "no_email",
        "bad": "invalid_email",
        "bad2": "invalid_email",
    }
    assert reasons_of(plan) == {
        "none": "visitor gave no email",
        "blank": "visitor gave no email",
        "bad": "not an email address: not-an-email",
        "bad2": "not an email address: someone@",
    }
    assert plan.outcomes["email_normalized"].isna().all()


def test_a_skipped_chat_before_the_creator_stays_skipped_and_later_ones_join():
    """The old chat is decided before the lead exists: lead_skipped; the next chat of that email
    creates it; a chat after that joins it, even one policy would have skipped."""
    policy = LeadPolicy(max_chat_age_days=30)
    plan = planner(leads=policy).plan(
        chats(
            chat("c1", "lou@shop.example", "2026-09-01T09:00:00Z"),  # too old
            chat("c2", "lou@shop.example", "2026-11-01T09:00:00Z"),
            chat("c3", "lou@shop.example", "2026-11-02T09:00:00Z", kind="offline_msg"),
        )
    )
    assert outcomes_of(plan) == {
        "c1": "lead_skipped",
        "c2": "lead_created",
        "c3": "matched_new_lead",
    }
    assert plan.leads["origin_chat_id"].tolist() == ["c2"]


def test_skip_reasons_lead_creation_disabled_outranks_every_other_reason():
    ctx = PlanContext(
        now=NOW,
        leads=LeadPolicy(
            enabled=False, max_chat_age_days=1, ignore_domains=("mycorp.example",),
            create_from_offline=False, disabled_reason="off",
        ),
    )  # fmt: skip
    frame = chats(
        chat("c1", "a@mycorp.example", "2026-01-01T00:00:00Z", kind="offline_msg"),
        chat("c2", "b@shop.example", "2026-11-10T00:00:00Z"),
    ).assign(email_normalized=["a@mycorp.example", "b@shop.example"])
    assert skip_reasons(frame, ctx).tolist() == ["off", "off"]
    enabled = PlanContext(now=NOW, leads=LeadPolicy(max_chat_age_days=1))
    reasons = [_none(r) for r in skip_reasons(frame, enabled)]
    assert reasons == ["chat older than max_chat_age_days (1)", None]


def test_a_rematch_creates_no_lead_but_joins_one_the_run_created():
    p = planner()
    p.plan(chats(chat("c1", "ria@shop.example", "2026-11-02T09:00:00Z")))
    rematch = p.plan(
        chats(
            chat("c0", "ria@shop.example", "2026-11-01T09:00:00Z"),
            chat("cx", "nobody@shop.example", "2026-11-01T10:00:00Z"),
        ),
        record_outcomes=False,
    )
    assert rematch.leads.empty
    assert outcomes_of(rematch) == {"c0": "matched_new_lead", "cx": "lead_skipped"}
    assert rematch.activities[["chat_id", "record_type", "record_id"]].values.tolist() == [
        ["c0", "lead", -1]
    ]


# -- phone policy (SPEC 3.7) -------------------------------------------------------------------

PHONE_CRM = crm(
    leads=[(1, "empty@shop.example", 101, None), (2, "full@shop.example", 101, "+1 415 555 0100")],
    contacts=[(10, "contact@shop.example", 102, None)],
)
PHONE_CHATS = (
    chat("c1", "empty@shop.example", "2026-11-02T09:00:00Z", visitor_phone="+1 415 555 0111"),
    # the number lead 2 has, written otherwise: the same phone (E.164 +14155550100)
    chat("c2", "full@shop.example", "2026-11-02T09:01:00Z", visitor_phone="(415) 555-0100"),
    chat("c3", "contact@shop.example", "2026-11-02T09:02:00Z", visitor_phone="+1 415 555 0133"),
    chat("c4", "full@shop.example", "2026-11-02T09:03:00Z", visitor_phone="+1 415 555 0122"),
    chat("c5", "empty@shop.example", "2026-11-02T09:04:00Z", visitor_phone=""),
    chat("c6", "full@shop.example", "2026-11-02T09:05:00Z", visitor_phone=" +1 415 555 0199 "),
)
PHONE_CHAT_IDS = ["c1", "c2", "c3", "c4", "c5", "c6"]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        # fill_empty: only the lead whose phone is empty, by the first chat with a phone
        (PhonePolicy("fill_empty"), [("lead", 1, "c1", None, "+1 415 555 0111")]),
        (
            PhonePolicy("fill_empty", update_contacts=True),
            [("lead", 1, "c1", None, "+1 415 555 0111"),
             ("contact", 10, "c3", None, "+1 415 555 0133")],
        ),
        # overwrite: a different number replaces the phone, chat after chat in order; the same
        # number written otherwise does not; contacts still only with update_contacts
        (
            PhonePolicy("overwrite"),
            [("lead", 1, "c1", None, "+1 415 555 0111"),
             ("lead", 2, "c4", "+1 415 555 0100", "+1 415 555 0122"),
             ("lead", 2, "c6", "+1 415 555 0122", "+1 415 555 0199")],
        ),
        (PhonePolicy("never", update_contacts=True), []),
    ],
    ids=["fill_empty", "fill_empty+contacts", "overwrite", "never"],
)  # fmt: skip
def test_phone_policy(policy, expected):
    plan = planner(PHONE_CRM, phone=policy).plan(chats(*PHONE_CHATS))
    assert changes_of(plan) == expected
    assert set(plan.phone_changes["field"]) <= {"phone"}
    assert outcomes_of(plan) == dict.fromkeys(PHONE_CHAT_IDS, "matched")


def test_fill_empty_takes_the_first_phone_in_order_and_never_a_second():
    plan = planner(PHONE_CRM).plan(
        chats(
            chat("b", "empty@shop.example", "2026-11-02T10:00:00Z", visitor_phone="+1 415 555 0002"),
            chat("a", "empty@shop.example", "2026-11-02T11:00:00Z", visitor_phone="+1 415 555 0001"),
        )
    )  # fmt: skip
    assert changes_of(plan) == [("lead", 1, "b", None, "+1 415 555 0002")]
    assert plan.phone_changes["changed_at"].tolist() == [_ts("2026-11-02T10:10:00Z")]


def test_a_phone_change_already_applied_is_not_made_again():
    """A rerun passes the changes the store holds (record_type, record_id, chat_id)."""
    first = planner(PHONE_CRM).plan(chats(*PHONE_CHATS))
    assert changes_of(first) == [("lead", 1, "c1", None, "+1 415 555 0111")]
    applied = frozenset({("lead", 1, "c1")})
    assert changes_of(planner(PHONE_CRM).plan(chats(*PHONE_CHATS), applied_changes=applied)) == []


def test_require_sell_agent_fills_only_from_chats_an_active_sell_user_worked():
    frames = crm(
        leads=[(1, "one@shop.example", 101, None), (2, "two@shop.example", 101, None),
               (3, "three@shop.example", 101, None)],
    )  # fmt: skip
    agent_users = pd.Series({"1": 101, "5": 105}, dtype="Int64")  # 105 is inactive
    frame = chats(
        chat("c1", "one@shop.example", visitor_phone="+1 415 555 0001", agents=[("1", "Aiko")]),
        chat("c2", "two@shop.example", visitor_phone="+1 415 555 0002", agents=[("5", "Off")]),
        chat("c3", "three@shop.example", visitor_phone="+1 415 555 0003", agents=[("9", "Bot")]),
    )
    required = planner(
        frames, phone=PhonePolicy(require_sell_agent=True), agent_users=agent_users
    ).plan(frame)
    assert changes_of(required) == [("lead", 1, "c1", None, "+1 415 555 0001")]
    free = planner(frames, agent_users=agent_users).plan(frame)
    assert [c[2] for c in changes_of(free)] == ["c1", "c2", "c3"]


def test_a_later_chat_fills_the_empty_phone_of_a_lead_the_run_created():
    p = planner()
    created = p.plan(chats(chat("c1", "new@shop.example", "2026-11-02T09:00:00Z")))
    assert created.leads["phone"].isna().all() and created.phone_changes.empty
    later = p.plan(
        chats(
            chat("c2", "new@shop.example", "2026-11-03T09:00:00Z", visitor_phone="+1 415 555 0009"),
            chat("c3", "new@shop.example", "2026-11-04T09:00:00Z", visitor_phone="+1 415 555 0010"),
        )
    )  # fmt: skip
    assert changes_of(later) == [("lead", -1, "c2", None, "+1 415 555 0009")]


def test_the_creating_chat_gives_its_phone_to_the_lead_not_a_change():
    plan = planner().plan(chats(chat("c1", "tel@shop.example", visitor_phone="+1 415 555 0042")))
    assert plan.leads["phone"].tolist() == ["+1 415 555 0042"]
    assert plan.phone_changes.empty


# -- outcomes (SPEC 3.8) ------------------------------------------------------------------------


def test_a_chat_deleted_at_source_is_removed_and_plans_nothing_but_its_empty_row():
    """SPEC 10: no match, no lead, no phone, no activity, note or notification; the outcome
    ``removed`` without email or name; the chat's row kept without content. A row as the store
    gives it back (None where the reader gives "") is planned the same."""
    frames = crm(leads=[(1, "lead@shop.example", 101, None)])
    secret = dict(visitor_name="Dora Deleted", visitor_phone="+1 415 555 0100",
                  visitor_notes="call back", tags='["notify_sales"]', rating="good",
                  comment="thanks", transcript="09:00:10 Dora: my secret")  # fmt: skip
    frame = chats(
        chat("gone", "lead@shop.example", "2026-11-02T09:00:00Z", deleted=True, **secret),
        chat("gone-new", "fresh@shop.example", "2026-11-02T09:01:00Z", deleted=True, **secret),
        chat("stored", "fresh@shop.example", "2026-11-02T09:02:00Z", deleted=True,
             visitor_name=None, visitor_email=None, visitor_phone=None, visitor_notes=None,
             tags=None, agent_ids=None, agent_names=None, transcript=None, content_hash=None),
        chat("kept", "lead@shop.example", "2026-11-02T09:03:00Z", visitor_notes="note",
             tags='["notify_sales"]', visitor_phone="+1 415 555 0101"),
    )  # fmt: skip
    frame["deleted"] = frame["deleted"].astype(object)
    frame.loc[frame["chat_id"] == "kept", "deleted"] = None  # (a store's NULL: not deleted)
    plan = planner(frames).plan(frame)
    assert outcomes_of(plan) == {
        "gone": "removed", "gone-new": "removed", "stored": "removed", "kept": "matched",
    }  # fmt: skip
    removed = plan.outcomes.set_index("chat_id").loc[["gone", "gone-new", "stored"]]
    assert removed["reason"].tolist() == ["deleted at source"] * 3
    assert removed[["email_normalized", "records", "agent"]].isna().all().all()
    assert removed["match_count"].tolist() == [0, 0, 0]
    assert plan.removed_chats.tolist() == ["gone", "gone-new", "stored"]
    assert plan.leads.empty  # fresh@shop.example: no lead from a deleted chat
    # the lead's empty phone is filled by the chat that stays, not by the earlier deleted one
    assert changes_of(plan) == [("lead", 1, "kept", None, "+1 415 555 0101")]
    for rows in (plan.activities, plan.notes, plan.notifications):
        assert rows["chat_id"].tolist() == ["kept"]
    stored = plan.chats.set_index("chat_id")
    assert stored["deleted"].tolist() == [True, True, True, False]
    assert stored.loc["gone", "version"] == "v/gone" and stored.loc["stored", "kind"] == "chat"
    for chat_id in ("gone", "gone-new", "stored"):
        row = stored.loc[chat_id]
        for column in ("visitor_id", "visitor_name", "visitor_email", "visitor_phone",
                       "visitor_notes", "rating", "comment", "country_code", "transcript",
                       "content_hash", "email_normalized"):  # fmt: skip
            assert not isinstance(row[column], str) or row[column] == "", (chat_id, column)
        assert (row["tags"], row["agent_ids"], row["agent_names"]) == ("[]", "[]", "[]")
    assert stored.loc["kept", "visitor_notes"] == "note"


def test_every_chat_has_exactly_one_outcome_and_the_right_one():
    frames = crm(
        leads=[(1, "lead@shop.example", 101, None)],
        contacts=[(10, "contact@shop.example", 102, None), (11, "both@shop.example", 102, None)],
        deals=[(30, 10, 103)],
    )
    frames["leads"] = pd.concat(
        [frames["leads"], crm(leads=[(2, "both@shop.example", 101, None)])["leads"]],
        ignore_index=True,
    )
    policy = LeadPolicy(ignore_domains=("mycorp.example",))
    frame = chats(
        chat("m-lead", "lead@shop.example", "2026-11-02T09:00:00Z"),
        chat("m-contact", "contact@shop.example", "2026-11-02T09:01:00Z"),
        chat("m-both", "both@shop.example", "2026-11-02T09:02:00Z"),
        chat("created", "fresh@shop.example", "2026-11-02T09:03:00Z"),
        chat("joined", "FRESH@shop.example", "2026-11-02T09:04:00Z"),
        chat("skipped", "me@mycorp.example", "2026-11-02T09:05:00Z"),
        chat("no-email", "", "2026-11-02T09:06:00Z"),
        chat("invalid", "@@", "2026-11-02T09:07:00Z"),
    )
    plan = planner(frames, leads=policy).plan(frame)
    outcomes = plan.outcomes.set_index("chat_id")
    assert len(plan.outcomes) == len(frame) and outcomes.index.is_unique
    assert set(outcomes.index) == set(frame["chat_id"])
    assert outcomes["outcome"].to_dict() == {
        "m-lead": "matched",
        "m-contact": "matched",
        "m-both": "matched",
        "created": "lead_created",
        "joined": "matched_new_lead",
        "skipped": "lead_skipped",
        "no-email": "no_email",
        "invalid": "invalid_email",
    }
    assert outcomes["records"].to_dict() == {
        "m-lead": "lead:1",
        "m-contact": "contact:10;deal:30",  # a contact's deals come with it
        "m-both": "lead:2;contact:11",
        "created": "lead:-1",
        "joined": "lead:-1",
        "skipped": None,
        "no-email": None,
        "invalid": None,
    }
    assert outcomes["match_count"].to_dict() == {
        "m-lead": 1, "m-contact": 1, "m-both": 2, "created": 1, "joined": 1,
        "skipped": 0, "no-email": 0, "invalid": 0,
    }  # fmt: skip
    assert plan.multi_match_emails == {"both@shop.example"}
    counts = {name: int((plan.outcomes["outcome"] == name).sum()) for name in OUTCOMES}
    assert plan.outcomes["outcome"].isin(OUTCOMES).all()
    assert counts == {
        "matched": 3, "lead_created": 1, "matched_new_lead": 1, "lead_skipped": 1,
        "no_email": 1, "invalid_email": 1, "rejected": 0, "removed": 0,
    }  # fmt: skip
    assert sum(counts.values()) == len(frame)
    # one activity per (chat, record) the chat attaches to
    assert sorted(map(tuple, plan.activities[["chat_id", "record_type", "record_id"]].values)) == [
        ("created", "lead", -1), ("joined", "lead", -1), ("m-both", "contact", 11),
        ("m-both", "lead", 2), ("m-contact", "contact", 10), ("m-contact", "deal", 30),
        ("m-lead", "lead", 1),
    ]  # fmt: skip


def test_a_converted_lead_with_its_contact_is_no_target():
    frames = crm(
        leads=[(1, "conv@shop.example", 101, None)],
        contacts=[(10, "conv@shop.example", 102, None)],
    )
    frames["leads"]["status"] = "Converted"
    plan = planner(frames).plan(chats(chat("c1", "conv@shop.example")))
    assert outcomes_of(plan) == {"c1": "matched"}
    assert plan.outcomes["records"].tolist() == ["contact:10"]


def test_prepare_then_decide_in_one_place_then_build_equals_plan():
    """The Dask path: prepare per partition, decide over all candidates in the stable order,
    build per partition. Same outcomes, leads and owners as one plan of the whole batch."""
    frame = chats(
        chat("c1", "x@shop.example", "2026-11-02T09:00:00Z"),
        chat("c2", "y@shop.example", "2026-11-02T09:01:00Z"),
        chat("c3", "x@shop.example", "2026-11-02T09:02:00Z"),
        chat("c4", "", "2026-11-02T09:03:00Z"),
        chat("c5", "y@shop.example", "2026-11-02T09:04:00Z"),
    )
    whole = planner().plan(frame)

    p = planner()
    parts = [frame.iloc[[0, 3]], frame.iloc[[1, 2, 4]]]  # not in one order: decide sorts
    prepared = [prepare(part, p.index, p.ctx) for part in parts]
    candidates = (
        pd.concat([x.lead_candidates() for x in prepared], ignore_index=True)
        .sort_values(["started_at", "chat_id"], kind="stable")
        .reset_index(drop=True)
    )
    phones = pd.concat([x.phone_candidates(p.ctx) for x in prepared], ignore_index=True)
    decisions = p.decide(candidates, phones)
    built = [build_plan(x, decisions.for_chats(x.chats["chat_id"]), p.ctx) for x in prepared]
    outcomes = pd.concat([b.outcomes for b in built]).set_index("chat_id").sort_index()
    assert outcomes["outcome"].to_dict() == whole.outcomes.set_index("chat_id")["outcome"].to_dict()
    assert outcomes["outcome"].to_dict() == {
        "c1": "lead_created", "c2": "lead_created", "c3": "matched_new_lead",
        "c4": "no_email", "c5": "matched_new_lead",
    }  # fmt: skip
    columns = ["id", "owner_id", "email_normalized", "origin_chat_id"]
    assert decisions.leads[columns].values.tolist() == whole.leads[columns].values.tolist()
    assert decisions.leads[columns].values.tolist() == [
        [-1, 101, "x@shop.example", "c1"],
        [-2, 102, "y@shop.example", "c2"],
    ]
