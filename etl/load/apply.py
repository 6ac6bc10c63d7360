"""The one write path: a chunk's plan applied to the store, and what it would write (a dry run).

Every way a run writes a plan (here, in the writer process, on Dask workers) calls
``apply_plan`` in the transaction it chose; a dry run calls ``count_plan``, which reads the
same rows and counts what ``apply_plan`` would write. The UNIQUE keys of the tables, not these
functions, make a second application of a plan write nothing new.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from etl.load import writers
from etl.load.outbox import add_to_outbox, outbox_rows
from etl.vocab import OUTCOME_COLUMNS, PlanWrite, RunCounters, RunInputs, WriteCounts


def apply_plan(conn: Connection, run_id: int, job: PlanWrite) -> WriteCounts:
    """Write ``job``'s plan in the transaction ``conn``; return what it wrote.

    A plan without chats (the leads, pools and phones a Dask window decided) writes only those.
    A chat deleted at source (``plan.removed_chats``) loses its activities (a newer version
    that attaches to nothing), notes, notifications and unsent outbox rows here, and its row
    keeps no content: all in this transaction, with its outcome. A chat an erasure covers
    (``plan.erased_chats``) loses its row too.
    """
    plan = job.plan
    activities = writers.ActivityWrites()
    rows = plan.activities.iloc[0:0]
    if not plan.chats.empty:
        chat_versions = plan.chats[["chat_id", "version"]]
        existing = writers.existing_activities(conn, job.held)
        rows, activities, stale = writers.classify_activities(
            plan.activities, existing, chat_versions
        )
        writers.upsert_chats(conn, run_id, plan.chats, job.stored, plan.activities)
    leads = writers.insert_leads(conn, run_id, plan.leads)
    if not plan.leads.empty:  # earlier chats of these emails now have a lead to show on
        writers.queue_rematch(conn, run_id, plan.leads["email_normalized"])
    writers.save_pool_states(conn, run_id, plan.pool_states)
    if not plan.chats.empty:
        writers.write_activities(conn, rows, stale)
    notes = writers.write_notes(conn, run_id, plan.notes)
    notifications = writers.write_notifications(conn, run_id, plan.notifications)
    if not plan.removed_chats.empty:  # deleted at source: nothing derived from them stays
        activities.removed += writers.remove_chat_content(conn, plan.removed_chats)
    if not plan.erased_chats.empty:  # an erased person's: not even their rows stay
        writers.delete_chats(conn, plan.erased_chats)
    phones = writers.apply_phone_changes(conn, run_id, plan.phone_changes)
    if job.record_outcomes:
        writers.write_outcomes(conn, run_id, plan.outcomes[list(OUTCOME_COLUMNS)])
    if job.clear_emails:
        writers.clear_rematch(conn, job.clear_emails)
    add_to_outbox(conn, run_id, outbox_rows(plan, rows))  # what Sell should see, with it
    return _counts(activities, leads, notes, notifications, phones)


def count_plan(conn: Connection, job: PlanWrite) -> WriteCounts:
    """What ``apply_plan`` would write for ``job`` on the store as it is, writing nothing."""
    plan = job.plan
    existing = writers.existing_activities(conn, job.held)
    _rows, activities, _stale = writers.classify_activities(
        plan.activities, existing, plan.chats[["chat_id", "version"]]
    )
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
