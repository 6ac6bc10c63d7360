"""``chatsell pull sell``: Zendesk Sell users, leads, contacts and deals into files.

Sell's collections have no change feed, so each pull takes a whole snapshot: page 1, 2, ... of
100 until ``meta.links.next_page`` is absent, each page written as ``<resource>_<page>.json.gz``
(replacing the last pull's page of that number only when it changed, so ``sync`` re-reads only
what did). Pages past the new last page are removed. The store keeps, per resource, how many
pages and records the last complete pull got (``pull_cursors`` ``sell.<resource>``).
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
from etl.pull.access import resolve_token, sell_base_url
from etl.pull.client import SELL_API, ApiClient, ApiError, ClientOptions
from etl.pull.output import PageWriter, PullResult

log = logging.getLogger("chatsell.pull")

SELL_RESOURCES = ("users", "leads", "contacts", "deals")
SELL_PAGE_SIZE = 100  # the API's maximum


def pull_sell(
    settings: Settings,
    store: Store,
    out_dir: str | Path,
    *,
    base_url: str | None = None,
    since: datetime | date | None = None,
    resources: tuple[str, ...] = SELL_RESOURCES,
    per_page: int = SELL_PAGE_SIZE,
    options: ClientOptions | None = None,
) -> PullResult:
    """Fetch a snapshot of Sell's users, leads, contacts and deals into ``out_dir``.

    ``since`` is refused (Sell has no change feed; a pull is always a snapshot). Raises
    ConfigError, TokenRefused (HTTP 401) or ApiError (a request kept failing).
    """
    if since is not None:
        raise ConfigError("--since applies to `pull chat` only: `pull sell` takes a full snapshot")
    if not 1 <= per_page <= SELL_PAGE_SIZE:
        raise ConfigError(f"a Sell page holds 1 to {SELL_PAGE_SIZE} records, not {per_page}")
    base = sell_base_url(settings, base_url)
    token, token_source = resolve_token(settings, "sell")
    writer = PageWriter(Path(out_dir))
    store.prepare()
    result = PullResult("sell", writer.out_dir)
    with writer.lock(), ApiClient(SELL_API, base, token, token_source, options) as client:
        try:
            for resource in resources:
                _pull_collection(client, store, writer, resource, per_page, result)
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


def _pull_collection(
    client: ApiClient,
    store: Store,
    writer: PageWriter,
    resource: str,
    per_page: int,
    result: PullResult,
) -> None:
    path = f"/v2/{resource}"
    page_no, records = 0, 0
    result.count(resource, 0)
    while True:
        page_no += 1
        page = client.get(path, {"page": page_no, "per_page": per_page})
        items = _items(page.data, path)
        file, written = writer.write_as(f"{resource}_{page_no}.json.gz", page.content)
        result.pages += 1
        result.count(resource, len(items))
        records += len(items)
        if written:
            result.files_written.append(file)
        else:
            result.files_unchanged += 1
        log.debug(
            "%s page %d: %d records -> %s",
            resource,
            page_no,
            len(items),
            file.name,
            extra={"event": "pull_page"},
        )
        if not items or not _next_page(page.data):
            break
    result.files_removed += writer.remove_pages_after(resource, page_no)
    store.save_pull_cursor(
        f"sell.{resource}",
        json.dumps(
            {
                "pages": page_no,
                "records": records,
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        ),
    )


def _items(data: Any, path: str) -> list[Any]:
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        return data["items"]
    raise ApiError(f"Zendesk Sell: {path} returned no items list")


def _next_page(data: dict[str, Any]) -> Any:
    meta = data.get("meta")
    links = meta.get("links") if isinstance(meta, dict) else None
    return links.get("next_page") if isinstance(links, dict) else None
