"""Pacing for the APIs chatsell calls (``pull`` reads them, ``push`` writes to Sell): a
client-side rate limit, how to back off, and what ``Retry-After`` asks. No I/O of its own: the
clock and the sleep are handed in, so tests run it without waiting."""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class RateLimiter:
    """At most ``max_requests`` sends in any window of ``per_seconds`` (a sliding log of send
    times). Unlike a token bucket, no burst can exceed the limit across a window boundary."""

    def __init__(
        self,
        max_requests: int,
        per_seconds: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if max_requests < 1 or per_seconds <= 0:
            raise ValueError("a rate limit needs max_requests >= 1 and per_seconds > 0")
        self.max_requests = max_requests
        self.per_seconds = per_seconds
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self.waited = 0.0

    def acquire(self) -> float:
        """Wait until one more request fits under the limit, record it, return the seconds waited."""
        waited = 0.0
        while True:
            now = self._clock()
            while self._sent and now - self._sent[0] >= self.per_seconds:
                self._sent.popleft()
            if len(self._sent) < self.max_requests:
                self._sent.append(now)
                self.waited += waited
                return waited
            delay = self.per_seconds - (now - self._sent[0])
            self._sleep(delay)
            waited += delay


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. Backoff doubles from ``backoff_base`` up to
    ``backoff_cap`` seconds, with jitter; a ``Retry-After`` answer is waited exactly."""

    max_attempts: int = 8
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    max_retry_after: float = 900.0  # a longer wait asked by the server fails the pull instead
    jitter: bool = True

    def backoff(self, attempt: int, rng: random.Random) -> float:
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return delay * (0.5 + rng.random() / 2) if self.jitter else delay


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delay-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)
