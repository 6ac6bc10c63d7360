"""The migrations build exactly the schema the code queries, with the natural keys as constraints."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from etl.load import schema
from etl.load.store import Store


def test_migrations_match_the_tables(store_url):
    engine = sa.create_engine(store_url)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), schema.metadata
        )
    engine.dispose()
    assert diff == []


def test_spec_tables_exist(store_url):
    with Store(store_url) as store:
        names = set(store.table_names())
    spec = {"users", "leads", "contacts", "deals", "activities", "notes", "notifications", "field_changes",
            "pool_state", "runs", "run_outcomes", "rejects"}  # fmt: skip
    assert spec <= names


@pytest.mark.parametrize(
    ("table", "row"),
    [
        ("activities", {"chat_id": "c", "record_type": "lead", "record_id": 1, "kind": "chat",
                        "started_at": datetime(2026, 1, 1, tzinfo=UTC), "content_hash": "h", "chat_version": "v"}),
        ("notes", {"chat_id": "c", "record_type": "lead", "record_id": 1, "kind": "chat_notes", "content": "x"}),
        ("notifications", {"chat_id": "c", "record_type": "lead", "record_id": 1, "kind": "notify_sales"}),
        ("leads", {"id": -1, "origin": "chat", "email_normalized": "a@example.com"}),
    ],
)  # fmt: skip
def test_natural_keys_are_enforced_by_the_database(store_url, table, row):
    engine = sa.create_engine(store_url)
    target = schema.metadata.tables[table]
    with engine.begin() as conn:
        conn.execute(target.insert().values(**row))
    duplicate = dict(row)
    if table == "leads":
        duplicate["id"] = -2  # another chat-created lead for the same email
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(target.insert().values(**duplicate))
    engine.dispose()


def test_sell_leads_may_share_an_email(store_url):
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(
            schema.leads.insert(),
            [
                {"id": 1, "email_normalized": "a@example.com"},
                {"id": 2, "email_normalized": "a@example.com"},
            ],
        )
        conn.execute(
            schema.leads.insert().values(id=-1, origin="chat", email_normalized="a@example.com")
        )
    engine.dispose()


def test_schema_head_constant_is_alembics_head(tmp_path):
    from etl.load.store import SCHEMA_HEAD

    with Store(f"sqlite:///{tmp_path / 'x.db'}") as store:
        assert store.head() == SCHEMA_HEAD


def test_a_new_sqlite_store_has_larger_pages_and_an_old_one_keeps_its_own(tmp_path):
    """A new file gets SQLITE_PAGE_SIZE (an activity row is a whole transcript); a store made
    with SQLite's default 4 KB pages is left so (WAL fixed it) and still takes writes."""
    import sqlite3

    from etl.load import store as store_module

    new = tmp_path / "new.db"
    with Store(f"sqlite:///{new}") as store:
        store.prepare()
    old = tmp_path / "old.db"
    made = sqlite3.connect(old)
    made.execute("PRAGMA journal_mode = WAL")  # a page written at 4096: the size is fixed
    made.close()
    with Store(f"sqlite:///{old}") as store:
        store.prepare()
        with store.transaction() as conn:
            conn.execute(schema.runs.insert().values(mode="sync", status="running",
                                                     started_at=datetime.now(UTC)))  # fmt: skip
    sizes = {}
    for path in (new, old):
        db = sqlite3.connect(path)
        sizes[path.name] = db.execute("PRAGMA page_size").fetchone()[0]
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        db.close()
    assert store_module.SQLITE_PAGE_SIZE == 8192
    assert sizes == {"new.db": 8192, "old.db": 4096}
