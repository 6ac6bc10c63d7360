"""The pull's HTTP client on httpx's mock transport: retries, Retry-After, backoff, the rate
limiter (on an injected clock, so nothing really waits), tokens, base URLs and page files."""

from __future__ import annotations

import gzip
import logging
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr

from etl.config import load_settings
from etl.errors import ConfigError, RunFailed
from etl.pull.access import chat_base_url, resolve_token, sell_base_url
from etl.pull.client import (
    CHAT_API,
    SELL_API,
    ApiClient,
    ApiError,
    ClientOptions,
    RateLimiter,
    RetryPolicy,
    TokenRefused,
    retry_after_seconds,
)
from etl.pull.output import PageWriter, PullResult

TOKEN = "tok-5ecret-Zq81"


class FakeTime:
    """A monotonic clock that moves only when something sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_client(handler, time: FakeTime, api=SELL_API, **retry) -> ApiClient:
    options = ClientOptions(
        retry=RetryPolicy(jitter=False, **retry),
        clock=time.clock,
        sleep=time.sleep,
        transport=httpx.MockTransport(handler),
    )
    return ApiClient(
        api, "https://api.example.test", SecretStr(TOKEN), "CHATSELL_SELL_TOKEN", options
    )


def scripted(*answers):
    """A handler answering with each of ``answers`` in turn (a Response, or an exception to raise)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    handler.seen = seen
    return handler


OK = httpx.Response(200, json={"items": [], "meta": {"links": {}}})


def test_sends_the_bearer_token_and_the_query(tmp_path):
    time = FakeTime()
    handler = scripted(OK)
    with make_client(handler, time) as client:
        page = client.get("/v2/leads", {"page": 1, "per_page": 100})
    request = handler.seen[0]
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.url.path == "/v2/leads" and request.url.params["per_page"] == "100"
    assert page.data == {"items": [], "meta": {"links": {}}} and page.content == OK.content
    assert client.requests == 1 and client.retries == 0 and time.sleeps == []


@pytest.mark.parametrize("retry_after", ["0", "1", "3"])
def test_429_waits_exactly_what_retry_after_says(retry_after):
    time = FakeTime()
    limited = httpx.Response(429, headers={"Retry-After": retry_after})
    with make_client(scripted(limited, OK), time) as client:
        client.get("/v2/leads", {})
    assert time.sleeps == [float(retry_after)]
    assert client.requests == 2 and client.retries == 1


def test_retry_after_as_an_http_date():
    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("Wed, 25 Nov 2026 12:00:07 GMT", now) == 7.0
    assert retry_after_seconds("Wed, 25 Nov 2026 11:59:00 GMT", now) == 0.0  # already past
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None
    assert retry_after_seconds(" 2.5 ", now) == 2.5


def test_5xx_and_transport_errors_back_off_exponentially_then_succeed():
    time = FakeTime()
    handler = scripted(
        httpx.Response(500),
        httpx.ConnectError("connection refused"),
        httpx.Response(503),
        httpx.ReadTimeout("timed out"),
        httpx.Response(200, content=b"<html>proxy error</html>"),  # a 200 that is no JSON
        OK,
    )
    with make_client(handler, time) as client:
        page = client.get("/v2/leads", {})
    assert page.data["items"] == []
    assert time.sleeps == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert client.retries == 5 and client.waited == 31.0


def test_backoff_is_capped_and_jittered():
    import random

    policy = RetryPolicy(backoff_base=1.0, backoff_cap=10.0)
    rng = random.Random(7)
    delays = [policy.backoff(attempt, rng) for attempt in range(1, 9)]
    ceilings = [1, 2, 4, 8, 10, 10, 10, 10]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))


def test_503_with_retry_after_is_honoured_too():
    time = FakeTime()
    with make_client(scripted(httpx.Response(503, headers={"Retry-After": "5"}), OK), time) as c:
        c.get("/v2/users", {})
    assert time.sleeps == [5.0]


def test_gives_up_after_the_last_attempt_with_one_line():
    time = FakeTime()
    with (
        make_client(scripted(httpx.Response(502)), time, max_attempts=4) as client,
        pytest.raises(ApiError) as caught,
    ):
        client.get("/v2/deals", {"page": 3})
    message = str(caught.value)
    assert "\n" not in message and "4 times" in message and "HTTP 502" in message
    assert caught.value.exit_code == 1 and isinstance(caught.value, RunFailed)
    assert client.requests == 4 and len(time.sleeps) == 3


def test_a_retry_after_longer_than_we_wait_fails_at_once():
    time = FakeTime()
    limited = httpx.Response(429, headers={"Retry-After": "7200"})
    with (
        make_client(scripted(limited, OK), time) as client,
        pytest.raises(ApiError, match="asked to wait 7200s"),
    ):
        client.get("/v2/leads", {})
    assert time.sleeps == []


def test_401_names_the_token_source_never_the_token(caplog):
    caplog.set_level(logging.DEBUG)
    time = FakeTime()
    with (
        make_client(scripted(httpx.Response(401, json={"error": "invalid_token"})), time) as c,
        pytest.raises(TokenRefused) as caught,
    ):
        c.get("/v2/leads", {})
    message = str(caught.value)
    assert message == (
        "Zendesk Sell refused the token from CHATSELL_SELL_TOKEN (HTTP 401 on GET /v2/leads)"
    )
    assert caught.value.exit_code == 1 and c.requests == 1  # never retried
    assert TOKEN not in caplog.text and TOKEN not in repr(caught.value)


@pytest.mark.parametrize(
    ("status", "words"), [(403, "HTTP 403"), (404, "--base-url"), (400, "HTTP 400")]
)
def test_other_client_errors_are_not_retried(status, words):
    time = FakeTime()
    with (
        make_client(scripted(httpx.Response(status)), time) as client,
        pytest.raises(ApiError, match=words),
    ):
        client.get("/v2/leads", {})
    assert client.requests == 1 and time.sleeps == []


def test_no_log_line_or_error_carries_the_token(caplog):
    caplog.set_level(logging.DEBUG)
    time = FakeTime()
    # a transport error whose text happens to quote the token is scrubbed before it is logged
    handler = scripted(httpx.ConnectError(f"refused for Bearer {TOKEN}"), httpx.Response(500))
    with make_client(handler, time, max_attempts=3) as client, pytest.raises(ApiError) as caught:
        client.get("/v2/leads", {})
    assert "retrying" in caplog.text
    assert TOKEN not in caplog.text and TOKEN not in str(caught.value)
    assert TOKEN not in repr(client._http.headers)


# -- the rate limiter ------------------------------------------------------------------------


def _max_in_window(times: list[float], window: float) -> int:
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


@pytest.mark.parametrize(("limit", "per", "sends"), [(10, 1.0, 35), (200, 60.0, 450)])
def test_limiter_never_exceeds_the_limit_in_any_window(limit, per, sends):
    time = FakeTime()
    limiter = RateLimiter(limit, per, clock=time.clock, sleep=time.sleep)
    sent = []
    for _ in range(sends):
        limiter.acquire()
        sent.append(time.now)
    assert _max_in_window(sent, per) == limit
    # and it waits no longer than it must: one full window per `limit` sends
    assert sent[-1] == pytest.approx(((sends - 1) // limit) * per)


def test_limiter_lets_spaced_requests_through_without_waiting():
    time = FakeTime()
    limiter = RateLimiter(8, 1.0, clock=time.clock, sleep=time.sleep)
    for _ in range(50):
        assert limiter.acquire() == 0.0
        time.now += 0.125  # 8 a second, exactly the limit
    assert time.sleeps == []


@pytest.mark.parametrize("api", [SELL_API, CHAT_API])
def test_the_client_stays_under_the_published_limit_retries_included(api):
    time = FakeTime()
    sent: list[float] = []
    count = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        sent.append(time.now)
        return httpx.Response(429, headers={"Retry-After": "0"}) if count % 5 == 0 else OK

    with make_client(handler, time, api=api) as client:
        for _ in range(api.max_requests * 3):
            client.get("/v2/leads", {})
    assert _max_in_window(sent, api.per_seconds) <= api.max_requests
    assert client.requests == len(sent) > api.max_requests * 3  # the 429s were retried
    assert client.limiter.waited > 0


# -- tokens and hosts ------------------------------------------------------------------------


def test_token_sources_in_order(monkeypatch, tmp_path):
    settings = load_settings(None)
    with pytest.raises(ConfigError, match="set CHATSELL_CHAT_TOKEN"):
        resolve_token(settings, "chat")
    monkeypatch.setenv("CHATSELL_SELL__TOKEN", "from-settings")
    assert resolve_token(load_settings(None), "sell") == (
        SecretStr("from-settings"),
        "[sell] token",
    )
    secret = tmp_path / "sell_token"
    secret.write_text("from-file\n")
    monkeypatch.setenv("CHATSELL_SELL_TOKEN_FILE", str(secret))
    token, where = resolve_token(load_settings(None), "sell")
    assert (token.get_secret_value(), where) == ("from-file", "CHATSELL_SELL_TOKEN_FILE")
    monkeypatch.setenv("CHATSELL_SELL_TOKEN", " from-env ")
    token, where = resolve_token(load_settings(None), "sell")
    assert (token.get_secret_value(), where) == ("from-env", "CHATSELL_SELL_TOKEN")


def test_a_token_no_header_can_carry_is_refused_without_echoing_it(monkeypatch):
    monkeypatch.setenv("CHATSELL_CHAT_TOKEN", "abc def-s3cret")
    with pytest.raises(ConfigError) as caught:
        resolve_token(load_settings(None), "chat")
    assert "s3cret" not in str(caught.value) and "CHATSELL_CHAT_TOKEN" in str(caught.value)


def test_unreadable_token_file(monkeypatch, tmp_path):
    monkeypatch.setenv("CHATSELL_CHAT_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="CHATSELL_CHAT_TOKEN_FILE"):
        resolve_token(load_settings(None), "chat")


def test_base_urls():
    settings = load_settings(None)
    with pytest.raises(ConfigError, match=r"\[chat\] subdomain"):
        chat_base_url(settings)
    acme = settings.model_copy(
        update={"chat": settings.chat.model_copy(update={"subdomain": "acme"})}
    )
    assert chat_base_url(acme) == "https://acme.zendesk.com"
    assert chat_base_url(acme, "http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert sell_base_url(settings) == "https://api.getbase.com"
    with pytest.raises(ConfigError, match="--base-url"):
        sell_base_url(settings, "ftp://files.example")


# -- page files ------------------------------------------------------------------------------


def test_pages_are_gzipped_numbered_and_never_written_twice(tmp_path):
    writer = PageWriter(tmp_path / "out")
    first, written = writer.write_next("chats_1762074000", b'{"chats": [1]}')
    assert (first.name, written) == ("chats_1762074000_1.json.gz", True)
    assert gzip.decompress(first.read_bytes()) == b'{"chats": [1]}'
    second, written = writer.write_next("chats_1762074000", b'{"chats": [2]}')
    assert (second.name, written) == ("chats_1762074000_2.json.gz", True)
    again, written = writer.write_next("chats_1762074000", b'{"chats": [2]}')
    assert (again, written) == (second, False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "chats_1762074000_1.json.gz",
        "chats_1762074000_2.json.gz",
    ]


def test_fixed_names_are_replaced_only_when_changed_and_stale_pages_go(tmp_path):
    writer = PageWriter(tmp_path)
    for n in (1, 2, 3):
        writer.write_as(f"leads_{n}.json.gz", b"[%d]" % n)
    mtime = (tmp_path / "leads_1.json.gz").stat().st_mtime_ns
    assert writer.write_as("leads_1.json.gz", b"[1]")[1] is False
    assert (tmp_path / "leads_1.json.gz").stat().st_mtime_ns == mtime
    assert writer.write_as("leads_2.json.gz", b"[22]")[1] is True
    removed = writer.remove_pages_after("leads", 2)
    assert [p.name for p in removed] == ["leads_3.json.gz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leads_1.json.gz", "leads_2.json.gz"]


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path, monkeypatch):
    writer = PageWriter(tmp_path)

    def no_space(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("etl.pull.output.os.replace", no_space)
    with pytest.raises(RunFailed, match="No space left on device"):
        writer.write_as("users_1.json.gz", b"[]")
    assert list(tmp_path.iterdir()) == []


def test_out_must_be_a_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        PageWriter(tmp_path / "file")


def test_result_summary_and_dict(tmp_path):
    result = PullResult("sell", tmp_path, pages=3, requests=4, retries=1)
    result.count("leads", 250)
    result.files_written.append(tmp_path / "leads_1.json.gz")
    assert result.summary().startswith(
        "pull sell: 3 pages (250 leads); 1 files written, 0 unchanged"
    )
    assert result.as_dict()["records"] == {"leads": 250}
