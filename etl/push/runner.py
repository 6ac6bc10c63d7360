"""``chatsell push``: the outbox delivered to a destination, oldest row first, exactly once.

Exactly once, whatever the destination:

- a row is committed ``sending`` (an attempt counted) before its request, and ``sent`` with the
  destination's id after; a failure is committed ``failed`` with the destination's words;
- a row found ``sending`` when a push starts may have arrived (the push before was killed
  mid-request): the destination looks for it (``find``) before it is sent again; so does a
  request whose answer was lost in this push (a time-out, a dropped connection);
- a row about a lead chatsell created waits (stays ``pending``) until the lead has an id there;
- a failed row never stops the others; ``--retry-failed`` sends the failed ones again.

A push is a run (``mode = "push"``) under the store lock, with a report of its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from etl.config import Settings
from etl.contracts import Destination
from etl.errors import ChatsellError
from etl.load import writers
from etl.load.store import Store
from etl.monitor import Watch
from etl.push.http import GaveUp, Refused, Unknown
from etl.vocab import OUTBOX_KINDS, Delivered, OutboxItem

log = logging.getLogger("chatsell.push")

BATCH = 500  # outbox rows read at a time
LOG_EVERY = 1_000  # requests between two progress lines


@dataclass(frozen=True)
class PushOptions:
    dry_run: bool = False
    limit: int | None = None  # rows at most, oldest first
    retry_failed: bool = False
    base_url: str | None = None


@dataclass
class PushResult:
    run_id: int | None
    report: dict[str, Any]
    requests: list[dict[str, Any]] = field(default_factory=list)  # a dry run's

    @property
    def failed(self) -> int:
        return sum(self.report["push"]["failed"].values())


Emit = Callable[[dict[str, Any]], None]


def run_push(
    settings: Settings,
    options: PushOptions,
    *,
    store: Store | None = None,
    destination: Destination | None = None,
    emit: Emit | None = None,
) -> PushResult:
    """Send the outbox's rows (a dry run: ``emit`` each request it would make, send nothing)."""
    own_store = store is None
    store = store or Store(settings.database_url.get_secret_value())
    own_destination = destination is None
    try:
        store.prepare()
        if destination is None:
            destination = _sell(settings, options)
        with store.lock() as holder:
            if options.dry_run:
                return _Push(settings, options, store, destination, emit).run(None)
            watch = Watch(settings, store, "push", None)
            watch.started()
            push = _Push(settings, options, store, destination, emit)
            try:
                run_id, _resumed = store.begin_run(
                    "push", _input_key(options), _options(options), holder, resume="never"
                )
                push.run_id = run_id
                result = push.run(run_id)
            except BaseException as exc:
                push.fail(exc)
                watch.ended(push.run_id, exc)
                raise
            watch.ended(run_id, None)
            return result
    finally:
        if own_destination and destination is not None:
            destination.close()
        if own_store:
            store.dispose()


def _sell(settings: Settings, options: PushOptions) -> Destination:
    from etl.pull.access import resolve_token, sell_base_url  # noqa: PLC0415
    from etl.push.sell import SellDestination  # noqa: PLC0415

    base_url = sell_base_url(settings, options.base_url)
    if options.dry_run:
        token = "dry-run"  # nothing is sent
    else:
        secret, _where = resolve_token(settings, "sell")
        token = secret.get_secret_value()
    return SellDestination(base_url, token, settings.push)


class _Push:
    def __init__(self, settings, options: PushOptions, store: Store, destination, emit) -> None:
        self.settings, self.options, self.store = settings, options, store
        self.destination, self.emit = destination, emit
        self.run_id: int | None = None
        self.started_at = datetime.now(UTC)
        self.counts = {s: dict.fromkeys(OUTBOX_KINDS, 0) for s in ("sent", "failed", "skipped")}
        self.waiting = 0
        self.planned: list[dict[str, Any]] = []
        self.tried: set[int] = set()  # rows this push delivered or failed
        self._logged = 0

    def run(self, run_id: int | None) -> PushResult:
        statuses = ("pending", "sending", "failed") if self.options.retry_failed else (
            "pending", "sending")  # fmt: skip
        limit = self.options.limit
        done = 0
        waited = True
        while waited and (limit is None or done < limit):
            # a row that waited for its lead goes in a second pass once the lead was sent
            self.waiting, waited, after = 0, False, 0
            sent_leads = self.counts["sent"]["lead"]
            while limit is None or done < limit:
                size = BATCH if limit is None else min(BATCH, limit - done)
                rows = self.store.outbox_rows(statuses, after, size)
                if not rows:
                    break
                for row in rows:
                    after = row["id"]
                    if self._row(row):
                        done += 1
                    if limit is not None and done >= limit:
                        break
            waited = bool(self.waiting) and self.counts["sent"]["lead"] > sent_leads
            waited = waited and not self.options.dry_run
        report = self._report("succeeded")
        if run_id is not None:
            with self.store.transaction() as conn:
                writers.finish_run(conn, run_id, "succeeded", report)
        log.info(
            "push finished",
            extra={"event": "push_finished", "run_id": run_id, **{k: sum(v.values())
                   for k, v in self.counts.items()}, "requests": report["push"]["requests"]},
        )  # fmt: skip
        return PushResult(run_id, report, self.planned)

    def fail(self, exc: BaseException) -> None:
        if self.run_id is None or not isinstance(exc, Exception):
            return
        try:
            with self.store.transaction() as conn:
                error = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]
                writers.finish_run(conn, self.run_id, "failed", None, error=error)
        except ChatsellError:
            log.error("could not record the failure of push %s", self.run_id)

    # -- one row -----------------------------------------------------------------------------------

    def _row(self, row: dict[str, Any]) -> bool:
        """Deliver one row; False when it waits (its lead is not at the destination yet)."""
        if row["id"] in self.tried:  # (a second pass: only the rows that waited)
            return False
        item = self._item(row)
        if item.target_id is None and item.kind != "lead":
            self.waiting += 1
            if self.options.dry_run:
                self._plan(item, waits=True)
            return False
        if item.content is None and item.kind != "phone":
            self._mark(item, Delivered("skipped", reason="no longer in the store"), row)
            return True
        self.tried.add(item.id)
        if self.options.dry_run:
            self._plan(item)
            return True
        if row["status"] == "sending" and self._found(item, row):  # a push was killed mid-request
            return True
        self.store.mark_outbox(item.id, "sending")
        lost = 0
        while True:
            try:
                delivered = self.destination.deliver(item)
            except Unknown as exc:
                lost += 1
                log.warning("push: no answer for outbox row %s (%s); looking for it", item.id, exc)
                try:
                    if self._found(item, row):
                        break
                except (Refused, GaveUp) as said:
                    self._failed(item, said)
                    break
                if lost >= self.settings.push.max_attempts:
                    self._failed(item, exc)
                    break
                continue
            except (Refused, GaveUp) as exc:
                self._failed(item, exc)
                break
            self._mark(item, delivered, row)
            break
        self._progress()
        return True

    def _item(self, row: dict[str, Any]) -> OutboxItem:
        return OutboxItem(
            id=int(row["id"]),
            kind=row["kind"],
            record_type=row["record_type"],
            record_id=int(row["record_id"]),
            chat_id=row["chat_id"],
            payload=json.loads(row["payload"]) if row.get("payload") else {},
            target_id=self.store.destination_id(row["record_type"], int(row["record_id"])),
            content=self.store.outbox_content(row),
        )

    def _found(self, item: OutboxItem, row: dict[str, Any]) -> bool:
        """Whether an earlier delivery of the row made it; if so it is ``sent`` with that id."""
        taken = self.store.claimed_ids(item.kind, item.record_type, item.record_id)
        found = self.destination.find(item, taken)
        if found is None:
            return False
        self._mark(item, Delivered("sent", destination_id=found, reason="found"), row)
        return True

    def _mark(self, item: OutboxItem, delivered: Delivered, row: dict[str, Any]) -> None:
        self.store.mark_outbox(
            item.id, delivered.status, sell_id=delivered.destination_id,
            last_error=delivered.reason if delivered.status == "skipped" else None,
        )  # fmt: skip
        self.counts[delivered.status][item.kind] += 1

    def _failed(self, item: OutboxItem, exc: Exception) -> None:
        self.store.mark_outbox(item.id, "failed", last_error=str(exc)[:500])
        self.counts["failed"][item.kind] += 1
        log.warning("push: outbox row %s (%s %s) failed: %s", item.id, item.kind,
                    item.chat_id or item.record_id, exc, extra={"event": "push_row_failed"})  # fmt: skip

    def _plan(self, item: OutboxItem, waits: bool = False) -> None:
        for request in self.destination.requests(item):
            entry = {**request, "outbox_id": item.id, "kind": item.kind}
            if waits:
                entry["waits_for"] = f"{item.record_type} {item.record_id}"
            self.planned.append(entry)
            if self.emit is not None:
                self.emit(entry)

    def _progress(self) -> None:
        requests = self.destination.counts()["requests"]
        if requests - self._logged >= LOG_EVERY:
            self._logged = requests
            log.info("push: %d requests", requests,
                     extra={"event": "push_progress", "requests": requests})  # fmt: skip

    def _report(self, status: str) -> dict[str, Any]:
        sent = self.destination.counts()
        counts = self.store.outbox_counts()
        return {
            "run_id": self.run_id,
            "mode": "dry-run" if self.options.dry_run else "push",
            "status": status,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "destination": self.destination.name,
            "push": {
                "sent": dict(self.counts["sent"]),
                "failed": dict(self.counts["failed"]),
                "skipped": dict(self.counts["skipped"]),
                "pending": counts["pending"] + counts["sending"],
                "waiting": self.waiting,
                "requests": sent["requests"],
                "retries": sent["retries"],
                "rate_limited": sent["rate_limited"],
            },
            "warnings": [],
        }


def _input_key(options: PushOptions) -> str:
    material = ["push", options.limit, options.retry_failed, options.base_url]
    return hashlib.sha256(json.dumps(material).encode()).hexdigest()[:32]


def _options(options: PushOptions) -> dict[str, Any]:
    return {"limit": options.limit, "retry_failed": options.retry_failed}
