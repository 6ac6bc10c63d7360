"""The chat intake stage: parse the chat files into the run's stage, then record what was read
(agents, departments, the rejects and their outcomes) before any chunk is planned."""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import pandas as pd

from etl.contracts import Sink, Stage
from etl.extract.rejects import Reject
from etl.run.files import Todo
from etl.run.state import RunState
from etl.stage.chats import fill
from etl.transform.erasure import Erasures
from etl.vocab import REJECT_COLUMNS, RunInputs

log = logging.getLogger("chatsell.pipeline")


@dataclass
class Intake:
    """The chats staged and what the chat files gave besides them."""

    stage: Stage
    agents: pd.DataFrame  # the stored ones, overridden by this run's exports
    departments: pd.DataFrame
    rejects: list[Reject]  # records of the chat files set aside


def stage_chats(state: RunState, stage, todo: Todo, pool: ProcessPoolExecutor | None) -> Intake:
    """Parse the chat files into ``stage`` (a local one); nothing is written to the store."""
    rejects: list[Reject] = []
    agents, departments = [], []
    read = 0
    run = state.settings.run
    for part in fill(stage, [s for s, _ in todo], run.chunk_size, run.workers, pool):
        rejects.extend(part.rejects)
        agents.extend(part.agents)
        departments.extend(part.departments)
        read += part.chats
        state.progress("read", read, None)
    return intake_of(state, stage, agents, departments, rejects)


def intake_of(
    state: RunState,
    stage: Stage,
    agents: list[pd.DataFrame],
    departments: list[pd.DataFrame],
    rejects: list[Reject],
) -> Intake:
    """An intake from what the files gave, the reference rows merged over the stored ones."""
    store = state.store
    return Intake(
        stage=stage,
        agents=latest(agents, "agent_id", store.agents_frame()),
        departments=latest(departments, "department_id", store.departments_frame()),
        rejects=rejects,
    )


def record_inputs(
    state: RunState, sink: Sink, intake: Intake, todo: Todo, sell_rejects: list[Reject]
) -> None:
    """Count what was read, and give the sink the rejects, the agents and the departments."""
    rejects = [*sell_rejects, *intake.rejects]
    reject_frame = pd.DataFrame(
        [{"source_file": r.source_file, "position": r.position, "kind": r.kind, "reason": r.reason,
          "raw": r.raw, "chat_id": r.chat_id} for r in rejects],
        columns=list(REJECT_COLUMNS),
    ).drop_duplicates(["source_file", "position"])  # fmt: skip
    erased = Erasures(*state.store.erasures()).mentioned_in(
        reject_frame["raw"],
        state.settings.match.provider_rules,
        state.settings.match.strip_plus_tags,
    )
    reject_frame.loc[erased, "raw"] = None  # an erased person's line: where and why, not what
    chat_rejects = reject_frame[reject_frame["kind"] == "chat"]
    reject_outcomes = pd.DataFrame(
        {
            "chat_id": "rejected:" + chat_rejects["source_file"] + "#" + chat_rejects["position"],
            "outcome": "rejected",
            "reason": chat_rejects["reason"],
            "match_count": 0,
        }
    )
    options = state.options
    inputs = state.counters.inputs
    inputs.chat_files = len(todo)
    inputs.chats_staged = intake.stage.count(options.since, options.until)
    if options.backfill:
        inputs.chats_outside_window = intake.stage.count() - inputs.chats_staged
    inputs.chat_rejects = len(reject_outcomes)
    state.counters.rejects = len(reject_frame)
    sink.record_inputs(RunInputs(intake.agents, intake.departments, reject_frame, reject_outcomes))


def latest(frames: list[pd.DataFrame], key: str, stored: pd.DataFrame) -> pd.DataFrame:
    """Reference rows (agents, departments): stored ones, overridden by this run's exports."""
    parts = [f for f in [stored, *frames] if not f.empty]
    if not parts:
        return frames[0] if frames else stored
    return (
        pd.concat(parts, ignore_index=True).drop_duplicates(key, keep="last").reset_index(drop=True)
    )
