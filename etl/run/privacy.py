"""Erasure requests and retention as commands (SPEC 10): ``chatsell forget`` and ``chatsell
prune``, and the retention each sync applies after it commits. Each holds the store lock, so it
never interleaves with a run; what they change is ``etl.load.store.privacy``'s doing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from etl.config import Settings
from etl.errors import ConfigError
from etl.load.store import Erasure, Pruned, Store
from etl.stage.scratch import orphans, remove_orphans

log = logging.getLogger("chatsell.privacy")


def forget(
    settings: Settings,
    store: Store,
    emails: list[str],
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Erasure:
    """Erase every stored trace of these people's chats; see ``PrivacyBook.erase``. An email is
    normalized as a sync normalizes it (``[match]``), so the erasure covers every spelling a
    sync would take for it."""
    keys = _keys(settings, emails)
    store.prepare()
    with store.lock():
        erased = store.erase(keys, emails, now or datetime.now(UTC), dry_run=dry_run)
        # a killed run's scratch stage (raw chats, this person's among them) goes too; with
        # the lock held, no run of this store is staging now
        erased.tables["scratch_dirs"] = len(orphans() if dry_run else remove_orphans())
    # the log names no email: it would keep what was erased
    log.info(
        "erasure request: %d email(s)%s", len(keys), " (dry run)" if dry_run else "",
        extra={"event": "erased", "dry_run": dry_run, "tables": erased.tables,
               "pushed_leads": len(erased.pushed_leads)},
    )  # fmt: skip
    return erased


def prune(
    settings: Settings, store: Store, *, dry_run: bool = False, now: datetime | None = None
) -> Pruned:
    """Apply ``[retention]`` now, under the store lock."""
    store.prepare()
    with store.lock():
        return retain(settings, store, now or datetime.now(UTC), dry_run=dry_run)


def retain(
    settings: Settings,
    store: Store,
    now: datetime,
    *,
    dry_run: bool = False,
    keep_run: int | None = None,
) -> Pruned:
    """``[retention]`` applied by a holder of the store lock: now (``prune``), or by a sync
    after it commits (``keep_run``, its run), once a day."""
    retention = settings.retention
    pruned = store.prune(
        now, retention.transcripts_days, retention.run_details_days, dry_run, keep_run,
        every=None if keep_run is None else timedelta(days=1),
    )  # fmt: skip
    if any(pruned.tables.values()):
        log.info(
            "retention: %s", ", ".join(f"{k} {v}" for k, v in sorted(pruned.tables.items()) if v),
            extra={"event": "pruned", "dry_run": dry_run, "tables": pruned.tables},
        )  # fmt: skip
    return pruned


def _keys(settings: Settings, emails: list[str]) -> list[str]:
    import pandas as pd  # noqa: PLC0415 - (a sync's retention needs neither)

    from etl.transform.normalize import OK, email_key  # noqa: PLC0415

    keys, status = email_key(
        pd.Series(emails, dtype=object),
        settings.match.provider_rules,
        settings.match.strip_plus_tags,
    )
    bad = [email for email, ok in zip(emails, status == OK, strict=True) if not ok]
    if bad:
        raise ConfigError(f"not an email address: {bad[0]!r}")
    return sorted(set(keys))
