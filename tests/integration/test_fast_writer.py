"""The writer's column-wise row building writes what the frame-at-a-time upsert wrote.

``previous_upsert`` is the upsert as it was before (dedupe and sort the whole frame, then one
dict or tuple per row): a sync through it and a sync through today's upsert leave the same
store, row ids included; and the counts and re-reads the writers now take from the database.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from etl.errors import RunFailed
from etl.load import apply as apply_module
from etl.load import outbox, schema, writers
from etl.load import upsert as upsert_module
from etl.load.store import Store
from etl.load.store import alerts as store_alerts

from integration.scenario import batched_settings, sync
from storecheck import dump

# what differs between two equal runs: the clock
VOLATILE = frozenset({"created_at", "loaded_at", "started_at", "finished_at", "updated_at"})


def previous_upsert(
    conn, table, frame, key, update=None, where=None, set_=None, index_where=None, constants=None
):
    """The upsert before column-wise rows: the frame deduplicated, sorted, its rows one by one."""
    if frame.empty:
        return 0
    if constants:
        frame = frame.assign(**constants)
    frame = upsert_module.dedupe(frame, key)
    frame = frame.sort_values(list(key), kind="stable") if len(frame) > 1 else frame
    columns = [c for c in frame.columns if c in table.c]
    frame = frame[columns]
    dialect = conn.dialect.name
    values = {
        c: pd.Series(upsert_module._db_values(frame[c], dialect), dtype=object) for c in columns
    }
    if dialect == "postgresql" and len(frame) >= upsert_module.COPY_MIN_ROWS:
        arrays = {c: v.to_numpy(dtype=object) for c, v in values.items()}
        rows = upsert_module.Rows(columns, arrays, len(frame))
        return upsert_module._copy_upsert(conn, table, rows, key, update, where, set_, index_where)
    stmt = upsert_module.dialect_insert(conn, table).values({c: sa.bindparam(c) for c in columns})
    stmt = upsert_module._on_conflict(stmt, key, update, where, set_, index_where)
    compiled = stmt.compile(dialect=conn.dialect)
    order = list(compiled.positiontup) if compiled.positional else None
    written = 0
    for start in range(0, len(frame), upsert_module.BATCH):
        part = {c: v.iloc[start : start + upsert_module.BATCH].tolist() for c, v in values.items()}
        if order is not None:
            rows = list(zip(*[part[name] for name in order], strict=True))
        else:
            rows = [
                dict(zip(columns, row, strict=True)) for row in zip(*part.values(), strict=True)
            ]
        written += conn.exec_driver_sql(str(compiled), rows).rowcount
    return written


def as_frame(frame, table, key, dialect, constants=None):
    """``prepare_rows`` before it was: the frame itself goes to the upsert, constants added."""
    return frame.assign(**constants) if constants else frame


@pytest.fixture
def previous(monkeypatch):
    """Every writer's upsert is the previous one, given frames as it was (in this process: no
    writer process; the plan's rows are not prepared before they are written)."""

    def use():
        for module in (upsert_module, writers, outbox, store_alerts):
            if hasattr(module, "upsert"):
                monkeypatch.setattr(module, "upsert", previous_upsert)
        for module in (apply_module, outbox):
            monkeypatch.setattr(module, "prepare_rows", as_frame)

    return use


def _upgraded(url: str) -> str:
    store = Store(url)
    store.upgrade()
    store.dispose()
    return url


@pytest.mark.parametrize("full", [False, True])
def test_sync_writes_what_the_previous_upsert_wrote(generated, tmp_path, previous, full):
    chats, sell, _ = generated
    urls = {}
    for name in ("today", "previous"):
        url = f"sqlite:///{tmp_path / name}.db"
        _upgraded(url)
        # today's through the writer process (the planner prepares the rows it writes)
        settings = batched_settings(url, chunk_size=97, write_process=name == "today")
        if name == "previous":
            previous()
        sync(url, chats, sell, settings=settings)
        if full:
            sync(url, chats, sell, settings=settings, full=True)
        urls[name] = url
    today = dump(urls["today"], include_history=True, drop=VOLATILE)
    before = dump(urls["previous"], include_history=True, drop=VOLATILE)
    assert today.keys() == before.keys()
    for table in today:
        if table in ("runs", "run_lock"):
            continue
        assert today[table] == before[table], table
    assert sum(len(v) for v in today.values()) > 1000


def test_sync_on_postgresql_writes_what_the_previous_upsert_wrote(
    generated, pg_url, previous, tmp_path
):
    """The same on PostgreSQL (COPY and executemany batches): compared with an SQLite run
    through the previous upsert, which wrote the same rows on both stores."""
    chats, sell, _ = generated
    _upgraded(pg_url)
    sync(pg_url, chats, sell, settings=batched_settings(pg_url, chunk_size=400))
    today = dump(pg_url, include_history=True, drop=VOLATILE | {"id"})
    url = f"sqlite:///{tmp_path / 'previous'}.db"
    _upgraded(url)
    previous()
    sync(url, chats, sell, settings=batched_settings(url, chunk_size=400, write_process=False))
    before = dump(url, include_history=True, drop=VOLATILE | {"id"})
    for table in today:
        if table in ("runs", "run_lock"):
            continue
        assert today[table] == before[table], table


def _outbox_frame(count: int, seed: int) -> pd.DataFrame:
    """Outbox rows with repeated keys, shuffled: the last row of a key must win."""
    frame = pd.DataFrame(
        {
            "kind": "activity",
            "record_type": "lead",
            "record_id": [i % (count // 3 + 1) for i in range(count)],
            "chat_id": [f"c{i % (count // 2 + 1)}" for i in range(count)],
            "dedupe_key": [f"k{(i * 7) % (count // 2 + 1):05d}" for i in range(count)],
            "payload": [None if i % 5 else f"p{i}" for i in range(count)],
        }
    )
    return frame.sample(frac=1, random_state=seed).reset_index(drop=True)


@pytest.mark.parametrize("count", [40, 900])  # PostgreSQL: executemany, and COPY
def test_last_row_of_a_key_wins_in_key_order(store_url, count):
    frame = _outbox_frame(count, seed=count)
    constants = {"status": "pending", "attempts": 0, "created_run_id": 7,
                 "created_at": datetime(2026, 11, 2, 9, tzinfo=UTC)}  # fmt: skip
    store = Store(store_url)
    try:
        with store.transaction() as conn:
            written = upsert_module.upsert(
                conn, schema.sell_outbox, frame, key=["dedupe_key"], constants=constants
            )
        with store.engine.connect() as conn:
            stored = conn.execute(
                sa.select(
                    schema.sell_outbox.c.dedupe_key,
                    schema.sell_outbox.c.payload,
                    schema.sell_outbox.c.record_id,
                    schema.sell_outbox.c.created_run_id,
                    schema.sell_outbox.c.status,
                ).order_by(schema.sell_outbox.c.id)
            ).all()
    finally:
        store.dispose()
    expected = frame.drop_duplicates("dedupe_key", keep="last").sort_values("dedupe_key")
    assert written == len(expected)
    assert [tuple(r) for r in stored] == [
        (k, p, r, 7, "pending")
        for k, p, r in zip(
            expected["dedupe_key"],
            expected["payload"].astype(object).where(expected["payload"].notna(), None),
            expected["record_id"],
            strict=True,
        )
    ]


def test_upsert_counts_what_the_database_wrote(store_url):
    frame = pd.DataFrame({"pool": ["a", "b", "c"], "pointer": [1, 2, 3], "state": "{}",
                          "assigned": 0})  # fmt: skip
    store = Store(store_url)
    try:
        with store.transaction() as conn:
            first = upsert_module.upsert(conn, schema.pool_state, frame, key=["pool"])
            again = upsert_module.upsert(conn, schema.pool_state, frame, key=["pool"])
            table = schema.pool_state
            excluded = upsert_module.dialect_insert(conn, table).excluded
            changed = upsert_module.upsert(
                conn,
                table,
                frame.assign(pointer=[1, 20, 30]),
                key=["pool"],
                update=["pointer"],
                where=excluded.pointer != table.c.pointer,
                constants={"updated_run_id": 4},
            )
    finally:
        store.dispose()
    assert (first, again, changed) == (3, 0, 2)


def _lead(lead_id: int, email: str) -> dict:
    now = datetime(2026, 11, 2, 9, tzinfo=UTC)
    return {"id": lead_id, "owner_id": None, "first_name": "A", "last_name": "B", "name": "A B",
            "email": email, "email_normalized": email, "phone": None, "status": "New",
            "source": "chat", "tags": "", "created_at": now, "updated_at": now,
            "origin": "chat", "origin_chat_id": f"chat-{lead_id}"}  # fmt: skip


def test_leads_applied_twice_are_once_and_a_second_lead_for_an_email_fails(store_url):
    leads = pd.DataFrame([_lead(-1, "a@example.com"), _lead(-2, "b@example.com")])
    store = Store(store_url)
    try:
        with store.transaction() as conn:
            assert writers.insert_leads(conn, 1, leads) == 2
        with store.transaction() as conn:  # the same plan again (a retried Dask task)
            assert writers.insert_leads(conn, 1, leads) == 2
        with pytest.raises(RunFailed), store.transaction() as conn:
            writers.insert_leads(conn, 2, pd.DataFrame([_lead(-3, "a@example.com")]))
        with store.engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(schema.leads)).scalar()
    finally:
        store.dispose()
    assert count == 2


def test_rematch_queues_emails_of_other_runs_chats_only(store_url):
    chats = pd.DataFrame(
        {"chat_id": ["c1", "c2", "c3", "c4", "c5"], "version": "1", "kind": "chat",
         "started_at": pd.Timestamp("2026-11-02T09:00:00Z"), "run_id": [1, 2, None, 2, 1],
         "email_normalized": ["old@x.com", "this@x.com", "none@x.com", "both@x.com",
                              "both@x.com"]}
    )  # fmt: skip
    store = Store(store_url)
    try:
        with store.transaction() as conn:
            upsert_module.upsert(conn, schema.chats, chats.astype({"run_id": "Int64"}), ["chat_id"])
            writers.queue_rematch(
                conn, 2, ["old@x.com", "this@x.com", "none@x.com", "both@x.com", "new@x.com"]
            )
        with store.engine.connect() as conn:
            queued = conn.execute(
                sa.select(
                    schema.rematch_queue.c.email_normalized, schema.rematch_queue.c.queued_run_id
                )
            ).all()
    finally:
        store.dispose()
    assert sorted(tuple(r) for r in queued) == [
        ("both@x.com", 2), ("none@x.com", 2), ("old@x.com", 2)
    ]  # fmt: skip


def test_select_in_gives_the_frame_rows_gave(store_url):
    frame = pd.DataFrame(
        {"chat_id": [f"c{i}" for i in range(30)], "version": "1", "kind": "chat",
         "run_id": [None if i % 3 else i for i in range(30)],
         "started_at": pd.Timestamp("2026-11-02T09:00:00Z"),
         "email_normalized": [None if i % 4 else f"{i}@x.com" for i in range(30)]}
    )  # fmt: skip
    columns = ["chat_id", "version", "run_id", "started_at", "email_normalized"]
    store = Store(store_url)
    try:
        with store.transaction() as conn:
            upsert_module.upsert(conn, schema.chats, frame.astype({"run_id": "Int64"}), ["chat_id"])
        with store.engine.connect() as conn:
            got = upsert_module.select_in(
                conn, schema.chats, ["chat_id"], frame["chat_id"], columns
            )
            result = conn.execute(
                sa.select(*[schema.chats.c[c] for c in columns]).where(
                    schema.chats.c.chat_id.in_(list(frame["chat_id"]))
                )
            )
            rows = pd.DataFrame(result.fetchall(), columns=columns)  # as select_in made it
    finally:
        store.dispose()
    pd.testing.assert_frame_equal(got, rows)
