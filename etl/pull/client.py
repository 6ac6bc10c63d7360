"""HTTP for ``chatsell pull``: one httpx client per pull, a client-side rate limiter, retries.

A request is sent when the rate limiter allows it (never more than the API's published limit in
any window), and retried with backoff on HTTP 429 (waiting as ``Retry-After`` says), on 5xx and
408, on transport errors (refused connections, timeouts, cut-off bodies) and on a 200 whose body
is not JSON. A page is handed to the caller only once it arrived whole, so a retry never loses or
repeats one. The token goes out in the ``Authorization`` header only; no message, log line or
error carries it.

Errors (exit 1):

RunFailed
 └── ApiError            the API refused a request, or kept failing after every retry
      └── TokenRefused   HTTP 401: names where the token came from, never its value
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from etl import __version__
from etl.errors import ApiError, TokenRefused
from etl.pacing import Clock, RateLimiter, RetryPolicy, Sleep, retry_after_seconds

log = logging.getLogger("chatsell.pull")


@dataclass(frozen=True)
class Api:
    """One remote API: its name in messages and its published request limit."""

    name: str
    max_requests: int
    per_seconds: float


CHAT_API = Api("Zendesk Chat", max_requests=200, per_seconds=60.0)  # 200 requests/min
SELL_API = Api("Zendesk Sell", max_requests=10, per_seconds=1.0)  # 10 requests/s per token


@dataclass(frozen=True)
class ClientOptions:
    """Knobs of the HTTP client; tests inject the clock, the sleeper and the transport."""

    timeout: float = 60.0  # seconds to wait for each read, write or pooled connection
    connect_timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Clock = time.monotonic
    sleep: Sleep = time.sleep
    transport: httpx.BaseTransport | None = None
    seed: int | None = None  # of the backoff jitter


@dataclass(frozen=True)
class Fetched:
    """One response body as it came (to write as is) and its parsed JSON."""

    content: bytes
    data: Any


def _retryable_status(status: int) -> bool:
    return status in (408, 429) or (status >= 500 and status != 501)


class ApiClient:
    """GET JSON pages from one API with a bearer token, under its rate limit, with retries."""

    def __init__(
        self,
        api: Api,
        base_url: str,
        token: SecretStr,
        token_source: str,
        options: ClientOptions | None = None,
    ) -> None:
        options = options or ClientOptions()
        self.api = api
        self.token_source = token_source  # where the token came from, e.g. CHATSELL_CHAT_TOKEN
        self._token = token
        self._retry = options.retry
        self._sleep = options.sleep
        self._rng = random.Random(options.seed)
        self.limiter = RateLimiter(
            api.max_requests, api.per_seconds, clock=options.clock, sleep=options.sleep
        )
        self.requests = 0
        self.retries = 0
        self.waited = 0.0  # seconds spent in backoff and Retry-After (the limiter counts its own)
        self._http = httpx.Client(
            base_url=base_url,
            headers={
                "Authorization": f"Bearer {token.get_secret_value()}",
                "Accept": "application/json",
                "User-Agent": f"chatsell/{__version__}",
            },
            timeout=httpx.Timeout(options.timeout, connect=options.connect_timeout),
            transport=options.transport,
            follow_redirects=True,  # httpx drops Authorization on a redirect to another host
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, params: Mapping[str, str | int]) -> Fetched:
        """The JSON page at ``path``; retries transient failures, raises ApiError otherwise."""
        where = f"GET {path}"
        policy = self._retry
        for attempt in range(1, policy.max_attempts + 1):
            self.limiter.acquire()
            self.requests += 1
            retry_after: float | None = None
            try:
                response = self._http.get(path, params=dict(params))
            except httpx.LocalProtocolError:
                # the request itself is malformed; its message may quote a header, so not shown
                raise ApiError(
                    f"{self.api.name}: cannot send {where} (malformed request)"
                ) from None
            except httpx.TransportError as exc:
                detail = self._scrub(str(exc)).strip().splitlines()
                reason = f"{type(exc).__name__}: {detail[0] if detail else 'no detail'}"
            else:
                status = response.status_code
                if status == 200:
                    try:
                        return Fetched(response.content, orjson.loads(response.content))
                    except orjson.JSONDecodeError:
                        reason = "HTTP 200 with a body that is not JSON"
                elif _retryable_status(status):
                    reason = f"HTTP {status}"
                    retry_after = retry_after_seconds(
                        response.headers.get("Retry-After"), datetime.now(UTC)
                    )
                else:
                    raise self._refused(status, where) from None
            if attempt == policy.max_attempts:
                raise ApiError(
                    f"{self.api.name}: {where} failed {attempt} times (last: {reason}); giving up"
                )
            if retry_after is not None and retry_after > policy.max_retry_after:
                raise ApiError(
                    f"{self.api.name} asked to wait {retry_after:.0f}s before retrying {where}, "
                    f"longer than chatsell waits ({policy.max_retry_after:.0f}s); pull again later"
                )
            delay = retry_after if retry_after is not None else policy.backoff(attempt, self._rng)
            log.warning(
                "%s: %s got %s; retrying in %.1fs (attempt %d of %d)",
                self.api.name,
                where,
                reason,
                delay,
                attempt + 1,
                policy.max_attempts,
                extra={"event": "pull_retry", "status": reason},
            )
            self.retries += 1
            self.waited += delay
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _refused(self, status: int, where: str) -> ApiError:
        name = self.api.name
        if status == 401:
            return TokenRefused(
                f"{name} refused the token from {self.token_source} (HTTP 401 on {where})"
            )
        if status == 403:
            return ApiError(
                f"{name} denied {where} (HTTP 403): the token from {self.token_source} "
                "lacks the permission"
            )
        if status == 404:
            return ApiError(f"{name} has no {where} (HTTP 404): check --base-url")
        return ApiError(f"{name} answered HTTP {status} to {where}")

    def _scrub(self, text: str) -> str:
        """Belt and braces: no exception text ever carries the token."""
        secret = self._token.get_secret_value()
        return text.replace(secret, "**********") if secret else text
