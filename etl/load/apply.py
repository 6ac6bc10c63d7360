"""The one write path: a chunk's plan applied to the store, and what it would write (a dry run).

Every way a run writes a plan (here, in the writer process, on Dask workers) calls
``apply_plan`` in the transaction it chose; a dry run calls ``count_plan``, which reads the
same rows and counts what ``apply_plan`` would write. The UNIQUE keys of the tables, not these
functions, make a second application of a plan write nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd
from sqlalchemy.engine import Connection

from etl.load import schema, writers
from etl.load.outbox import add_to_outbox, outbox_rows, prepare_outbox
from etl.load.upsert import Rows, prepare_rows
from etl.vocab import OUTCOME_COLUMNS, PlanWrite, RunCounters, RunInputs, WriteCounts


def apply_plan(conn: Connection, run_id: int, job: PlanWrite) -> WriteCounts:
    """Write ``job``'s plan in the transaction ``conn``; return what it wrote.

    A plan without chats (the leads, pools and phones a Dask window decided) writes only those.
    A chat deleted at source (``plan.removed_chats``) loses its activities (a newer version
    that attaches to nothing), notes, notifications and unsent outbox rows here, and its row
    keeps no content: all in this transaction, with its outcome. A chat an erasure covers
    (``plan.erased_chats``) loses its row too.
    """
    return write_prepared(conn, run_id, prepare_plan(conn, run_id, job))


@dataclass
class PreparedPlan:
    """A plan with its largest rows (chats, activities, outcomes, outbox) made ready for the
    driver (``etl.load.upsert.prepare_rows``): what ``apply_plan`` does before it writes.

    A writer process gets plans of new chats this way: the planner prepares them, so the writer
    only binds and writes (a plan with chats the store holds goes to the writer as it is, and
    the writer reads and compares their stored activities: ``ProcessSink.apply``). ``job.plan``
    keeps the smaller frames; its chats, activities and outcomes are emptied (their rows are
    here).
    """

    job: PlanWrite
    chats: Rows | None
    activities: Rows | None
    activity_counts: writers.ActivityWrites
    stale: pd.DataFrame
    outcomes: Rows | None
    outbox: list[Rows]
    plan_keys: pd.DataFrame | None  # ``writers.plan_key_changes`` (None: a plan of no chat)

    def frozen(self) -> PreparedPlan:
        """The rows as tuples (``Rows.freeze``): made here, not where they are written."""
        return replace(
            self,
            chats=self.chats.freeze() if self.chats is not None else None,
            activities=self.activities.freeze() if self.activities is not None else None,
            outcomes=self.outcomes.freeze() if self.outcomes is not None else None,
            outbox=[part.freeze() for part in self.outbox],
        )


_ACTIVITY_KEY = ["chat_id", "record_type", "record_id"]


def prepare_plan(conn: Connection, run_id: int, job: PlanWrite) -> PreparedPlan:
    """``job`` made ready to write (``PreparedPlan``); reads only the stored activities of the
    chats the store holds (``job.held``)."""
    plan, dialect = job.plan, conn.dialect.name
    activities = writers.ActivityWrites()
    rows = plan.activities.iloc[0:0]
    stale = pd.DataFrame(columns=_ACTIVITY_KEY)
    keys = None
    chats = None
    if not plan.chats.empty:
        chat_versions = plan.chats[["chat_id", "version"]]
        existing = writers.existing_activities(conn, job.held)
        rows, activities, stale = writers.classify_activities(
            plan.activities, existing, chat_versions
        )
        stored = job.stored
        if stored is None:
            stored = writers.chat_versions(conn, plan.chats["chat_id"])
        written = writers.chat_rows(plan.chats, stored, plan.activities)
        keys = writers.plan_key_changes(plan.chats, stored, written)
        chats = prepare_rows(written, schema.chats, ["chat_id"], dialect, {"run_id": run_id})
    activities.unchanged += plan.unchanged_activities  # (not built: the stored ones stand)
    outcomes = None
    if job.record_outcomes:
        outcomes = prepare_rows(
            plan.outcomes[list(OUTCOME_COLUMNS)], schema.run_outcomes, ["run_id", "chat_id"],
            dialect, {"run_id": run_id},
        )  # fmt: skip
    outbox = prepare_outbox(run_id, outbox_rows(plan, rows), dialect)
    activity_rows = (
        prepare_rows(rows, schema.activities, _ACTIVITY_KEY, dialect)
        if not plan.chats.empty
        else None
    )
    rest = replace(
        plan,
        chats=plan.chats.iloc[0:0],
        activities=plan.activities.iloc[0:0],
        outcomes=plan.outcomes.iloc[0:0],
    )
    return PreparedPlan(
        replace(job, plan=rest, stored=None, held=job.held.iloc[0:0]),
        chats, activity_rows, activities, stale, outcomes, outbox, keys,
    )  # fmt: skip


def write_prepared(conn: Connection, run_id: int, prepared: PreparedPlan) -> WriteCounts:
    """``prepare_plan``'s plan written in the transaction ``conn`` (see ``apply_plan``)."""
    job = prepared.job
    plan = job.plan
    activities = prepared.activity_counts
    if prepared.chats is not None:
        writers.write_chats(conn, run_id, prepared.chats)
    if prepared.plan_keys is not None:
        writers.write_plan_keys(conn, prepared.plan_keys)
    leads = writers.insert_leads(conn, run_id, plan.leads)
    if not plan.leads.empty:  # earlier chats of these emails now have a lead to show on
        writers.queue_rematch(conn, run_id, plan.leads["email_normalized"])
    writers.save_pool_states(conn, run_id, plan.pool_states)
    if prepared.activities is not None:
        writers.write_activities(conn, prepared.activities, prepared.stale)
    notes = writers.write_notes(conn, run_id, plan.notes)
    notifications = writers.write_notifications(conn, run_id, plan.notifications)
    if not plan.removed_chats.empty:  # deleted at source: nothing derived from them stays
        activities.removed += writers.remove_chat_content(conn, plan.removed_chats)
    if not plan.erased_chats.empty:  # an erased person's: not even their rows stay
        writers.delete_chats(conn, plan.erased_chats)
    phones = writers.apply_phone_changes(conn, run_id, plan.phone_changes)
    if prepared.outcomes is not None:
        writers.write_outcomes(conn, run_id, prepared.outcomes)
    if job.clear_emails:
        writers.clear_rematch(conn, job.clear_emails)
    add_to_outbox(conn, run_id, prepared.outbox)  # what Sell should see, with it
    return _counts(activities, leads, notes, notifications, phones)


def count_plan(conn: Connection, job: PlanWrite) -> WriteCounts:
    """What ``apply_plan`` would write for ``job`` on the store as it is, writing nothing."""
    plan = job.plan
    existing = writers.existing_activities(conn, job.held)
    _rows, activities, _stale = writers.classify_activities(
        plan.activities, existing, plan.chats[["chat_id", "version"]]
    )
    activities.unchanged += plan.unchanged_activities
    return _counts(
        activities,
        leads=len(plan.leads),
        notes=writers.count_new_keys(conn, "notes", plan.notes),
        notifications=writers.count_new_keys(conn, "notifications", plan.notifications),
        phones=len(plan.phone_changes),
    )


def record_inputs(conn: Connection, run_id: int, inputs: RunInputs, counters: RunCounters) -> None:
    """The run's reference rows (agents, departments), rejects and counters."""
    writers.apply_reference(conn, inputs.agents, inputs.departments)
    writers.record_rejects(conn, run_id, inputs.rejects, inputs.reject_outcomes)
    writers.save_counters(conn, run_id, counters)


def _counts(
    activities: writers.ActivityWrites, leads: int, notes: int, notifications: int, phones: int
) -> WriteCounts:
    return WriteCounts(
        activities_inserted=activities.inserted,
        activities_updated=activities.updated,
        activities_unchanged=activities.unchanged,
        activities_removed=activities.removed,
        leads_created=leads,
        notes_created=notes,
        notifications_created=notifications,
        phone_updates=phones,
    )
