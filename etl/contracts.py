"""The two contracts a run is built on, each with several implementations.

- ``Sink``: where a run's writes go. Everything a run writes to the store goes through its sink:
  written here (``etl.load.sinks.InlineSink``), in a forked writer process beside the planner
  (``etl.load.sinks.ProcessSink``), on Dask workers (``etl.run.dask.PartitionSink``), or nowhere
  (``etl.run.dry.DrySink``: a dry run records and counts what would be written instead).
- ``Stage``: the chats a run staged, deduplicated to the newest version of each, handed out
  in the one stable order (start time, then chat id): a scratch file of this machine
  (``etl.stage.chats.ChatStage``) or partitions held by Dask workers (``etl.run.dask.DaskStage``).

- ``Destination``: where ``push`` delivers the outbox: Zendesk Sell's Core API
  (``etl.push.sell.SellDestination``) first; another CRM is a second implementation of it, not a
  change to the outbox, the pacing or the exactly-once logic (``etl.push.runner``).

This module imports nothing of the project but its vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd

    from etl.vocab import Delivered, OutboxItem, PlanWrite, RunInputs


@runtime_checkable
class Sink(Protocol):
    """Applies a run's writes, each commit carrying the progress it covers (the run's counters).

    Plans are applied into an open transaction that ``applied`` commits every ``[run]
    commit_size`` chats and ``commit`` commits now; a kill loses at most the open one, which the
    next run redoes.
    """

    # whether it writes in another process (a large argument is better handed over in a file)
    elsewhere: bool

    def call(self, fn: Callable[..., None], *args: Any) -> None:
        """``fn(conn, *args)`` in a transaction of its own, after all this sink was given before
        (a module-level function: it may run in another process)."""
        ...

    def record_inputs(self, inputs: RunInputs) -> None:
        """The run's reference rows (agents, departments), its rejects and their outcomes."""
        ...

    def apply(self, job: PlanWrite) -> None:
        """A chunk's plan, in the open transaction; its write counts go to the run's counters."""
        ...

    def applied(self, chats: int) -> None:
        """``chats`` more chats were applied: commit when the transaction holds enough."""
        ...

    def commit(self) -> None:
        """Commit what was applied, and wait until it is."""
        ...

    def outcome_summary(self) -> tuple[dict[str, int], int, dict[str, int]]:
        """The outcomes recorded by this run so far, by value; its emails shared by several CRM
        records; its removed chats by reason."""
        ...

    def close(self) -> None:
        """Commit nothing more; end what the sink started (a process)."""
        ...

    def abort(self) -> None:
        """Roll back what is open and end (the run failed or was stopped)."""
        ...


@runtime_checkable
class Stage(Protocol):
    """The staged chats of a run: the newest version of each chat id, in (started_at, chat_id)
    order."""

    def count(self, since: pd.Timestamp | None = None, until: pd.Timestamp | None = None) -> int:
        """Chats staged, or those started in [since, until)."""
        ...

    def span(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """The earliest and the latest start staged; None when nothing is."""
        ...

    def staged(self, chat_ids: Iterable[str]) -> set[str]:
        """Which of these chat ids were staged."""
        ...

    def chunks(
        self, size: int, since: pd.Timestamp | None = None, until: pd.Timestamp | None = None
    ) -> Iterator[pd.DataFrame]:
        """The staged chats (CHAT_COLUMNS) in order, ``size`` at a time, optionally a window."""
        ...


@runtime_checkable
class Destination(Protocol):
    """Outbox rows in, requests out, ids and outcomes back. The runner commits a row ``sending``
    before ``deliver`` and ``sent`` after; it calls ``find`` first when an earlier ``deliver`` of
    the row may have arrived without its answer (a kill, a time-out, a dropped connection).

    ``deliver`` raises ``etl.push.http.Refused`` (the destination refused: failed at once),
    ``GaveUp`` (it kept failing) or ``Unknown`` (the answer was lost).
    """

    name: str

    def requests(self, item: OutboxItem) -> list[dict[str, Any]]:
        """The requests ``deliver`` would make (``method``, ``path``, ``body``): a dry run's."""
        ...

    def deliver(self, item: OutboxItem) -> Delivered:
        """Make the item so at the destination."""
        ...

    def find(self, item: OutboxItem, taken: set[int]) -> int | None:
        """The item's id at the destination if an earlier delivery made it (not one of
        ``taken``, the ids other rows have); None when it is not there. Items whose request is
        safe to repeat (an upsert) may answer None: they are sent again."""
        ...

    def counts(self) -> dict[str, int]:
        """What its requests came to so far: ``requests``, ``retries``, ``rate_limited``."""
        ...

    def close(self) -> None: ...
