"""A local fake of the Zendesk Sell Core API v2 for tests of ``chatsell push`` (SPEC 9).

One ``ThreadingHTTPServer`` on 127.0.0.1 (port 0) in a daemon thread, HTTP/1.1 keep-alive,
state in memory behind a lock. It behaves, and misbehaves, as Sell does:

- bodies wrapped as ``{"data": {...}}`` (a ``"meta"`` beside it is allowed); one item answered as
  ``{"data": {...}, "meta": {"type": "lead"}}``, lists as ``{"items": [{"data", "meta"}...],
  "meta": {"type": "collection", "count": n, "links": {...}}}``, errors as
  ``{"errors": [{"error": {"code", "message", "details"}, "meta": {"type": "error"}}],
  "meta": {"http_status": "422 Unprocessable Entity", "logref": ...}}``;
- ``Authorization: Bearer <token>`` or 401;
- at most ``rate_per_second`` requests in any sliding second per token, or 429 (``Retry-After``
  and the body as configured);
- scripted faults (:meth:`FakeSell.fail_next`): 429s, 5xx, 4xx, a connection dropped before or
  after the write was done, a slow answer.

Endpoints: ``POST /v2/leads/upsert?email=``, ``GET|POST /v2/leads``, ``GET|PUT /v2/leads/:id``,
the same for ``contacts`` and ``deals``, ``GET|POST /v2/notes``, ``GET|PUT /v2/notes/:id``, the
same for ``tasks``, ``GET /v2/users/self``. Ids come from one counter (``first_id``, 90001) shared
by every kind of record, so an id of the wrong kind is a 404.

Usage::

    with FakeSell() as sell:
        contact = sell.add_contact(name="Ann Lee", email="ann@example.com", phone="+1 555")
        sell.fail_next("drop-after-write", path_prefix="/v2/notes")
        ... push against sell.base_url with sell.token ...
        assert [n["content"] for n in sell.notes] == [...]
        assert sell.max_requests_in_any_second() <= 10
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import socket
import sys
import threading
import time
import uuid
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

DEFAULT_TOKEN = "sell-fake-token-7Kq2"

#: The kinds :meth:`FakeSell.fail_next` knows, besides any three-digit status ("404", "409"...).
FAULT_KINDS = (
    "429",  # 429 with Retry-After (1 s unless told) and a JSON errors body
    "429-empty",  # 429 without Retry-After, empty body
    "429-text",  # 429 without Retry-After, a body that is not JSON
    "500",
    "503",
    "422",  # an errors array, nothing written
    "drop-before-write",  # the socket is closed, nothing done
    "drop-after-write",  # the write is done, then the socket is closed without an answer
    "slow",  # the write is done, the answer comes ``seconds`` later (a client time-out)
    "slow-before-write",  # ``seconds`` later the write is done and answered
)
RATE_LIMIT_BODIES = ("json", "empty", "text")

RESOURCE_TYPES = {"lead": "leads", "contact": "contacts", "deal": "deals"}
READ_ONLY = frozenset({"id", "creator_id", "created_at", "updated_at"})
DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100


def max_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """The most of ``times`` that fall in any half-open interval ``[t, t + window)``."""
    ordered = sorted(times)
    best = 0
    for i, start in enumerate(ordered):
        best = max(best, bisect_left(ordered, start + window, lo=i) - i)
    return best


@dataclass
class SellRequest:
    """One request as the fake saw it (``time`` is ``time.monotonic()`` at its arrival)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any  # the parsed JSON, the text when it is not JSON, None when empty
    time: float
    headers: dict[str, str]
    client: tuple[str, int]  # the client's address and port: one port per connection
    authorized: bool = True
    rate_limited: bool = False  # answered 429 by the rate limit or by a scripted 429 fault
    fault: str | None = None  # the scripted fault it met
    status: int | None = None  # None: not answered (dropped, or still being handled)
    dropped: bool = False

    @property
    def accepted(self) -> bool:
        """Not answered 429 (what the rate limit counts)."""
        return not self.rate_limited


@dataclass
class Fault:
    kind: str
    times: int
    path_prefix: str | None
    method: str | None
    seconds: float | None
    retry_after: str | None
    message: str | None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)


class ApiProblem(Exception):
    """An error answer: status, code, message, details."""

    def __init__(self, status: int, code: str, message: str, details: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_answer(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Answer:
    body = json.dumps(payload, default=str).encode()
    return _Answer(status, body, headers=dict(headers or {}))


def error_body(status: int, code: str, message: str, details: str = "") -> dict[str, Any]:
    """Sell's errors envelope."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return {
        "errors": [
            {
                "error": {"code": code, "message": message, "details": details or message},
                "meta": {"type": "error"},
            }
        ],
        "meta": {"http_status": f"{status} {phrase}", "logref": uuid.uuid4().hex[:16]},
    }


def _error_answer(problem: ApiProblem, headers: dict[str, str] | None = None) -> _Answer:
    payload = error_body(problem.status, problem.code, problem.message, problem.details)
    return _json_answer(problem.status, payload, headers)


def _invalid(message: str, details: str = "") -> ApiProblem:
    return ApiProblem(422, "invalid", message, details)


def _not_found(kind: str, ident: Any) -> ApiProblem:
    return ApiProblem(
        404, "not_found", "The requested resource was not found.", f"{kind} {ident} does not exist"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fields(data: dict[str, Any]) -> None:
    """The type checks Sell makes on the fields the push sends."""
    for key in ("owner_id",):
        if key in data and data[key] is not None and not _is_int(data[key]):
            raise _invalid(f"{key}: must be an integer", f"{key}={data[key]!r}")
    for key in ("email", "phone", "mobile", "first_name", "last_name", "status", "content"):
        if key in data and data[key] is not None and not isinstance(data[key], str):
            raise _invalid(f"{key}: must be a string", f"{key}={data[key]!r}")
    if "tags" in data and not (
        isinstance(data["tags"], list) and all(isinstance(t, str) for t in data["tags"])
    ):
        raise _invalid("tags: must be an array of strings", f"tags={data['tags']!r}")


def _check_datetime(data: dict[str, Any], key: str) -> None:
    value = data.get(key)
    if value is None:
        return
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        datetime.fromisoformat(value)
    except ValueError:
        raise _invalid(f"{key}: must be an ISO 8601 date-time", f"{key}={value!r}") from None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client that went away
        super().handle_error(request, client_address)


class FakeSell:
    """A fake Zendesk Sell Core API v2 on 127.0.0.1; see the module's docstring.

    ``leads``, ``contacts``, ``deals`` (dicts by id), ``notes``, ``tasks`` (lists in creation order)
    and ``requests`` are copies taken under the lock: change Sell's side with :meth:`add_lead`,
    :meth:`update_lead` and the like.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        rate_per_second: int | None = 10,
        retry_after: int | float | str | None = 1,
        rate_limit_body: str = "json",
        slow_seconds: float = 2.0,
        first_id: int = 90001,
        user_id: int = 1001,
        strict_lead_names: bool = False,
    ) -> None:
        if rate_limit_body not in RATE_LIMIT_BODIES:
            raise ValueError(f"rate_limit_body must be one of {RATE_LIMIT_BODIES}")
        self.token = token
        #: requests a sliding second per token; None: no limit. May be changed at any time.
        self.rate_per_second = rate_per_second
        #: the rate limit's Retry-After header (None: none sent) and body ("json", "empty", "text")
        self.retry_after = retry_after
        self.rate_limit_body = rate_limit_body
        #: how long a "slow" fault waits unless fail_next says
        self.slow_seconds = slow_seconds
        #: Sell refuses a lead with neither last_name nor organization_name (422); off by default
        self.strict_lead_names = strict_lead_names
        self.user_id = user_id

        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._next_id = first_id
        self._records: dict[str, dict[int, dict[str, Any]]] = {
            "leads": {},
            "contacts": {},
            "deals": {},
            "notes": {},
            "tasks": {},
        }
        self._requests: list[SellRequest] = []
        self._faults: list[Fault] = []
        self._accepted_times: dict[str, deque[float]] = {}
        self._in_flight = 0
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # life ------------------------------------------------------------------------------------

    def start(self) -> FakeSell:
        if self._server is not None:
            return self
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the client reuses its connection
            disable_nagle_algorithm = True  # headers and body go out at once
            timeout = 60  # an idle keep-alive connection is closed after a minute

            def setup(self) -> None:
                super().setup()
                with fake._lock:
                    fake._connections.add(self.connection)

            def finish(self) -> None:
                try:
                    super().finish()
                except OSError:
                    pass
                finally:
                    with fake._lock:
                        fake._connections.discard(self.connection)
                        fake._idle.notify_all()

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                fake._handle(self)

            do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - its name
                pass

        self._closing.clear()
        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the server, drop the open connections and wake the slow answers."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._closing.set()
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        deadline = time.monotonic() + 2
        with self._lock:
            while self._connections and time.monotonic() < deadline:
                self._idle.wait(timeout=0.05)
        self._server = self._thread = None

    def __enter__(self) -> FakeSell:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeSell is not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is being handled (a slow answer, say); False on time-out."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(timeout=left)
        return True

    # Sell's side -------------------------------------------------------------------------------

    def _new_id(self, wanted: Any = None) -> int:
        if wanted is not None:
            ident = int(wanted)
            self._next_id = max(self._next_id, ident + 1)
            return ident
        ident = self._next_id
        self._next_id += 1
        return ident

    def _add(self, collection: str, defaults: dict[str, Any], fields: dict[str, Any]) -> dict:
        with self._lock:
            ident = self._new_id(fields.pop("id", None))
            now = _now_iso()
            record = {"id": ident, **defaults, "created_at": now, "updated_at": now, **fields}
            self._records[collection][ident] = record
            return copy.deepcopy(record)

    def add_lead(self, **fields: Any) -> dict[str, Any]:
        """A lead already in Sell (``id`` optional); returns it."""
        return self._add("leads", self._lead_defaults(), fields)

    def add_contact(self, **fields: Any) -> dict[str, Any]:
        """A contact already in Sell (``id`` optional); returns it."""
        defaults = {
            "creator_id": self.user_id,
            "owner_id": self.user_id,
            "is_organization": False,
            "name": None,
            "first_name": None,
            "last_name": None,
            "email": None,
            "phone": None,
            "mobile": None,
            "tags": [],
            "custom_fields": {},
        }
        return self._add("contacts", defaults, fields)

    def add_deal(self, **fields: Any) -> dict[str, Any]:
        """A deal already in Sell (``id`` optional); returns it."""
        defaults = {"creator_id": self.user_id, "owner_id": self.user_id, "name": None, "tags": []}
        return self._add("deals", defaults, fields)

    def _update(self, collection: str, ident: int, fields: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            record = self._records[collection][ident]
            record.update(fields, updated_at=_now_iso())
            return copy.deepcopy(record)

    def update_lead(self, lead_id: int, **fields: Any) -> dict[str, Any]:
        """Change a lead on Sell's side (someone edited it in Sell)."""
        return self._update("leads", lead_id, fields)

    def update_contact(self, contact_id: int, **fields: Any) -> dict[str, Any]:
        """Change a contact on Sell's side."""
        return self._update("contacts", contact_id, fields)

    def _lead_defaults(self) -> dict[str, Any]:
        return {
            "creator_id": self.user_id,
            "owner_id": self.user_id,
            "first_name": None,
            "last_name": None,
            "organization_name": None,
            "status": "New",
            "source_id": None,
            "title": None,
            "description": None,
            "email": None,
            "phone": None,
            "mobile": None,
            "tags": [],
            "custom_fields": {},
        }

    # introspection -----------------------------------------------------------------------------

    def _snapshot(self, collection: str) -> dict[int, dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._records[collection])

    @property
    def leads(self) -> dict[int, dict[str, Any]]:
        return self._snapshot("leads")

    @property
    def contacts(self) -> dict[int, dict[str, Any]]:
        return self._snapshot("contacts")

    @property
    def deals(self) -> dict[int, dict[str, Any]]:
        return self._snapshot("deals")

    @property
    def notes(self) -> list[dict[str, Any]]:
        return list(self._snapshot("notes").values())

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return list(self._snapshot("tasks").values())

    @property
    def requests(self) -> list[SellRequest]:
        with self._lock:
            return [replace(r, query=dict(r.query)) for r in self._requests]

    def requests_to(self, method: str | None = None, path_prefix: str | None = None) -> list:
        """The requests of that method (any when None) whose path starts with ``path_prefix``."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper())
            and (path_prefix is None or r.path.startswith(path_prefix))
        ]

    def lead_by_email(self, email: str) -> dict[str, Any] | None:
        wanted = email.strip().lower()
        for lead in self.leads.values():
            if (lead.get("email") or "").strip().lower() == wanted:
                return lead
        return None

    def notes_of(self, resource_type: str, resource_id: int) -> list[dict[str, Any]]:
        return [
            n
            for n in self.notes
            if n["resource_type"] == resource_type and n["resource_id"] == resource_id
        ]

    def tasks_of(self, resource_type: str, resource_id: int) -> list[dict[str, Any]]:
        return [
            t
            for t in self.tasks
            if t.get("resource_type") == resource_type and t.get("resource_id") == resource_id
        ]

    def max_requests_in_any_second(self, *, include_rejected: bool = False) -> int:
        """The most requests that arrived within any sliding second: the accepted ones (not
        answered 429), or all of them with ``include_rejected``."""
        with self._lock:
            times = [r.time for r in self._requests if include_rejected or r.accepted]
        return max_in_window(times)

    @property
    def rate_limited_count(self) -> int:
        with self._lock:
            return sum(1 for r in self._requests if r.rate_limited)

    # faults --------------------------------------------------------------------------------------

    def fail_next(
        self,
        kind: str,
        times: int = 1,
        path_prefix: str | None = None,
        method: str | None = None,
        *,
        seconds: float | None = None,
        retry_after: int | float | str | None = 1,
        message: str | None = None,
    ) -> None:
        """The next ``times`` authorized requests matching ``method`` and ``path_prefix`` (any
        when None) meet ``kind`` (see FAULT_KINDS, or any three-digit status, answered with an
        errors array). Faults queue up: a request meets the first one that matches it.
        ``seconds``: a slow fault's delay; ``retry_after``: a "429"'s header (None: none);
        ``message``: an error answer's message."""
        if kind not in FAULT_KINDS and not re.fullmatch(r"[45]\d\d", kind):
            raise ValueError(f"unknown fault {kind!r}: one of {FAULT_KINDS} or a 4xx/5xx status")
        if times < 1:
            raise ValueError("times must be at least 1")
        fault = Fault(
            kind,
            times,
            path_prefix,
            method,
            seconds,
            None if retry_after is None else str(retry_after),
            message,
        )
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> list[tuple[str, int]]:
        """(kind, times left) of the faults not met yet."""
        with self._lock:
            return [(f.kind, f.times) for f in self._faults]

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for i, fault in enumerate(self._faults):
            if fault.matches(method, path):
                fault.times -= 1
                if fault.times <= 0:
                    del self._faults[i]
                return fault
        return None

    # the handler -----------------------------------------------------------------------------------

    def _read_body(self, http: BaseHTTPRequestHandler) -> bytes:
        if "chunked" in http.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(http.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while http.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(http.rfile.read(size))
                http.rfile.readline()
        length = int(http.headers.get("Content-Length") or 0)
        return http.rfile.read(length) if length > 0 else b""

    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        url = urlsplit(http.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        raw = self._read_body(http)
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        auth = http.headers.get("Authorization", "")
        record = SellRequest(
            method=http.command,
            path=url.path,
            query=query,
            body=body,
            time=0.0,
            headers=dict(http.headers.items()),
            client=(http.client_address[0], http.client_address[1]),
            authorized=auth == f"Bearer {self.token}",
        )
        with self._lock:
            # the time is taken under the lock: in the order the rate limit sees the requests
            arrived = record.time = time.monotonic()
            self._in_flight += 1
            self._requests.append(record)
            fault = None
            if not record.authorized:
                answer: _Answer | None = _error_answer(
                    ApiProblem(401, "unauthorized", "Invalid or missing access token.")
                )
            elif self._over_rate(auth, arrived):
                record.rate_limited = True
                answer = self._rate_limit_answer()
            else:
                answer = None
                fault = self._take_fault(record.method, record.path)
                if fault is not None:
                    record.fault = fault.kind
                    answer = self._fault_answer(fault)
                    record.rate_limited = answer is not None and answer.status == 429
                if not record.rate_limited:
                    self._accepted_times.setdefault(auth, deque()).append(arrived)
        try:
            self._answer(http, record, fault, answer, body)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._idle.notify_all()

    def _answer(
        self,
        http: BaseHTTPRequestHandler,
        record: SellRequest,
        fault: Fault | None,
        answer: _Answer | None,
        body: Any,
    ) -> None:
        kind = fault.kind if fault else None
        if answer is not None:
            return self._send(http, record, answer)
        if kind == "drop-before-write":
            return self._drop(http, record)
        delay = fault.seconds if fault and fault.seconds is not None else self.slow_seconds
        if kind == "slow-before-write" and self._closing.wait(delay):
            return self._drop(http, record)
        answer = self._route(record, body)
        if kind == "drop-after-write":
            return self._drop(http, record)
        if kind == "slow" and self._closing.wait(delay):
            return self._drop(http, record)
        return self._send(http, record, answer)

    def _over_rate(self, auth: str, now: float) -> bool:
        """Whether a request at ``now`` would make more than rate_per_second accepted ones in
        the second ending at ``now`` (so no window [t, t + 1) holds more than the rate)."""
        if self.rate_per_second is None:
            return False
        times = self._accepted_times.setdefault(auth, deque())
        while times and times[0] <= now - 1.0:
            times.popleft()
        return len(times) >= self.rate_per_second

    def _rate_limit_answer(self) -> _Answer:
        headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
        if self.rate_limit_body == "empty":
            return _Answer(429, b"", headers=headers)
        if self.rate_limit_body == "text":
            return _Answer(429, b"Too Many Requests", "text/plain; charset=utf-8", headers)
        problem = ApiProblem(429, "rate_limit_exceeded", "Rate limit exceeded.")
        return _error_answer(problem, headers)

    def _fault_answer(self, fault: Fault) -> _Answer | None:
        kind = fault.kind
        if kind == "429":
            headers = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
            message = fault.message or "Rate limit exceeded."
            return _error_answer(ApiProblem(429, "rate_limit_exceeded", message), headers)
        if kind == "429-empty":
            return _Answer(429, b"")
        if kind == "429-text":
            return _Answer(429, b"<html>Too Many Requests</html>", "text/html; charset=utf-8")
        if re.fullmatch(r"\d{3}", kind):
            status = int(kind)
            code = {422: "invalid", 404: "not_found", 409: "conflict"}.get(
                status, "server_error" if status >= 500 else "bad_request"
            )
            message = fault.message or (
                "resource_id: not found" if status == 422 else f"fake Sell answered {status}"
            )
            return _error_answer(ApiProblem(status, code, message))
        return None  # drops and slow answers are handled in _answer

    def _send(self, http: BaseHTTPRequestHandler, record: SellRequest, answer: _Answer) -> None:
        with self._lock:
            record.status = answer.status
        try:
            http.send_response(answer.status)
            if answer.body:
                http.send_header("Content-Type", answer.content_type)
            for name, value in answer.headers.items():
                http.send_header(name, value)
            http.send_header("Content-Length", str(len(answer.body)))
            http.end_headers()
            http.wfile.write(answer.body)
            http.wfile.flush()
        except OSError:  # the client went away (a time-out, say)
            http.close_connection = True

    def _drop(self, http: BaseHTTPRequestHandler, record: SellRequest) -> None:
        with self._lock:
            record.dropped = True
        http.close_connection = True
        with contextlib.suppress(OSError):
            http.connection.shutdown(socket.SHUT_RDWR)

    # the API ---------------------------------------------------------------------------------------

    def _route(self, record: SellRequest, body: Any) -> _Answer:
        try:
            with self._lock:
                return self._dispatch(record.method, record.path, record.query, body)
        except ApiProblem as problem:
            return _error_answer(problem)

    def _dispatch(self, method: str, path: str, query: dict[str, str], body: Any) -> _Answer:
        path = path.rstrip("/")
        kinds = "leads|contacts|deals|notes|tasks"
        routes: list[tuple[str, str, Callable[..., _Answer]]] = [
            ("POST", r"/v2/leads/upsert", lambda: self._upsert_lead(query, body)),
            ("GET", r"/v2/users/self", lambda: self._one("user", self._self_user())),
            ("GET", rf"/v2/({kinds})", lambda c: self._list(c, query)),
            ("POST", r"/v2/(leads|contacts|deals)", lambda c: self._create_party(c, body)),
            ("POST", r"/v2/(notes|tasks)", lambda c: self._create_activity(c, body)),
            ("GET", rf"/v2/({kinds})/(\d+)", lambda c, i: self._get(c, int(i))),
            ("PUT", rf"/v2/({kinds})/(\d+)", lambda c, i: self._put(c, int(i), body)),
        ]
        for verb, pattern, action in routes:
            match = re.fullmatch(pattern, path)
            if match and verb == method:
                return action(*match.groups())
        raise ApiProblem(404, "not_found", "The requested resource was not found.", path)

    @staticmethod
    def _one(kind: str, record: dict[str, Any], status: int = 200) -> _Answer:
        return _json_answer(status, {"data": copy.deepcopy(record), "meta": {"type": kind}})

    def _self_user(self) -> dict[str, Any]:
        return {"id": self.user_id, "name": "Fake Sell User", "email": "sell@example.test"}

    @staticmethod
    def _data(body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiProblem(400, "bad_request", "The request body is not a JSON object.")
        data = body.get("data")
        if not isinstance(data, dict):
            raise _invalid("data: required", 'the body must be {"data": {...}}')
        return data

    def _writable(self, data: dict[str, Any]) -> dict[str, Any]:
        _check_fields(data)
        return {k: copy.deepcopy(v) for k, v in data.items() if k not in READ_ONLY}

    def _check_lead_name(self, lead: dict[str, Any]) -> None:
        if self.strict_lead_names and not (lead.get("last_name") or lead.get("organization_name")):
            raise _invalid(
                "last_name: required", "a lead needs a last_name or an organization_name"
            )

    def _upsert_lead(self, query: dict[str, str], body: Any) -> _Answer:
        data = self._writable(self._data(body))
        filters = {k: v for k, v in query.items() if k not in ("page", "per_page")}
        if not filters:
            raise _invalid("filters: at least one filter is required", "e.g. ?email=")

        def matches(lead: dict[str, Any]) -> bool:
            for key, value in filters.items():
                held = lead.get(key)
                if key == "email":
                    if (held or "").strip().lower() != value.strip().lower():
                        return False
                elif str(held if held is not None else "") != value:
                    return False
            return True

        found = [lead for lead in self._records["leads"].values() if matches(lead)]
        if len(found) > 1:
            raise ApiProblem(
                409, "conflict", "Multiple leads match the filters.", f"{len(found)} leads"
            )
        if found:
            lead = found[0]
            candidate = {**lead, **data}
            self._check_lead_name(candidate)
            lead.update(data, updated_at=_now_iso())
            return self._one("lead", lead, 200)
        now = _now_iso()
        lead = {"id": 0, **self._lead_defaults(), "created_at": now, "updated_at": now}
        lead.update({k: v for k, v in filters.items() if k in lead or k == "email"})
        lead.update(data)
        self._check_lead_name(lead)
        lead["id"] = self._new_id()
        self._records["leads"][lead["id"]] = lead
        return self._one("lead", lead, 201)

    def _create_party(self, collection: str, body: Any) -> _Answer:
        data = self._writable(self._data(body))
        now = _now_iso()
        record: dict[str, Any] = {"id": 0, "created_at": now, "updated_at": now}
        if collection == "leads":
            record.update(self._lead_defaults())
            record.update(data)
            self._check_lead_name(record)
        else:
            record.update({"creator_id": self.user_id, "owner_id": self.user_id, "tags": []})
            record.update(data)
        record["id"] = self._new_id()
        self._records[collection][record["id"]] = record
        return self._one(collection[:-1], record)

    def _resource(self, data: dict[str, Any], required: bool) -> tuple[str | None, int | None]:
        resource_type, resource_id = data.get("resource_type"), data.get("resource_id")
        if resource_type is None and resource_id is None and not required:
            return None, None
        if resource_type not in RESOURCE_TYPES:
            raise _invalid(
                "resource_type: must be one of lead, contact, deal", f"{resource_type!r}"
            )
        if not _is_int(resource_id):
            raise _invalid("resource_id: must be an integer", f"resource_id={resource_id!r}")
        if resource_id not in self._records[RESOURCE_TYPES[resource_type]]:
            raise _invalid(
                "resource_id: not found", f"{resource_type} {resource_id} does not exist"
            )
        return resource_type, resource_id

    def _create_activity(self, collection: str, body: Any) -> _Answer:
        data = self._data(body)
        _check_fields(data)
        content = data.get("content")
        if not isinstance(content, str) or not content.strip():
            raise _invalid("content: required", "content must be a non-empty string")
        resource_type, resource_id = self._resource(data, required=collection == "notes")
        now = _now_iso()
        extra = {k: copy.deepcopy(v) for k, v in data.items() if k not in READ_ONLY}
        if collection == "notes":
            record = {
                "id": 0,
                "creator_id": self.user_id,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "content": content,
                "is_important": False,
                "tags": [],
                "type": "regular",
                "created_at": now,
                "updated_at": now,
            }
        else:
            for key in ("due_date", "remind_at"):
                _check_datetime(data, key)
            record = {
                "id": 0,
                "creator_id": self.user_id,
                "owner_id": self.user_id,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "content": content,
                "completed": False,
                "completed_at": None,
                "due_date": None,
                "remind_at": None,
                "overdue": False,
                "created_at": now,
                "updated_at": now,
            }
        record.update(extra)
        record["id"] = self._new_id()
        self._records[collection][record["id"]] = record
        return self._one(collection[:-1], record)

    def _get(self, collection: str, ident: int) -> _Answer:
        record = self._records[collection].get(ident)
        if record is None:
            raise _not_found(collection[:-1], ident)
        return self._one(collection[:-1], record)

    def _put(self, collection: str, ident: int, body: Any) -> _Answer:
        record = self._records[collection].get(ident)
        if record is None:
            raise _not_found(collection[:-1], ident)
        data = self._writable(self._data(body))
        if collection in ("notes", "tasks"):
            data.pop("resource_type", None)
            data.pop("resource_id", None)
            for key in ("due_date", "remind_at"):
                _check_datetime(data, key)
        if collection == "leads":
            self._check_lead_name({**record, **data})
        record.update(data, updated_at=_now_iso())
        return self._one(collection[:-1], record)

    def _list(self, collection: str, query: dict[str, str]) -> _Answer:
        try:
            page = max(1, int(query.get("page", "1")))
            per_page = min(MAX_PER_PAGE, max(1, int(query.get("per_page", DEFAULT_PER_PAGE))))
        except ValueError:
            raise _invalid("page: must be an integer", str(query)) from None
        records = list(self._records[collection].values())
        ids = query.get("ids")
        if ids:
            wanted = {int(i) for i in ids.split(",") if i.strip().isdigit()}
            records = [r for r in records if r["id"] in wanted]
        text = query.get("q")
        if text:
            records = [r for r in records if text.lower() in str(r.get("content", "")).lower()]
        for key, value in query.items():
            if key in ("page", "per_page", "ids", "q", "sort_by"):
                continue
            if key == "email":
                records = [
                    r for r in records if (r.get("email") or "").lower() == value.strip().lower()
                ]
            else:
                records = [r for r in records if _as_query(r.get(key)) == value]
        start = (page - 1) * per_page
        shown = records[start : start + per_page]
        kind = collection[:-1]
        links = {"self": f"/v2/{collection}?{urlencode({**query, 'page': page})}"}
        if start + per_page < len(records):
            links["next_page"] = f"/v2/{collection}?{urlencode({**query, 'page': page + 1})}"
        if page > 1:
            links["prev_page"] = f"/v2/{collection}?{urlencode({**query, 'page': page - 1})}"
        payload = {
            "items": [{"data": copy.deepcopy(r), "meta": {"type": kind}} for r in shown],
            "meta": {"type": "collection", "count": len(shown), "links": links},
        }
        return _json_answer(200, payload)


def _as_query(value: Any) -> str:
    """A record's value as it would be written in a query string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
