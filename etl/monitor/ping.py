"""The dead man's switch (``[healthcheck] url``), in the healthchecks.io convention:
``<url>/start`` when a run starts, ``<url>`` when it succeeds, ``<url>/fail`` when it fails. A ping
that fails is logged (without the URL's secret part) and never fails the run."""

from __future__ import annotations

import logging

from etl.monitor.secrets import masked_url

log = logging.getLogger("chatsell.healthcheck")

TIMEOUT_S = 10.0
SUFFIX = {"start": "/start", "success": "", "fail": "/fail"}


def ping(url: str | None, what: str, body: str = "") -> bool:
    if not url:
        return False
    import httpx  # noqa: PLC0415

    target = url.rstrip("/") + SUFFIX[what]
    try:
        response = httpx.post(target, content=body.encode()[:10_000], timeout=TIMEOUT_S)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("healthcheck ping %s to %s failed: %s", what, masked_url(url),
                    type(exc).__name__, extra={"event": "ping_failed"})  # fmt: skip
        return False
    return True
