"""The planning stage's set-up: the configuration checked against the Sell users, and the
``Planner`` built from the settings, the CRM index and the run's agents and departments."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from etl.errors import ConfigError
from etl.load.store import INDEX_COLUMNS
from etl.procs import release_memory
from etl.run.state import RunState
from etl.transform.assign import Assigner, PoolState, build_assigner, resolve_user
from etl.transform.erasure import Erasures
from etl.transform.match import CrmIndex, build_index
from etl.transform.plan import LeadPolicy, PhonePolicy, PlanContext, Planner, agent_user_map


@dataclass
class Assignment:
    """Who new leads go to: the assigner (rules and pools, with their stored pointers), and the
    integration user (notes are written as that user)."""

    assigner: Assigner
    integration_user_id: int | None


def configure(state: RunState, users: pd.DataFrame) -> Assignment:
    """The assignment configuration against the Sell users; a configuration error ends the run
    here, before any write."""
    states = {
        row["pool"]: PoolState.from_row(row["pointer"], row["state"], row["assigned"])
        for row in state.store.pool_rows()
    }
    assigner = build_assigner(state.settings.assignment, users, states)
    integration_user_id = None
    ref = state.settings.sell.integration_user
    if ref is not None:
        integration_user_id, _active = resolve_user(ref, users)
        if integration_user_id is None:
            raise ConfigError(f"[sell] integration_user: {ref!r} is no Sell user")
    return Assignment(assigner, integration_user_id)


@dataclass
class PlanCrm:
    """What planning keeps of the CRM: the match index, the Sell users, and the lowest lead id
    (the run's new leads are numbered down from below it)."""

    index: CrmIndex
    users: pd.DataFrame
    lowest_lead: int


def plan_crm(state: RunState, crm: dict[str, pd.DataFrame]) -> PlanCrm:
    """The CRM frames (the Sell snapshot's, or the store's) made the match index, once the run
    has its id: the frames' text is dropped from them as it is indexed (the caller lets them
    go), and the run holds the compact index instead."""
    chat_leads = crm["leads"]["id"].dropna()
    lowest = int(chat_leads.min()) if not chat_leads.empty else 0
    index = build_index(
        crm["leads"], crm["contacts"], crm["deals"], crm["users"], crm["lead_conversions"],
        state.settings.match.converted_statuses, run_id=state.run_id, consume=True,
    )  # fmt: skip
    return PlanCrm(index, crm["users"], lowest)


def build_planner(
    state: RunState,
    crm: PlanCrm,
    agents: pd.DataFrame,
    departments: pd.DataFrame,
    assignment: Assignment,
) -> Planner:
    settings, options = state.settings, state.options
    index, users = crm.index, crm.users
    active = users.loc[users["status"].fillna("active").str.lower() != "inactive", "id"]
    defaults = settings.lead_defaults
    enabled = defaults.enabled and options.create_leads
    ctx = PlanContext(
        now=pd.Timestamp(state.now),
        run_id=state.run_id,
        provider_rules=tuple(settings.match.provider_rules),
        strip_plus_tags=settings.match.strip_plus_tags,
        attach_to_deals=settings.match.attach_to_deals,
        transcript_url_template=settings.chat.transcript_url_template,
        subdomain=settings.chat.subdomain,
        agent_users=agent_user_map(agents, users),
        active_users=frozenset(int(i) for i in active.dropna()),
        agent_emails=agents.set_index("agent_id")["email"]
        if not agents.empty
        else pd.Series(dtype=object),
        department_names=departments.set_index("department_id")["name"]
        if not departments.empty
        else pd.Series(dtype=object),
        leads=LeadPolicy(
            enabled=enabled,
            source=defaults.source,
            status=defaults.status,
            tags=tuple(defaults.tags),
            max_chat_age_days=defaults.max_chat_age_days,
            ignore_domains=tuple(
                d.strip().lower().removeprefix("@") for d in defaults.ignore_domains
            ),
            create_from_offline=defaults.create_from_offline,
            disabled_reason="lead creation disabled (--no-create-leads)"
            if not options.create_leads
            else "lead creation disabled ([lead_defaults] enabled = false)",
        ),
        phone=PhonePolicy(
            policy=settings.phone.policy,
            update_contacts=settings.phone.update_contacts,
            require_sell_agent=settings.phone.require_sell_agent,
            default_region=settings.phone.default_region,
        ),
        notify_tags=frozenset(settings.notify.tags) if options.notify else frozenset(),
        integration_user_id=assignment.integration_user_id,
        erasures=Erasures(*state.store.erasures()),
        transcripts_before=_days_before(state.now, settings.retention.transcripts_days),
    )
    if "{subdomain}" in ctx.transcript_url_template and not ctx.subdomain:
        state.warn("transcript links are empty: set [chat] subdomain (or transcript_url_template)")
    return Planner(
        index=index,
        ctx=ctx,
        assigner=assignment.assigner,
        next_lead_id=min(crm.lowest_lead, 0) - 1,
    )


def _days_before(now, days: int | None) -> pd.Timestamp | None:
    return pd.Timestamp(now) - pd.Timedelta(days=days) if days else None


class LazyPlanner:
    """The run's planner, built on first use: a run with no chat to plan never loads the CRM.
    ``crm``: the index built from the Sell snapshot just read, else None (it is built from the
    store's CRM then)."""

    def __init__(
        self, state: RunState, crm: PlanCrm | None, build: Callable[[PlanCrm], Planner]
    ) -> None:
        self._state, self._crm, self._build = state, crm, build
        self._planner: Planner | None = None

    def get(self) -> Planner:
        if self._planner is None:
            crm = self._crm
            if crm is None:
                crm = plan_crm(self._state, self._state.store.crm_frames(only=INDEX_COLUMNS))
                release_memory()  # the frames are gone: their pages go back to the system
            self._crm = None
            self._planner = self._build(crm)
        return self._planner
