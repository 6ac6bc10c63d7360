"""``chatsell pull chat``: Zendesk Chat agents, departments and incremental chats into files.

Chats come from the Incremental Export API, ordered by update time, at most ``limit`` a page.
The next page starts at the last page's (``end_time``, ``end_id``): the id is what moves a walk
past a page whose chats all share one timestamp. ``next_page`` is always present, so the walk
stops at the first page with fewer than ``limit`` chats. The cursor lives in the store
(``pull_cursors``) and is committed after the page's file is on disk, so the next pull asks
only for what changed since; a crash in between at worst fetches that page again (and finds it
already written). Agents (``since_id`` paging) and departments are small and pulled whole.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from etl.config import Settings
from etl.errors import ConfigError
from etl.load.store import Store
from etl.pull.access import chat_base_url, resolve_token
from etl.pull.client import CHAT_API, ApiClient, ApiError, ClientOptions
from etl.pull.output import PageWriter, PullResult

log = logging.getLogger("chatsell.pull")

CHATS_PATH = "/api/v2/chat/incremental/chats"
AGENTS_PATH = "/api/v2/chat/agents"
DEPARTMENTS_PATH = "/api/v2/chat/departments"
CHAT_PAGE_LIMIT = 1000  # the API's maximum
AGENT_PAGE_LIMIT = 100
CHAT_CURSOR = "chat.incremental"


def pull_chat(
    settings: Settings,
    store: Store,
    out_dir: str | Path,
    *,
    base_url: str | None = None,
    since: datetime | date | None = None,
    page_limit: int = CHAT_PAGE_LIMIT,
    options: ClientOptions | None = None,
) -> PullResult:
    """Fetch agents, departments and the chats changed since the last pull into ``out_dir``.

    ``since`` sets where a first pull starts (default: the beginning); once the store holds a
    cursor, the pull continues from it. Raises ConfigError (no token, no host, bad --out),
    TokenRefused (HTTP 401) or ApiError (a request kept failing).
    """
    if not 1 <= page_limit <= CHAT_PAGE_LIMIT:
        raise ConfigError(f"a Chat page holds 1 to {CHAT_PAGE_LIMIT} chats, not {page_limit}")
    base = chat_base_url(settings, base_url)
    token, token_source = resolve_token(settings, "chat")
    writer = PageWriter(Path(out_dir))
    store.prepare()
    result = PullResult("chat", writer.out_dir)
    with writer.lock(), ApiClient(CHAT_API, base, token, token_source, options) as client:
        try:
            _pull_agents(client, writer, result)
            _pull_departments(client, writer, result)
            _pull_chats(client, store, writer, since, page_limit, result)
        finally:
            result.requests, result.retries = client.requests, client.retries
            result.waited_seconds = client.waited + client.limiter.waited
    log.info(
        "%s",
        result.summary(),
        extra={
            "event": "pull_done",
            "pages": result.pages,
            "requests": result.requests,
            "retries": result.retries,
        },
    )
    return result


def _pull_chats(
    client: ApiClient,
    store: Store,
    writer: PageWriter,
    since: datetime | date | None,
    page_limit: int,
    result: PullResult,
) -> None:
    stored = store.pull_cursor(CHAT_CURSOR)
    if stored is not None:
        cursor = json.loads(stored)
        start_time, start_id = int(cursor["start_time"]), str(cursor["start_id"])
        if since is not None:
            log.warning(
                "--since ignored: continuing from the stored cursor (end_time %s)",
                start_time,
                extra={"event": "pull_since_ignored"},
            )
    else:
        start_time, start_id = (_epoch(since) if since is not None else 0), ""
    result.cursor = {"start_time": start_time, "start_id": start_id}
    result.count("chats", 0)
    while True:
        params = {
            "fields": "chats(*)",
            "start_time": start_time,
            "start_id": start_id,
            "limit": page_limit,
        }
        page = client.get(CHATS_PATH, params)
        chats = _list_in(page.data, "chats", CHATS_PATH)
        if chats:
            end_time, end_id = _page_end(page.data)
            if (end_time, end_id) == (start_time, start_id):
                raise ApiError(
                    f"Zendesk Chat: {CHATS_PATH} returned a page that does not move past "
                    f"end_time {end_time}; stopping instead of asking for it again"
                )
            path, written = writer.write_next(f"chats_{end_time}", page.content)
            _account(result, path, written, "chats", len(chats))
            store.save_pull_cursor(
                CHAT_CURSOR, json.dumps({"start_time": end_time, "start_id": end_id})
            )
            start_time, start_id = end_time, end_id
            result.cursor = {"start_time": start_time, "start_id": start_id}
            log.debug(
                "chats page: %d chats up to end_time %s -> %s",
                len(chats),
                end_time,
                path.name,
                extra={"event": "pull_page"},
            )
        if len(chats) < page_limit:
            return


def _pull_agents(client: ApiClient, writer: PageWriter, result: PullResult) -> None:
    """Every agent, ``since_id`` page by page; agents a page repeats are not counted twice."""
    seen: set[int] = set()
    since_id: int | None = None
    page_no = 0
    result.count("agents", 0)
    while True:
        params: dict[str, str | int] = {"limit": AGENT_PAGE_LIMIT}
        if since_id is not None:
            params["since_id"] = since_id
        page = client.get(AGENTS_PATH, params)
        agents = _list_in(page.data, "agents", AGENTS_PATH)
        ids = {int(a["id"]) for a in agents if isinstance(a, dict) and _is_int(a.get("id"))}
        new = ids - seen
        if not agents or not new:
            break
        page_no += 1
        path, written = writer.write_as(f"agents_{page_no}.json.gz", page.content)
        _account(result, path, written, "agents", len(new))
        seen |= new
        since_id = max(ids)
        if len(agents) < AGENT_PAGE_LIMIT:
            break
    result.files_removed += writer.remove_pages_after("agents", page_no)


def _pull_departments(client: ApiClient, writer: PageWriter, result: PullResult) -> None:
    page = client.get(DEPARTMENTS_PATH, {})
    departments = _list_in(page.data, "departments", DEPARTMENTS_PATH)
    path, written = writer.write_as("departments.json.gz", page.content)
    _account(result, path, written, "departments", len(departments))


def _account(result: PullResult, path: Path, written: bool, resource: str, records: int) -> None:
    result.pages += 1
    result.count(resource, records)
    if written:
        result.files_written.append(path)
    else:
        result.files_unchanged += 1


def _list_in(data: Any, key: str, path: str) -> list[Any]:
    """The records of a page: the page itself (a JSON array) or its ``key`` list."""
    if isinstance(data, dict) and isinstance(data.get(key), list):
        return data[key]
    if isinstance(data, list):
        return data
    raise ApiError(f"Zendesk Chat: {path} returned no {key} list")


def _page_end(data: dict[str, Any]) -> tuple[int, str]:
    try:
        return int(data["end_time"]), str(data["end_id"])
    except (KeyError, TypeError, ValueError):
        raise ApiError(
            f"Zendesk Chat: a page of {CHATS_PATH} has chats but no end_time/end_id"
        ) from None


def _epoch(moment: datetime | date) -> int:
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0, int(moment.timestamp()))


def _is_int(value: Any) -> bool:
    try:
        int(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool)
