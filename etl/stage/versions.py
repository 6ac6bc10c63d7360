"""Which version of a chat wins, written once: a version replaces another only when it is
strictly newer (its ``version``, the update time then the content hash, compares greater); on
a tie the one met first stays, so the order files are read in never matters.

Three places apply it: the local stage in SQL (``NEWER_THAN_STAGED``), a Dask backfill's
partitions in pandas (``keep_newest``), and a staged chat against the store's copy
(``etl.run.chunks.newest_versions``, through ``is_newer``).
"""

from __future__ import annotations

import pandas as pd

# the upsert's guard in the stage's SQL: the incoming row replaces the staged one
NEWER_THAN_STAGED = "excluded.version > chats.version"


def is_newer(candidate: pd.Series, current: pd.Series) -> pd.Series:
    """Where ``candidate`` replaces ``current``."""
    return candidate > current


def keep_newest(chats: pd.DataFrame) -> pd.DataFrame:
    """One row per chat id: the newest version, the first met on a tie (row order)."""
    chats = chats.assign(_pos=range(len(chats)))
    chats = chats.sort_values(["version", "_pos"], ascending=[False, True], kind="stable")
    return chats.drop_duplicates("chat_id", keep="first").drop(columns="_pos")
