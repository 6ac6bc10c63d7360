"""Alerts on a change of state: one message when a condition starts firing, none while it keeps
firing, one when it recovers. The state lives in the store (``alert_state``), so a run in another
process (cron's next) knows what was said. A message that could not be delivered stays pending in
its row and is sent again after the next run; a delivery never fails the run.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from etl.monitor.conditions import Condition
from etl.monitor.secrets import masked_url

log = logging.getLogger("chatsell.alerts")

Deliver = Callable[[str, str], bool]  # (title, body) -> delivered


@dataclass(frozen=True)
class Transition:
    condition: Condition
    firing: bool  # True: it started firing; False: it recovered

    def title(self) -> str:
        word = "FIRING" if self.firing else "RECOVERED"
        return f"chatsell {word}: {self.condition.name}"


def transitions(conditions: Iterable[Condition], state: dict[str, dict]) -> list[Transition]:
    """The conditions whose state changed against ``state`` (condition -> its stored row). A
    condition never seen is taken as not firing: a first firing is news, a first ok is not."""
    out = []
    for condition in conditions:
        was = bool(state.get(condition.name, {}).get("firing", False))
        if condition.firing != was:
            out.append(Transition(condition, condition.firing))
    return out


def message(t: Transition, run_id: int | None, mode: str | None, report: Path | None) -> str:
    c = t.condition
    figure = "-" if c.figure is None else f"{c.figure:g}{_unit(c.unit)}"
    lines = [
        f"{'Firing' if t.firing else 'Recovered'}: {c.name} is {figure} "
        f"(threshold {c.threshold:g}{_unit(c.unit)}).",
        c.detail + ".",
        f"After run {run_id} ({mode})." if run_id is not None else "Checked without a run.",
    ]
    if report is not None:
        lines.append(f"Report: {report}")
    return "\n".join(lines)


def apprise_deliver(urls: list[str]) -> Deliver:
    """Deliver through Apprise to every URL; True only when every one took it."""

    def deliver(title: str, body: str) -> bool:
        # Apprise's plug-ins import modules that warn of their deprecation (imghdr): not ours
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return _deliver(urls, title, body)

    return deliver


def quiet_apprise() -> None:
    """Apprise logs the URLs it sends to (with their tokens) at its own levels: only ours speak."""
    logger = logging.getLogger("apprise")
    logger.propagate = False
    logger.setLevel(logging.CRITICAL + 1)


def _unit(unit: str) -> str:
    return unit if unit in ("%", "h") else f" {unit}"


def now_row(
    t: Transition, pending: str | None, run_id: int | None, at: datetime
) -> dict[str, object]:
    c = t.condition
    return {
        "condition": c.name,
        "firing": t.firing,
        "figure": c.figure,
        "threshold": c.threshold,
        "run_id": run_id,
        "changed_at": at,
        "pending": pending,
    }


def _deliver(urls: list[str], title: str, body: str) -> bool:
    import apprise  # noqa: PLC0415 - only a run that alerts pays for it

    ok = True
    for url in urls:
        sender = apprise.Apprise()
        if not sender.add(url):
            log.error("alert URL not understood: %s", masked_url(url),
                      extra={"event": "alert_url_invalid"})  # fmt: skip
            ok = False
            continue
        try:
            sent = sender.notify(title=title, body=body)
        except Exception as exc:  # noqa: BLE001 - a delivery never fails the run
            log.warning("alert delivery to %s failed: %s", masked_url(url), type(exc).__name__)
            sent = False
        if not sent:
            log.warning("alert delivery to %s failed; it is sent again after the next run",
                        masked_url(url), extra={"event": "alert_failed"})  # fmt: skip
            ok = False
    return ok
