"""``pull chat`` and ``pull sell`` against a real HTTP server on 127.0.0.1 that pages, rate-limits,
fails now and then and cuts responses short; then ``sync`` of the pulled files is compared with
``sync`` of the export the server was serving from. Nothing really sleeps (the client's clock
and sleeper are injected), nothing leaves 127.0.0.1 or tmp_path."""

from __future__ import annotations

import gzip
import json
import logging
import re
import threading
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from etl.config import load_settings
from etl.errors import ChatsellError, RunFailed
from etl.load.store import Store
from etl.pull import ClientOptions, RetryPolicy, TokenRefused, pull_chat, pull_sell
from etl.pull.output import PageWriter
from etl.run import SyncOptions, run_sync

from builders import chat, contact, deal, envelope, lead, user, write_json
from storecheck import dump

CHAT_TOKEN = "chat-T0ken-9f2c41"
SELL_TOKEN = "sell-T0ken-77ab0e"
LIMIT = 4  # chats a page (the API's 1000, scaled down)
PER_PAGE = 2  # Sell records a page (the API's 100)


def epoch(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


# -- the export the server serves ------------------------------------------------------------

SAME_SECOND = "2026-11-03T10:00:00Z"  # six chats share it, across a page boundary


def chats_v1() -> list[dict]:
    records = [
        chat(
            "c01",
            "a@example.com",
            name="Ann Archer",
            start="2026-11-02T09:00:00Z",
            updated="2026-11-02T09:10:00Z",
        ),
        chat(
            "c02",
            " B@Example.com ",
            name="Bea Brown",
            start="2026-11-02T10:00:00Z",
            updated="2026-11-02T10:10:00Z",
            notes="wants a demo",
            tags=["notify_sales"],
        ),
        chat(
            "c03",
            "mailto:info@acme.example",
            start="2026-11-02T11:00:00Z",
            updated="2026-11-02T11:10:00Z",
        ),
        chat("c04", "", start="2026-11-02T12:00:00Z", updated="2026-11-02T12:10:00Z"),
        chat(
            "c05",
            "taro@",
            name="山田 太郎",
            start="2026-11-02T13:00:00Z",
            updated="2026-11-02T13:10:00Z",
        ),
        chat(
            "c06",
            "new.visitor@example.org",
            name="New Visitor",
            start="2026-11-02T14:00:00Z",
            updated="2026-11-02T14:10:00Z",
        ),
    ]
    # c07..c12 all updated in the same second: pages 2 and 3 both end at it
    records += [
        chat(
            f"c{n:02d}",
            f"visitor{n}@shop.example",
            start=f"2026-11-03T0{n - 7}:00:00Z",
            updated=SAME_SECOND,
            phone=f"+1 415 555 01{n:02d}",
        )
        for n in range(7, 13)
    ]
    records += [
        chat(
            "c13",
            "ｎｅｗ．ｖｉｓｉｔｏｒ＠ｅｘａｍｐｌｅ．ｏｒｇ",
            start="2026-11-04T09:00:00Z",
            updated="2026-11-04T09:05:00Z",
            kind="offline_msg",
        ),
        chat(
            "c14",
            "b@example.com",
            start="2026-11-04T10:00:00Z",
            updated="2026-11-04T10:05:00Z",
            department="Sales",
        ),
        chat(
            "c15",
            "visitor7@shop.example",
            start="2026-11-04T11:00:00Z",
            updated="2026-11-04T11:05:00Z",
        ),
    ]
    return records


def chats_v2() -> dict[str, dict]:
    """What changed after the first pull: two chats updated, three new ones."""
    changed = {
        "c03": chat(
            "c03",
            "mailto:info@acme.example",
            start="2026-11-02T11:00:00Z",
            updated="2026-11-05T08:00:00Z",
            tags=["pricing"],
            notes="call back",
        ),
        "c08": chat(
            "c08",
            "visitor8@shop.example",
            start="2026-11-03T01:00:00Z",
            updated="2026-11-05T08:00:00Z",
            name="Val Visitor",
            phone="+1 415 555 0108",
        ),
        "c16": chat(
            "c16", "a@example.com", start="2026-11-05T07:00:00Z", updated="2026-11-05T08:00:00Z"
        ),
        "c17": chat(
            "c17",
            "later@shop.example",
            start="2026-11-05T07:30:00Z",
            updated="2026-11-05T09:00:00Z",
        ),
        "c18": chat("c18", "", start="2026-11-05T07:45:00Z", updated="2026-11-05T09:00:01Z"),
    }
    return changed


AGENTS = [
    {
        "id": 4120927,
        "email": "AIKO@example.com",
        "display_name": "Aiko Agent",
        "enabled": True,
        "departments": [],
    },
] + [
    {
        "id": 5000000 + n,
        "email": f"agent{n}@example.com",
        "display_name": f"Agent {n}",
        "enabled": n % 7 != 0,
        "departments": [],
    }
    for n in range(149)
]  # 150 agents: two pages of 100 by since_id
DEPARTMENTS = [{"id": 1817719521, "name": "Sales", "members": [4120927]}]
SELL = {
    "users": [user(101, "owner1@example.com"), user(102, "aiko@example.com")],
    "leads": [lead(1, "a@example.com"), lead(2, "visitor9@shop.example"), lead(3, None)],
    "contacts": [
        contact(20, "info@acme.example", is_organization=True, name="Acme Inc"),
        contact(10, "b@example.com", contact_id=20, name="Bea Brown"),
        contact(11, "visitor10@shop.example", name="Ten Person"),
    ],
    "deals": [deal(30, contact_id=10), deal(31, organization_id=20)],
}


def write_original(root: Path, chats: list[dict]) -> tuple[Path, Path]:
    """The export as a user would have it: one JSON array of chats, agents, departments, and
    one Sell collection file per resource."""
    write_json(root / "chat" / "chats.json", chats)
    write_json(root / "chat" / "agents.json", AGENTS)
    write_json(root / "chat" / "departments.json", DEPARTMENTS)
    for resource, records in SELL.items():
        write_json(root / "sell" / f"{resource}.json", envelope(resource[:-1], records))
    return root / "chat", root / "sell"


# -- the stand-in server ---------------------------------------------------------------------


class FakeZendesk:
    """Chat and Sell APIs in one server. ``faults`` maps a request's number (1-based, across
    the server's life) to what goes wrong with it: 429 with Retry-After 0 or 1, 500, 503, or a
    response cut off mid-body."""

    def __init__(self, chats: list[dict], faults: dict[int, str] | None = None) -> None:
        self.chats = {c["id"]: c for c in chats}
        self.faults = dict(faults or {})
        self.requests = 0
        self.log: list[dict] = []  # one entry per request
        self.connections: set[tuple[str, int]] = set()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the client reuses its connection
            disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms stalls
            timeout = 5

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                fake.handle(self)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeZendesk:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    # the handler ---------------------------------------------------------------------------

    def handle(self, http: BaseHTTPRequestHandler) -> None:
        url = urlsplit(http.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        with self.lock:
            self.requests += 1
            number = self.requests
            self.connections.add(http.client_address)
            entry = {"n": number, "path": url.path, "query": query, "status": None, "ids": []}
            self.log.append(entry)
            entry["auth"] = http.headers.get("Authorization")
            fault = self.faults.get(number)
        is_chat = url.path.startswith("/api/v2/chat/")
        token = CHAT_TOKEN if is_chat else SELL_TOKEN
        if entry["auth"] != f"Bearer {token}":
            return self._send(http, entry, 401, {"error": "invalid_token"})
        if fault in ("429-0", "429-1"):
            return self._send(
                http, entry, 429, {"error": "rate limited"}, {"Retry-After": fault[-1]}
            )
        if fault in ("500", "503"):
            return self._send(http, entry, int(fault), {"error": "try again"})
        body = self._chat(url.path, query, entry) if is_chat else self._sell(url.path, query)
        if body is None:
            return self._send(http, entry, 404, {"error": "not found"})
        if fault == "cut":  # headers promise more than the body holds, then the line drops
            data = json.dumps(body).encode()
            entry["status"], entry["ids"] = "cut", []
            http.send_response(200)
            http.send_header("Content-Type", "application/json")
            http.send_header("Content-Length", str(len(data)))
            http.end_headers()
            http.wfile.write(data[: len(data) // 2])
            http.wfile.flush()
            http.close_connection = True
            return None
        return self._send(http, entry, 200, body)

    def _send(self, http, entry, status, body, headers=None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        entry["status"] = status
        if status == 200:
            entry["body"] = data
        else:
            entry["ids"] = []
        http.send_response(status)
        http.send_header("Content-Type", "application/json")
        http.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            http.send_header(key, value)
        http.end_headers()
        http.wfile.write(data)

    def _chat(self, path: str, query: dict, entry: dict):
        if path == "/api/v2/chat/incremental/chats":
            start = (int(query.get("start_time", 0)), query.get("start_id", ""))
            limit = min(int(query.get("limit", 1000)), 1000)
            ordered = sorted(
                self.chats.values(),
                key=lambda c: (epoch(c.get("update_timestamp") or c["timestamp"]), c["id"]),
            )
            after = [
                c
                for c in ordered
                if (epoch(c.get("update_timestamp") or c["timestamp"]), c["id"]) > start
            ]
            page = after[:limit]
            end_time = (
                epoch(page[-1].get("update_timestamp") or page[-1]["timestamp"])
                if page
                else start[0]
            )
            end_id = page[-1]["id"] if page else start[1]
            entry["ids"] = [c["id"] for c in page]
            return {
                "chats": page,
                "count": len(page),
                "end_id": end_id,
                "end_time": end_time,
                "next_page": f"{self.base_url}{path}?fields=chats%28%2A%29&start_time={end_time}"
                f"&start_id={end_id}&limit={limit}",
            }
        if path == "/api/v2/chat/agents":  # since_id taken inclusively: the client must cope
            since_id = int(query.get("since_id", 0))
            limit = int(query.get("limit", 100))
            agents = sorted((a for a in AGENTS if a["id"] >= since_id), key=lambda a: a["id"])
            return agents[:limit]
        if path == "/api/v2/chat/departments":
            return DEPARTMENTS
        return None

    def _sell(self, path: str, query: dict):
        match = re.fullmatch(r"/v2/(users|leads|contacts|deals)", path)
        if not match:
            return None
        resource = match.group(1)
        page, per_page = int(query["page"]), int(query["per_page"])
        records = SELL[resource][(page - 1) * per_page : page * per_page]
        links = {"self": f"{self.base_url}{path}?page={page}&per_page={per_page}"}
        if page * per_page < len(SELL[resource]):
            links["next_page"] = f"{self.base_url}{path}?page={page + 1}&per_page={per_page}"
        body = envelope(resource[:-1], records)
        body["meta"]["links"] = links
        return body

    # what was served -----------------------------------------------------------------------

    def served_chat_ids(self, since: int = 0) -> list[str]:
        return [
            i
            for e in self.log[since:]
            if e["status"] == 200 and "incremental" in e["path"]
            for i in e["ids"]
        ]


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def options(time: FakeTime) -> ClientOptions:
    return ClientOptions(
        retry=RetryPolicy(), clock=time.clock, sleep=time.sleep, seed=1, timeout=10.0
    )


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def tokens(monkeypatch):
    monkeypatch.setenv("CHATSELL_CHAT_TOKEN", CHAT_TOKEN)
    monkeypatch.setenv("CHATSELL_SELL_TOKEN", SELL_TOKEN)


def store_at(path: Path) -> Store:
    return Store(f"sqlite:///{path}")


def sync(db: Path, chats: Path, sell: Path):
    url = f"sqlite:///{db}"
    store = Store(url)
    try:
        return run_sync(
            load_settings(None, database_url=url), SyncOptions(chats=chats, sell=sell), store=store
        )
    finally:
        store.dispose()


def outcomes(db: Path, run_id: int) -> list[tuple]:
    store = store_at(db)
    try:
        frame = store.outcome_rows(run_id)
    finally:
        store.dispose()
    columns = ["chat_id", "outcome", "email_normalized", "records", "reason"]
    return [
        tuple(r)
        for r in frame[columns]
        .astype(object)
        .where(frame[columns].notna(), None)
        .itertuples(index=False)
    ]


def data_tables(db: Path) -> dict[str, list[tuple]]:
    """Every data table, without run ids and file names (pull cursors are bookkeeping: left out)."""
    return dump(
        f"sqlite:///{db}",
        drop_run_columns=True,
        drop=frozenset({"source_file", "position", "imported_at"}),
    )


def page_files(directory: Path, prefix: str) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith(prefix))


def pulled_chat_ids(directory: Path) -> list[str]:
    return [
        c["id"]
        for p in page_files(directory, "chats_")
        for c in json.loads(gzip.decompress(p.read_bytes()))["chats"]
    ]


# -- the tests -------------------------------------------------------------------------------

FAULTS = {2: "429-1", 5: "500", 6: "429-0", 9: "cut", 12: "503", 14: "429-1", 19: "cut", 20: "500"}


def test_pull_then_sync_equals_sync_of_the_original_export(tmp_path, tokens):
    original_chat, original_sell = write_original(tmp_path / "original", chats_v1())
    out_chat, out_sell = tmp_path / "pulled" / "chat", tmp_path / "pulled" / "sell"
    db = tmp_path / "pulled.db"
    time = FakeTime()
    settings = load_settings(None)
    with FakeZendesk(chats_v1(), FAULTS) as server:
        store = store_at(db)
        try:
            chat_result = pull_chat(
                settings,
                store,
                out_chat,
                base_url=server.base_url,
                page_limit=LIMIT,
                options=options(time),
            )
            sell_result = pull_sell(
                settings,
                store,
                out_sell,
                base_url=server.base_url,
                per_page=PER_PAGE,
                options=options(time),
            )
        finally:
            store.dispose()
        first_pull_requests = len(server.log)

        # every chat fetched exactly once across pages, retries and the equal-timestamp boundary
        expected = sorted(c["id"] for c in chats_v1())
        assert sorted(server.served_chat_ids()) == expected
        assert Counter(pulled_chat_ids(out_chat)) == Counter(expected)
        assert chat_result.records == {"agents": 150, "departments": 1, "chats": 15}
        assert chat_result.pages == 2 + 1 + 4  # agents 2, departments 1, chats 4 (4+4+4+3)
        # faults happened and were survived: Retry-After honoured, 5xx and cut bodies retried
        statuses = Counter(e["status"] for e in server.log)
        assert statuses[429] == 3 and statuses[500] == 2 and statuses[503] == 1
        assert statuses["cut"] == 2
        assert time.sleeps.count(1.0) >= 2 and 0.0 in time.sleeps
        assert chat_result.retries + sell_result.retries == len(FAULTS)
        # one kept-alive connection a pull, plus one after each response cut short
        assert len(server.connections) <= 2 + 2
        walk = [e["query"] for e in server.log if "incremental" in e["path"]]
        assert {(q["fields"], q["limit"]) for q in walk} == {("chats(*)", str(LIMIT))}
        assert (walk[0]["start_time"], walk[0]["start_id"]) == ("0", "")

        # files as SPEC 8 names them, holding the pages exactly as served
        names = sorted(p.name for p in out_chat.iterdir())
        assert names == [
            ".chatsell-pull.lock",
            "agents_1.json.gz",
            "agents_2.json.gz",
            f"chats_{epoch('2026-11-02T12:10:00Z')}_1.json.gz",
            f"chats_{epoch(SAME_SECOND)}_1.json.gz",
            f"chats_{epoch(SAME_SECOND)}_2.json.gz",
            f"chats_{epoch('2026-11-04T11:05:00Z')}_1.json.gz",
            "departments.json.gz",
        ]
        served = [
            e["body"] for e in server.log if e["status"] == 200 and "incremental" in e["path"]
        ]
        on_disk = {gzip.decompress(p.read_bytes()) for p in page_files(out_chat, "chats_")}
        assert on_disk == set(served)
        assert sorted(p.name for p in out_sell.iterdir() if not p.name.startswith(".")) == [
            "contacts_1.json.gz",
            "contacts_2.json.gz",
            "deals_1.json.gz",
            "leads_1.json.gz",
            "leads_2.json.gz",
            "users_1.json.gz",
        ]
        assert sell_result.records == {"users": 2, "leads": 3, "contacts": 3, "deals": 2}

        # sync of the pulled files == sync of the original export
        pulled_run = sync(db, out_chat, out_sell)
        original_run = sync(tmp_path / "original.db", original_chat, original_sell)
        assert pulled_run.report["outcomes"] == original_run.report["outcomes"]
        assert pulled_run.report["accounting"]["balanced"] is True
        assert outcomes(db, pulled_run.run_id) == outcomes(
            tmp_path / "original.db", original_run.run_id
        )
        assert data_tables(db) == data_tables(tmp_path / "original.db")

        # the world moves on; the second pull asks only for what changed since
        before = {p.name: p.read_bytes() for p in out_chat.iterdir()}
        changes = chats_v2()
        server.chats.update(changes)
        store = store_at(db)
        try:
            again = pull_chat(
                settings,
                store,
                out_chat,
                base_url=server.base_url,
                page_limit=LIMIT,
                options=options(time),
            )
            cursor = json.loads(store.pull_cursor("chat.incremental"))
        finally:
            store.dispose()
        assert sorted(server.served_chat_ids(first_pull_requests)) == sorted(changes)
        assert again.records["chats"] == 5 and again.files_unchanged == 3  # agents, departments
        assert cursor == {"start_time": epoch("2026-11-05T09:00:01Z"), "start_id": "c18"}
        for name, data in before.items():  # nothing pulled before was rewritten
            assert (out_chat / name).read_bytes() == data
        new_files = sorted(set(p.name for p in out_chat.iterdir()) - set(before))
        assert new_files == [
            f"chats_{epoch('2026-11-05T09:00:00Z')}_1.json.gz",
            f"chats_{epoch('2026-11-05T09:00:01Z')}_1.json.gz",
        ]

        # syncing that equals syncing the changed original: after the first sync, and afresh
        v2 = {c["id"]: c for c in chats_v1()} | changes
        original2_chat, _ = write_original(tmp_path / "original2", list(v2.values()))
        incremental = sync(db, out_chat, out_sell)
        original_incremental = sync(tmp_path / "original.db", original2_chat, original_sell)
        assert incremental.report["inputs"]["chats_read"] == 5  # only the new files were read
        assert data_tables(db) == data_tables(tmp_path / "original.db")
        fresh = sync(tmp_path / "fresh.db", out_chat, out_sell)
        original_fresh = sync(tmp_path / "original2.db", original2_chat, original_sell)
        assert outcomes(tmp_path / "fresh.db", fresh.run_id) == outcomes(
            tmp_path / "original2.db", original_fresh.run_id
        )
        assert data_tables(tmp_path / "fresh.db") == data_tables(tmp_path / "original2.db")
        assert original_incremental.report["accounting"]["balanced"] is True


def test_the_cursor_moves_only_after_the_page_is_on_disk(tmp_path, tokens, monkeypatch):
    out = tmp_path / "chat"
    db = tmp_path / "store.db"
    settings = load_settings(None)
    real_write = PageWriter._atomic_write
    chats_written = 0

    def full_disk_on_the_third_chats_page(self, path, data):
        nonlocal chats_written
        if path.name.startswith("chats_"):
            chats_written += 1
            if chats_written == 3:
                raise RunFailed(f"cannot write {path}: No space left on device")
        real_write(self, path, data)

    with FakeZendesk(chats_v1()) as server:
        monkeypatch.setattr(PageWriter, "_atomic_write", full_disk_on_the_third_chats_page)
        store = store_at(db)
        try:
            with pytest.raises(RunFailed, match="No space left"):
                pull_chat(
                    settings,
                    store,
                    out,
                    base_url=server.base_url,
                    page_limit=LIMIT,
                    options=options(FakeTime()),
                )
            # the cursor covers the two pages on disk, no more
            assert json.loads(store.pull_cursor("chat.incremental")) == {
                "start_time": epoch(SAME_SECOND),
                "start_id": "c08",
            }
            assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
            monkeypatch.undo()
            monkeypatch.setenv("CHATSELL_CHAT_TOKEN", CHAT_TOKEN)

            # a crash after the file is written but before its cursor commits: fetched again,
            # recognised as the page already there, not written twice
            real_save = Store.save_pull_cursor
            saves = 0

            def crash_on_second_save(self, name, value):
                nonlocal saves
                saves += 1
                if saves == 2:
                    raise RunFailed("the store went away")
                real_save(self, name, value)

            monkeypatch.setattr(Store, "save_pull_cursor", crash_on_second_save)
            with pytest.raises(RunFailed, match="went away"):
                pull_chat(
                    settings,
                    store,
                    out,
                    base_url=server.base_url,
                    page_limit=LIMIT,
                    options=options(FakeTime()),
                )
            monkeypatch.setattr(Store, "save_pull_cursor", real_save)
            last = pull_chat(
                settings,
                store,
                out,
                base_url=server.base_url,
                page_limit=LIMIT,
                options=options(FakeTime()),
            )
        finally:
            store.dispose()
    assert last.files_unchanged >= 1  # the page whose cursor was lost
    assert Counter(pulled_chat_ids(out)) == Counter(c["id"] for c in chats_v1())


def test_since_starts_a_first_pull_and_the_cursor_wins_afterwards(tmp_path, tokens, caplog):
    settings = load_settings(None)
    with FakeZendesk(chats_v1()) as server:
        store = store_at(tmp_path / "store.db")
        try:
            first = pull_chat(
                settings,
                store,
                tmp_path / "chat",
                base_url=server.base_url,
                since=datetime(2026, 11, 4, tzinfo=UTC),
                page_limit=LIMIT,
                options=options(FakeTime()),
            )
            assert sorted(pulled_chat_ids(tmp_path / "chat")) == ["c13", "c14", "c15"]
            assert first.records["chats"] == 3
            caplog.set_level(logging.WARNING)
            second = pull_chat(
                settings,
                store,
                tmp_path / "chat",
                base_url=server.base_url,
                since=datetime(2020, 1, 1, tzinfo=UTC),
                page_limit=LIMIT,
                options=options(FakeTime()),
            )
        finally:
            store.dispose()
    assert second.records["chats"] == 0 and "--since ignored" in caplog.text


def test_tokens_go_out_as_bearer_and_nowhere_else(tmp_path, tokens, caplog, capsys):
    caplog.set_level(logging.DEBUG)  # httpx and httpcore included
    settings = load_settings(None)
    db = tmp_path / "store.db"
    with FakeZendesk(chats_v1(), {3: "429-1", 4: "500", 7: "cut"}) as server:
        store = store_at(db)
        try:
            pull_chat(
                settings,
                store,
                tmp_path / "chat",
                base_url=server.base_url,
                page_limit=LIMIT,
                options=options(FakeTime()),
            )
            pull_sell(
                settings,
                store,
                tmp_path / "sell",
                base_url=server.base_url,
                per_page=PER_PAGE,
                options=options(FakeTime()),
            )
        finally:
            store.dispose()
        assert {e["auth"] for e in server.log if "/chat/" in e["path"]} == {f"Bearer {CHAT_TOKEN}"}
        assert {e["auth"] for e in server.log if "/chat/" not in e["path"]} == {
            f"Bearer {SELL_TOKEN}"
        }
    assert {e["status"] for e in server.log} >= {200, 429, 500, "cut"}
    captured = capsys.readouterr()
    seen = [caplog.text, captured.out, captured.err]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            seen.append(raw.decode("latin-1"))
            if raw[:2] == b"\x1f\x8b":
                seen.append(gzip.decompress(raw).decode("utf-8"))
    for text in seen:
        assert CHAT_TOKEN not in text and SELL_TOKEN not in text


@pytest.mark.parametrize("source", ["chat", "sell"])
def test_a_refused_token_is_one_line_naming_it(tmp_path, monkeypatch, caplog, source):
    caplog.set_level(logging.DEBUG)
    wrong = "wr0ng-t0ken-xyz"
    monkeypatch.setenv(f"CHATSELL_{source.upper()}_TOKEN", wrong)
    pull = pull_chat if source == "chat" else pull_sell
    with FakeZendesk([]) as server:
        store = store_at(tmp_path / "store.db")
        try:
            with pytest.raises(TokenRefused) as caught:
                pull(
                    load_settings(None),
                    store,
                    tmp_path / source,
                    base_url=server.base_url,
                    options=options(FakeTime()),
                )
            assert store.pull_cursor("chat.incremental") is None
        finally:
            store.dispose()
    message = str(caught.value)
    assert "\n" not in message and f"CHATSELL_{source.upper()}_TOKEN" in message
    assert "HTTP 401" in message and wrong not in message and wrong not in caplog.text
    assert isinstance(caught.value, ChatsellError) and caught.value.exit_code == 1
    assert len(server.log) == 1  # never retried


def test_a_shrunken_sell_collection_leaves_no_stale_page(tmp_path, tokens, monkeypatch):
    settings = load_settings(None)
    with FakeZendesk([]) as server:
        store = store_at(tmp_path / "store.db")
        try:
            pull_sell(
                settings,
                store,
                tmp_path / "sell",
                base_url=server.base_url,
                per_page=PER_PAGE,
                options=options(FakeTime()),
            )
            monkeypatch.setitem(SELL, "leads", SELL["leads"][:1])
            again = pull_sell(
                settings,
                store,
                tmp_path / "sell",
                base_url=server.base_url,
                per_page=PER_PAGE,
                options=options(FakeTime()),
            )
            state = json.loads(store.pull_cursor("sell.leads"))
        finally:
            store.dispose()
    assert [p.name for p in again.files_removed] == ["leads_2.json.gz"]
    assert [p.name for p in again.files_written] == ["leads_1.json.gz"]
    assert again.files_unchanged == 4  # users, contacts (2 pages), deals
    assert state["pages"] == 1 and state["records"] == 1
    assert not (tmp_path / "sell" / "leads_2.json.gz").exists()


def test_pull_cursors_are_upserted_on_both_stores(store_url):
    store = Store(store_url)
    try:
        assert store.pull_cursor("chat.incremental") is None
        store.save_pull_cursor("chat.incremental", '{"start_time": 1, "start_id": "a"}')
        store.save_pull_cursor("chat.incremental", '{"start_time": 2, "start_id": "b"}')
        store.save_pull_cursor("sell.leads", '{"pages": 3}')
        assert store.pull_cursor("chat.incremental") == '{"start_time": 2, "start_id": "b"}'
        assert store.pull_cursor("sell.leads") == '{"pages": 3}'
    finally:
        store.dispose()


def test_pull_from_the_command_line(tmp_path, tokens):
    """`chatsell pull chat|sell` against the stand-in server, then a 401: exit codes and output."""
    from click.testing import CliRunner

    from etl.cli import cli

    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    with FakeZendesk(chats_v1()) as server:
        for source in ("chat", "sell"):
            done = runner.invoke(
                cli,
                [
                    "--db",
                    db,
                    "pull",
                    source,
                    "--out",
                    str(tmp_path / source),
                    "--base-url",
                    server.base_url,
                    "--json",
                ],
            )
            assert done.exit_code == 0, done.output
            assert json.loads(done.stdout)["pages"] >= 1
        assert page_files(tmp_path / "chat", "chats_")
        refused = runner.invoke(
            cli,
            [
                "--db",
                db,
                "pull",
                "sell",
                "--out",
                str(tmp_path / "sell"),
                "--base-url",
                server.base_url,
            ],
            env={"CHATSELL_SELL_TOKEN": "wr0ng-t0ken-xyz"},
        )
    assert refused.exit_code == 1
    assert refused.stderr.count("\n") == 1 and "CHATSELL_SELL_TOKEN" in refused.stderr
    assert "wr0ng-t0ken-xyz" not in refused.output + refused.stderr


def test_schedule_once_runs_the_pull_job(tmp_path, tokens):
    from click.testing import CliRunner

    from etl.cli import cli

    with FakeZendesk(chats_v1()) as server:
        config = tmp_path / "c.toml"
        config.write_text(
            f'[sell]\nbase_url = "{server.base_url}"\n'
            f'[schedule.pull]\ncron = "*/15 * * * *"\nsell_out = "{tmp_path / "sell"}"\n'
        )
        done = CliRunner().invoke(
            cli,
            [
                "--config",
                str(config),
                "--db",
                f"sqlite:///{tmp_path / 's.db'}",
                "schedule",
                "--once",
            ],
        )
    assert done.exit_code == 0, done.output
    assert page_files(tmp_path / "sell", "leads_") and page_files(tmp_path / "sell", "users_")
