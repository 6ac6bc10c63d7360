"""Runs and the lock: a run's row, its outcomes and rejects, and the export files loaded."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, or_, select, update

from etl.load import schema
from etl.load.lock import run_lock
from etl.load.store.base import FETCH_ROWS, StoreBase, _utc

if TYPE_CHECKING:
    import pandas as pd

# the logger's name as it was before the store was split (the JSON log lines carry it)
log = logging.getLogger("etl.load.store")

INTERRUPTED = "interrupted: the process stopped before the run finished"
# the ``store_settings`` row that remembers which configuration last passed a run's checks
# against which Sell users (``etl.run.unchanged``)
CONFIG_CHECKED = "config_checked"


class RunBook(StoreBase):
    """The run lock and the run bookkeeping: runs, windows, outcomes, rejects, source files."""

    @contextmanager
    def lock(self) -> Iterator[dict[str, object]]:
        with run_lock(self.engine) as holder:
            yield holder

    # -- runs ----------------------------------------------------------------------------------

    def latest_run(self) -> dict[str, Any] | None:
        """The newest run's id, mode, input key and status, whatever its status (what
        ``begin_run`` looks at to resume)."""
        runs = schema.runs
        with self.engine.connect() as conn:
            row = conn.execute(
                select(runs.c.run_id, runs.c.mode, runs.c.input_key, runs.c.status)
                .order_by(runs.c.run_id.desc())
                .limit(1)
            ).first()
        return dict(row._mapping) if row else None

    def begin_run(
        self,
        mode: str,
        input_key: str,
        options: dict[str, Any],
        holder: dict[str, object],
        resume: str = "interrupted",
    ) -> tuple[int, bool]:
        """(run_id, resumed). We hold the lock, so a run still marked ``running`` has died.

        ``resume``: ``interrupted`` resumes such a run when it is the latest and had the same
        inputs (what ``sync`` does, so a killed cron run is finished by the next one);
        ``unfinished`` also resumes a failed one (``backfill --resume``); ``never`` starts anew.
        Runs not resumed are marked failed.
        """
        runs = schema.runs
        now = datetime.now(UTC)
        resumable = {"interrupted": ("running",), "unfinished": ("running", "failed"), "never": ()}[
            resume
        ]
        with self.transaction() as conn:
            latest = conn.execute(
                select(runs.c.run_id, runs.c.mode, runs.c.input_key, runs.c.status)
                .order_by(runs.c.run_id.desc())
                .limit(1)
            ).first()
            if (
                latest
                and latest.status in resumable
                and latest.mode == mode
                and latest.input_key == input_key
            ):
                conn.execute(
                    update(runs)
                    .where(runs.c.run_id == latest.run_id)
                    .values(
                        status="running",
                        host=holder["host"],
                        pid=holder["pid"],
                        error=None,
                        finished_at=None,
                    )
                )
                log.info(
                    "resuming run %s",
                    latest.run_id,
                    extra={"event": "run_resumed", "run_id": latest.run_id},
                )
                return int(latest.run_id), True
            conn.execute(
                update(runs)
                .where(runs.c.status == "running")
                .values(status="failed", finished_at=now, error=INTERRUPTED)
            )
            result = conn.execute(
                runs.insert().values(
                    mode=mode,
                    status="running",
                    started_at=now,
                    host=holder["host"],
                    pid=holder["pid"],
                    input_key=input_key,
                    options=json.dumps(options, default=str),
                    counters=json.dumps({}),
                )
            )
            return int(result.inserted_primary_key[0]), False

    def finished_windows(self, run_id: int) -> set[datetime]:
        import pandas as pd  # noqa: PLC0415 - frames only where a method builds one

        table = schema.backfill_windows
        with self.engine.connect() as conn:
            rows = conn.execute(select(table.c.window_start).where(table.c.run_id == run_id))
            return {
                pd.Timestamp(r[0]).tz_localize("UTC")
                if pd.Timestamp(r[0]).tzinfo is None
                else pd.Timestamp(r[0])
                for r in rows
            }

    def run_row(self, run_id: int | str) -> dict[str, Any] | None:
        runs = schema.runs
        with self.engine.connect() as conn:
            if run_id == "latest":
                query = (
                    select(runs)
                    .where(runs.c.status != "running")
                    .order_by(runs.c.run_id.desc())
                    .limit(1)
                )
            else:
                query = select(runs).where(runs.c.run_id == int(run_id))
            row = conn.execute(query).mappings().first()
            return dict(row) if row else None

    def recent_runs(self, limit: int) -> list[dict[str, Any]]:
        runs = schema.runs
        with self.engine.connect() as conn:
            rows = (
                conn.execute(select(runs).order_by(runs.c.run_id.desc()).limit(limit))
                .mappings()
                .all()
            )
            return [dict(r) for r in rows]

    def counters(self, run_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            raw = conn.execute(
                select(schema.runs.c.counters).where(schema.runs.c.run_id == run_id)
            ).scalar()
            return json.loads(raw or "{}")

    # -- a run's outcomes and rejects ----------------------------------------------------------

    def done_chat_ids(self, run_id: int) -> set[str]:
        """Chats this run already accounted for (a resumed run skips them)."""
        outcomes = schema.run_outcomes
        with self.engine.connect() as conn:
            rows = conn.execute(select(outcomes.c.chat_id).where(outcomes.c.run_id == run_id))
            return {r[0] for r in rows}

    def outcome_summary(self, run_id: int) -> tuple[dict[str, int], int, dict[str, int]]:
        """(count per outcome, distinct emails that matched more than one record, removed
        chats per reason)."""
        outcomes = schema.run_outcomes
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outcomes.c.outcome, func.count())
                .where(outcomes.c.run_id == run_id)
                .group_by(outcomes.c.outcome)
            ).all()
            multi = conn.execute(
                select(func.count(func.distinct(outcomes.c.email_normalized))).where(
                    outcomes.c.run_id == run_id, outcomes.c.match_count > 1
                )
            ).scalar()
            reasons = conn.execute(
                select(outcomes.c.reason, func.count())
                .where(outcomes.c.run_id == run_id, outcomes.c.outcome == "removed")
                .group_by(outcomes.c.reason)
            ).all()
        removed = {str(reason or ""): int(n) for reason, n in reasons}
        return {outcome: int(n) for outcome, n in rows}, int(multi or 0), removed

    def outcome_rows(self, run_id: int) -> pd.DataFrame:
        import pandas as pd  # noqa: PLC0415

        outcomes = schema.run_outcomes
        with self.engine.connect() as conn:
            frame = pd.read_sql(
                select(outcomes).where(outcomes.c.run_id == run_id).order_by(outcomes.c.chat_id),
                conn,
            )
        return _utc(frame, ("chat_started_at",))

    def outcome_digest_rows(
        self, run_id: int, size: int = FETCH_ROWS
    ) -> tuple[dict[str, Any], Iterator[pd.DataFrame]]:
        """What the report page needs of a run's outcomes, in the memory of a small run:
        (counts, listed).

        ``counts``, read now (one grouped pass, ``_grouped_counts``): ``rows`` (the run's outcome
        rows), ``first`` and ``last`` (the earliest and latest chat start, as stored) and
        ``groups``: for each of "day" (the UTC day started, as text, or missing), "department"
        and "agent", a frame of that value as stored, the outcome and ``n`` (none for no rows:
        no frame built). ``listed``, read as it is consumed: the exception lists' rows only
        (invalid emails, skipped leads, removed chats, multi-matches), ``size`` at a time in chat
        id order, as ``outcome_rows`` gives them. ``etl.report.digest`` folds both into the
        page's ``OutcomeDigest`` (``OutcomeDigest.from_store``).
        """
        o = schema.run_outcomes
        mine = o.c.run_id == run_id
        if self.dialect == "sqlite":  # stored as UTC text, 2026-11-02 09:00:00.000000
            day = func.substr(o.c.chat_started_at, 1, 10)
        else:
            day = func.to_char(func.timezone("UTC", o.c.chat_started_at), "YYYY-MM-DD")
        listed = or_(
            o.c.outcome.in_(["invalid_email", "lead_skipped", "removed"]), o.c.match_count > 1
        )
        rows, first, last, groups = _grouped_counts(self.engine, mine, day, size)
        if not rows:  # a run without outcomes (an unchanged sync): nothing to group or list
            return {"rows": 0, "first": None, "last": None, "groups": {}}, iter(())
        counts = {"rows": rows, "first": first, "last": last, "groups": groups}
        chunks = self.outcome_chunks(run_id, [c.name for c in o.c], size, where=listed)
        return counts, (_utc(frame, ("chat_started_at",)) for frame in chunks)

    def outcome_chunks(
        self, run_id: int, columns: Iterable[str], size: int = FETCH_ROWS, where=None
    ) -> Iterator[pd.DataFrame]:
        """A run's outcome rows (these columns; those ``where`` holds) in chat id order, as
        ``outcome_rows`` gives them, ``size`` at a time: a million-chat run's details in the
        memory of a fetch."""
        import pandas as pd  # noqa: PLC0415

        o = schema.run_outcomes
        names = list(columns)
        stmt = select(*[o.c[n] for n in names]).where(o.c.run_id == run_id)
        if where is not None:
            stmt = stmt.where(where)
        stmt = stmt.order_by(o.c.chat_id)
        with self.engine.connect().execution_options(
            stream_results=True, max_row_buffer=size
        ) as conn:
            result = conn.execute(stmt)
            while rows := result.fetchmany(size):
                values = map(list, zip(*rows, strict=True))
                yield pd.DataFrame(dict(zip(names, values, strict=True)), columns=names)

    def reject_rows(self, run_id: int, limit: int | None = None) -> pd.DataFrame:
        """A run's rejects in file and position order (the first ``limit``, if given)."""
        import pandas as pd  # noqa: PLC0415

        rejects = schema.rejects
        stmt = (
            select(rejects)
            .where(rejects.c.run_id == run_id)
            .order_by(rejects.c.source_file, rejects.c.position)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return pd.read_sql(stmt, conn)

    def reject_count(self, run_id: int) -> int:
        rejects = schema.rejects
        with self.engine.connect() as conn:
            stmt = select(func.count()).select_from(rejects).where(rejects.c.run_id == run_id)
            return int(conn.execute(stmt).scalar_one())

    # -- inputs --------------------------------------------------------------------------------

    def source_files(self) -> dict[str, tuple[int, int, str]]:
        """path -> (size, mtime_ns, sha256) of every export file loaded so far."""
        files = schema.source_files
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(files.c.path, files.c.size, files.c.mtime_ns, files.c.sha256)
            )
            return {path: (size, mtime, sha) for path, size, mtime, sha in rows}

    # -- the configuration a run checked (``etl.run.unchanged``) --------------------------------

    def sell_user_keys(self) -> list[tuple[Any, Any, Any]]:
        """(id, email_normalized, status) of every Sell user, by id: what a configuration is
        checked against (the assignment's owners and pools, the integration user)."""
        u = schema.users
        with self.engine.connect() as conn:
            query = select(u.c.id, u.c.email_normalized, u.c.status).order_by(u.c.id)
            return [tuple(row) for row in conn.execute(query)]

    def config_checked(self) -> str | None:
        """The fingerprint ``remember_config_checked`` stored last (None: none yet)."""
        s = schema.store_settings
        with self.engine.connect() as conn:
            value = conn.execute(select(s.c.value).where(s.c.name == CONFIG_CHECKED)).scalar()
        return None if value is None else str(value)

    def remember_config_checked(self, fingerprint: str) -> None:
        s = schema.store_settings
        with self.transaction() as conn:
            conn.execute(delete(s).where(s.c.name == CONFIG_CHECKED))
            conn.execute(s.insert().values(name=CONFIG_CHECKED, value=fingerprint))


def _grouped_counts(engine, mine, day, size: int) -> tuple[int, Any, Any, dict[str, pd.DataFrame]]:
    """``outcome_digest_rows``' counts: (rows, first, last, groups) of the outcomes ``mine``
    selects. One pass over the rows for all of them (four GROUP BYs took 2.5x as long: 4.6 s
    of a 1M-chat run's end), folded a fetch at a time: what is held is a fetch and the
    distinct values of each key, however many combinations the rows hold."""
    o = schema.run_outcomes
    day = day.label("day")  # (grouped by its label: PostgreSQL's binds it once)
    stmt = (
        select(
            day, o.c.department, o.c.agent, o.c.outcome,
            func.count().label("n"),
            func.min(o.c.chat_started_at).label("first"),
            func.max(o.c.chat_started_at).label("last"),
        )
        .where(mine)
        .group_by(day, o.c.department, o.c.agent, o.c.outcome)
    )  # fmt: skip
    rows, first, last = 0, None, None
    groups: dict[str, pd.DataFrame] = {}
    with engine.connect().execution_options(stream_results=True, max_row_buffer=size) as conn:
        result = conn.execute(stmt)
        while fetched := result.fetchmany(size):
            rows += sum(row.n for row in fetched)
            first = _bound(first, (row.first for row in fetched), min)
            last = _bound(last, (row.last for row in fetched), max)
            _fold_groups(groups, fetched)
    return rows, first, last, groups


def _bound(now: Any, values: Iterable[Any], pick) -> Any:
    """``pick`` (min or max) of ``now`` and the ``values``, None left out (None: none left)."""
    present = [v for v in values if v is not None]
    if now is not None:
        present.append(now)
    return pick(present) if present else None


def _fold_groups(groups: dict[str, pd.DataFrame], fetched: list) -> None:
    """Add a fetch of (day, department, agent, outcome, n) rows to ``groups``' counts of each
    of "day", "department" and "agent" by outcome (a missing value is a group of its own, as
    in SQL)."""
    import pandas as pd  # noqa: PLC0415

    frame = pd.DataFrame(
        [(r.day, r.department, r.agent, r.outcome, r.n) for r in fetched],
        columns=["day", "department", "agent", "outcome", "n"],
    )
    for name in ("day", "department", "agent"):
        part = frame[[name, "outcome", "n"]]
        if name in groups:
            part = pd.concat([groups[name], part], ignore_index=True)
        groups[name] = part.groupby([name, "outcome"], dropna=False, sort=False, as_index=False)[
            "n"
        ].sum()
