"""The paced HTTP of a destination: one httpx client, at most ``rate_per_second`` requests in any
second, and what to do with each answer, the same for every destination:

- 2xx: the answer (its JSON, or None);
- 429: wait as ``Retry-After`` says, or back off when it is absent (the body may be empty or not
  JSON), then send again;
- 5xx, 408, a refused or dropped connection before anything was sent: back off with jitter and
  send again, up to ``max_attempts`` sends, then ``GaveUp``;
- a request that may have reached the destination without its answer reaching us (a time-out
  after sending, a connection dropped mid-answer): ``Unknown`` when the request is not safe to
  repeat (a POST that creates), so the caller can look before sending it again; retried like a
  5xx when it is (a GET, a PUT, an upsert);
- any other 4xx: ``Refused`` at once, with the destination's own message.

The token goes out in the ``Authorization`` header only; no message, log line or error has it.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from etl import __version__
from etl.pacing import Clock, RateLimiter, RetryPolicy, Sleep, retry_after_seconds

log = logging.getLogger("chatsell.push")

MAX_RATE_LIMITED = 50  # 429s in a row for one request before it is given up
WINDOW_MARGIN = 1.05


class Refused(Exception):
    """The destination refused the request (4xx): it will refuse it again."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class GaveUp(Exception):
    """Every attempt failed (5xx, time-outs, dropped connections)."""


class Unknown(Exception):
    """The request may have reached the destination; its answer did not reach us."""


@dataclass
class Tally:
    """What a push's requests came to (its report's ``requests``, ``retries``, ``rate_limited``)."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0


@dataclass(frozen=True)
class HttpOptions:
    rate_per_second: float = 10.0
    max_attempts: int = 5
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(backoff_cap=30.0))
    clock: Clock = time.monotonic
    sleep: Sleep = time.sleep
    transport: httpx.BaseTransport | None = None
    seed: int | None = None


class PacedHttp:
    def __init__(self, base_url: str, token: str, options: HttpOptions) -> None:
        self.options = options
        self.tally = Tally()
        # at most rate_per_second in any second: a sliding window, which no burst can exceed,
        # 5% longer than a second (requests reach the server a little unevenly: without it Sell
        # counts an 11th now and then, and answers 429)
        per_second = max(1, int(options.rate_per_second))
        window = per_second / options.rate_per_second * WINDOW_MARGIN
        self._limiter = RateLimiter(per_second, window, clock=options.clock, sleep=options.sleep)
        self._rng = random.Random(options.seed)
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": f"chatsell/{__version__}",
            },
            timeout=httpx.Timeout(options.timeout, connect=min(10.0, options.timeout)),
            transport=options.transport,
        )

    def close(self) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        safe_to_repeat: bool = False,
    ) -> Any:
        """Send until answered (see the module's docstring); the answer's JSON, or None."""
        attempts = limited = 0
        while True:
            self._limiter.acquire()
            self.tally.requests += 1
            attempts += 1
            retry_after: float | None = None
            try:
                response = self._http.request(method, path, params=params, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                reason = f"{type(exc).__name__}"  # nothing was sent: safe to send again
            except httpx.TransportError as exc:  # sent, perhaps received: the answer is lost
                reason = f"{type(exc).__name__}"
                if not safe_to_repeat:
                    raise Unknown(f"{method} {path}: {reason}") from None
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return _json(response)
                if status == 429:
                    limited += 1
                    self.tally.rate_limited += 1
                    retry_after = retry_after_seconds(
                        response.headers.get("Retry-After"), datetime.now(UTC)
                    )
                    wait = retry_after if retry_after is not None else self._backoff(limited)
                    if limited >= MAX_RATE_LIMITED:
                        raise GaveUp(f"{method} {path}: still rate limited after {limited} tries")
                    attempts -= 1  # a 429 is no failed attempt: Sell asks for patience
                    self.tally.retries += 1
                    self.options.sleep(wait)
                    continue
                if status in (408,) or status >= 500:
                    reason = f"HTTP {status}"
                else:
                    raise Refused(status, _message(response))
            if attempts >= self.options.max_attempts:
                raise GaveUp(f"{method} {path}: {reason} after {attempts} attempts")
            self.tally.retries += 1
            self.options.sleep(self._backoff(attempts))

    def _backoff(self, attempt: int) -> float:
        return self.options.retry.backoff(attempt, self._rng)


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _message(response: httpx.Response) -> str:
    """The destination's own words: Sell's ``errors`` array (its messages and details)."""
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:300] if text else response.reason_phrase
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors:
        said = []
        for item in errors:
            error = item.get("error", item) if isinstance(item, dict) else {}
            words = " ".join(
                str(error.get(k)) for k in ("message", "details") if error.get(k)
            ) or str(error.get("code", ""))
            said.append(words)
        return "; ".join(s for s in said if s)[:500] or response.reason_phrase
    return response.reason_phrase
