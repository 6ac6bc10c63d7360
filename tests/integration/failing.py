"""A write function that fails on purpose in the process that writes: the run's own, or its
writer process, a fresh interpreter that a monkeypatch of the run's modules does not reach."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from etl.load import writers
from etl.load.sinks import ProcessSink


class FailsAt:
    """``etl.load.writers.<name>`` raising ``error`` at its ``nth`` call in a process, and doing
    what it replaced at every other."""

    def __init__(self, name: str, nth: int, error: BaseException) -> None:
        self.name, self.nth, self.error = name, nth, error
        self.calls = 0
        self.original = getattr(writers, name)

    def __reduce__(self):  # the writer's copy counts its own calls and calls its own original
        return FailsAt, (self.name, self.nth, self.error)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.nth:
            raise self.error
        return self.original(*args, **kwargs)


def fail_write(
    monkeypatch: pytest.MonkeyPatch, name: str, nth: int, error: BaseException
) -> Callable[[], None]:
    """``writers.<name>`` fails at its ``nth`` call, here and in each writer process started
    (the writer counting from its start, as a forked one did) until the returned undo."""
    failing = FailsAt(name, nth, error)
    real_start = ProcessSink.start

    def start(sink: ProcessSink) -> ProcessSink:
        real_start(sink).call(_install, failing)
        return sink

    def undo() -> None:
        monkeypatch.setattr(writers, name, failing.original)
        monkeypatch.setattr(ProcessSink, "start", real_start)

    monkeypatch.setattr(writers, name, failing)
    monkeypatch.setattr(ProcessSink, "start", start)
    return undo


def _install(_conn, failing: FailsAt) -> None:
    """Run in a writer process (``ProcessSink.call``): its ``writers`` fails as the run's does."""
    setattr(writers, failing.name, failing)
