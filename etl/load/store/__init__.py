"""The CRM store: engine, migrations, the run lock, run bookkeeping and reads.

Writes live in ``etl.load.writers``; both are the only code that speaks SQL. ``Store`` is one
class made of a class per concern, each a ``StoreBase`` (engine, transactions, migrations):

- ``runs``: the run lock, runs, a run's outcomes and rejects, the export files loaded
- ``crm``: the CRM and the stored chats as a sync reads them
- ``reads``: the read side (a record's feed, the Chat cards' records)
- ``cursors``: the pull cursors
- ``alerts``: the alert conditions' state, the outbox counts monitoring shows
- ``outbox``: the Sell outbox as ``push`` reads and moves it
- ``privacy``: erasure requests and retention

Nothing here imports ``etl.report``: the report page's outcomes leave as rows and counts
(``Store.outcome_digest_rows``), which ``etl.report.digest`` folds.
"""

from __future__ import annotations

from etl.load.store.alerts import AlertBook
from etl.load.store.base import (
    FETCH_ROWS,
    MIGRATIONS,
    READ_CACHE_KIB,
    SCHEMA_HEAD,
    SQLITE_PAGE_SIZE,
    WRITE_CACHE_KIB,
    StoreBase,
    columnar_frame,
    masked,
    parse_url,
)
from etl.load.store.crm import CRM_COLUMNS, INDEX_COLUMNS, CrmReads
from etl.load.store.cursors import PullCursors
from etl.load.store.outbox import OutboxBook
from etl.load.store.privacy import Erasure, PrivacyBook, Pruned
from etl.load.store.reads import ReadSide
from etl.load.store.runs import INTERRUPTED, RunBook

__all__ = [
    "CRM_COLUMNS",
    "INDEX_COLUMNS",
    "Erasure",
    "FETCH_ROWS",
    "INTERRUPTED",
    "MIGRATIONS",
    "Pruned",
    "READ_CACHE_KIB",
    "SCHEMA_HEAD",
    "SQLITE_PAGE_SIZE",
    "WRITE_CACHE_KIB",
    "Store",
    "StoreBase",
    "columnar_frame",
    "masked",
    "parse_url",
]


class Store(
    RunBook, CrmReads, ReadSide, PullCursors, AlertBook, OutboxBook, PrivacyBook, StoreBase
):
    """One CRM store (SQLite file or PostgreSQL database)."""
