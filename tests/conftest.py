"""Shared fixtures: a store on SQLite and on the real PostgreSQL, and export builders.

PostgreSQL tests use a fresh schema per test in the database named by CHATSELL_TEST_PG
(default postgresql+psycopg://postgres@127.0.0.1:5432/test). Outside CI a missing server skips
them with a message; with CI=true it fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

PG_URL = os.environ.get("CHATSELL_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _pg_available() -> str | None:
    try:
        engine = sa.create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return str(exc).splitlines()[0]


_PG_PROBLEM: str | None = None
_PG_PROBED = False


def pg_problem() -> str | None:
    global _PG_PROBLEM, _PG_PROBED
    if not _PG_PROBED:
        _PG_PROBLEM, _PG_PROBED = _pg_available(), True
    return _PG_PROBLEM


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, empty schema (dropped afterwards)."""
    problem = pg_problem()
    if problem:
        message = (
            f"PostgreSQL not reachable at {PG_URL} ({problem}); start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
            "or point CHATSELL_TEST_PG at a server"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """The same test on an SQLite file and on PostgreSQL, schema upgraded (as `db upgrade` does)."""
    from etl.load.store import Store

    url = (
        f"sqlite:///{tmp_path / 'store.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    store = Store(url)
    store.upgrade()
    store.dispose()
    return url


@pytest.fixture
def pg_store_url(pg_url: str) -> str:
    """A PostgreSQL store only (what needs a shared server, like Dask), schema upgraded."""
    from etl.load.store import Store

    store = Store(pg_url)
    store.upgrade()
    store.dispose()
    return pg_url


# the fixtures that put a test on the real stores: store_url (SQLite and PostgreSQL, one run
# each), pg_url and pg_store_url (PostgreSQL). Tests that use one are marked `store`, so
# `-m "not store"` runs without a PostgreSQL server (tests that take the PostgreSQL fixture by
# name at run time, as the floor benchmark does, carry the marker themselves)
STORE_FIXTURES = frozenset({"store_url", "pg_url", "pg_store_url"})


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if STORE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.store)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CHATSELL_* from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("CHATSELL_") and key != "CHATSELL_TEST_PG":
            monkeypatch.delenv(key, raising=False)
