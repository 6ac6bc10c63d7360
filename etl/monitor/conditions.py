"""The alert conditions (SPEC section 11), evaluated over the runs a store holds.

Pure: given the recent runs (newest first) and the thresholds, each condition says whether it
fires, with its figure and threshold. ``chatsell health`` and the alerts after every run ask the
same question of the same rows.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from etl.config import AlertSettings

VOLUME_RUNS = 7  # the successful syncs a run's volume is compared with
LOADING_MODES = ("sync", "backfill")  # runs that read chats


@dataclass(frozen=True)
class Condition:
    name: str
    firing: bool
    figure: float | None  # None: nothing to measure yet (no run of that kind)
    threshold: float
    unit: str  # "%", "h", "runs", "rows"
    run_id: int | None  # the run the figure is of
    detail: str  # what the figure is, in words

    def line(self) -> str:
        state = "FIRING" if self.firing else "ok"
        figure = "-" if self.figure is None else _number(self.figure, self.unit)
        return (
            f"{state:<6} {self.name:<18} {figure} (threshold {_number(self.threshold, self.unit)})"
            f"  {self.detail}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "condition": self.name,
            "firing": self.firing,
            "figure": self.figure,
            "threshold": self.threshold,
            "unit": self.unit,
            "run_id": self.run_id,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class RunRecord:
    """What the conditions need of one row of ``runs``."""

    run_id: int
    mode: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    report: dict[str, Any]

    @classmethod
    def of(cls, row: dict[str, Any]) -> RunRecord:
        raw = row.get("report")
        report = json.loads(raw) if isinstance(raw, str) and raw else (raw or {})
        return cls(
            run_id=int(row["run_id"]),
            mode=str(row["mode"]),
            status=str(row["status"]),
            started_at=_utc(row.get("started_at")),
            finished_at=_utc(row.get("finished_at")),
            report=report,
        )

    @property
    def chats_read(self) -> int:
        return int(self.report.get("accounting", {}).get("chats_read", 0) or 0)


def evaluate(
    runs: list[RunRecord], settings: AlertSettings, now: datetime, failure: str | None = None
) -> list[Condition]:
    """Every configured condition over ``runs`` (newest first; running rows left out).

    ``failure``: why the run just attempted failed before it had a row of its own (a
    configuration error found against the Sell users, say): the last run failed all the same.
    """
    finished = [r for r in runs if r.status != "running"]
    out: list[Condition] = []
    if settings.on_failure:
        out.append(_failure(finished, failure))
    loaded = [r for r in finished if r.mode in LOADING_MODES and r.status == "succeeded"]
    # the shares are of the last run that read chats: a sync with nothing new says nothing of them
    reading = [r for r in loaded if r.chats_read > 0]
    latest = reading[0] if reading else None
    if settings.rejects_pct is not None:
        out.append(_share(latest, "rejects_pct", settings.rejects_pct, "rejects",
                          lambda r: int(r.report.get("rejects", 0) or 0), "records set aside"))  # fmt: skip
    if settings.invalid_email_pct is not None:
        out.append(_share(latest, "invalid_email_pct", settings.invalid_email_pct, "invalid emails",
                          lambda r: int(r.report.get("outcomes", {}).get("invalid_email", 0) or 0),
                          "chats with an invalid email"))  # fmt: skip
    if settings.volume_change_pct is not None:
        syncs = [r for r in loaded if r.mode == "sync"]
        out.append(_volume(syncs, settings.volume_change_pct))
    if settings.stale_hours is not None:
        successes = [r for r in loaded if r.mode == "sync"]
        out.append(_stale(successes[0] if successes else None, settings.stale_hours, now))
    if settings.push_failed:
        pushes = [r for r in finished if r.mode == "push"]
        out.append(_push_failed(pushes[0] if pushes else None))
    return out


def _failure(finished: list[RunRecord], failure: str | None) -> Condition:
    if failure is not None:
        return Condition("run_failed", True, 1.0, 0.0, "runs", None, failure)
    last = finished[0] if finished else None
    failed = last is not None and last.status in ("failed", "interrupted")
    detail = "no run yet" if last is None else f"the last run ({last.mode}) {last.status}"
    return Condition("run_failed", failed, 1.0 if failed else 0.0, 0.0, "runs",
                     last.run_id if last else None, detail)  # fmt: skip


def _share(latest, name, threshold, label, count, what) -> Condition:
    if latest is None:
        return Condition(name, False, None, threshold, "%", None, "no sync has read chats yet")
    read = latest.chats_read
    figure = 100.0 * count(latest) / read if read else 0.0
    return Condition(
        name, figure > threshold, round(figure, 2), threshold, "%", latest.run_id,
        f"{count(latest)} {label} of {read} chats read in run {latest.run_id} ({what})",
    )  # fmt: skip


def _volume(syncs: list[RunRecord], threshold: float) -> Condition:
    name = "volume_change_pct"
    if len(syncs) < 2:
        return Condition(name, False, None, threshold, "%", None, "fewer than 2 successful syncs")
    latest, earlier = syncs[0], syncs[1 : 1 + VOLUME_RUNS]
    median = statistics.median(r.chats_read for r in earlier)
    if median == 0:
        figure = 0.0 if latest.chats_read == 0 else 100.0
    else:
        figure = abs(latest.chats_read - median) * 100.0 / median
    return Condition(
        name, figure > threshold, round(figure, 2), threshold, "%", latest.run_id,
        f"run {latest.run_id} read {latest.chats_read} chats; the median of the {len(earlier)} "
        f"successful syncs before it is {median:g}",
    )  # fmt: skip


def _stale(last: RunRecord | None, threshold: float, now: datetime) -> Condition:
    name = "stale_hours"
    if last is None or last.finished_at is None:
        return Condition(name, True, None, threshold, "h", None, "no successful sync yet")
    hours = (now - last.finished_at).total_seconds() / 3600
    return Condition(
        name, hours > threshold, hours, threshold, "h", last.run_id,
        f"the last successful sync, run {last.run_id}, finished {last.finished_at.isoformat(timespec='seconds')}",
    )  # fmt: skip


def _push_failed(last: RunRecord | None) -> Condition:
    name = "push_failed"
    if last is None:
        return Condition(name, False, None, 0.0, "rows", None, "no push yet")
    given = last.report.get("push", {}).get("failed", 0) or 0  # by kind (SPEC 9), or a total
    failed = sum(int(v or 0) for v in given.values()) if isinstance(given, dict) else int(given)
    firing = failed > 0 or last.status == "failed"
    return Condition(name, firing, float(failed), 0.0, "rows", last.run_id,
                     f"push run {last.run_id} ended {last.status} with {failed} rows failed")  # fmt: skip


def _number(value: float, unit: str) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    return f"{text}{unit}" if unit in ("%", "h") else f"{text} {unit}"


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
