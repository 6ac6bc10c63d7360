"""Fault injection for crash tests: kill this process at a named point, nowhere else.

Inactive unless ``CHATSELL_KILL_AT`` is set (``<point>:<n>``: SIGKILL at the n-th time the run
reaches ``point``). The points are the edges of the store's transactions: ``before_commit``
(inside an open transaction) and ``after_commit``. Tests use it to show that a run killed at
any of them and run again ends in the state of an uninterrupted run.
"""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}
_partners: list[int] = []  # processes that die with this one (a writer's planner)


def counts() -> dict[str, int]:
    """How often each point was reached here (handed on to and back from a writer process, so
    ``<point>:<n>`` counts the run's transactions whichever process commits them)."""
    return dict(_counts)


def adopt(seen: dict[str, int]) -> None:
    _counts.clear()
    _counts.update(seen)


def die_with(pid: int) -> None:
    """A kill here kills ``pid`` first: a writer process's fault is its whole run's."""
    _partners.append(pid)


def point(name: str) -> None:
    target = os.environ.get("CHATSELL_KILL_AT")
    if not target:
        return
    where, _, nth = target.partition(":")
    if where != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == int(nth or 1):
        for pid in _partners:
            os.kill(pid, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


def point_once(name: str) -> None:
    """SIGKILL at ``point`` once across processes (Dask workers): ``CHATSELL_KILL_ONCE`` is
    ``<point>:<marker file>``; the process that first creates the marker dies."""
    target = os.environ.get("CHATSELL_KILL_ONCE")
    if not target:
        return
    where, _, marker = target.partition(":")
    if where != name or not marker:
        return
    try:
        with open(marker, "x"):
            pass
    except FileExistsError:
        return
    os.kill(os.getpid(), signal.SIGKILL)
