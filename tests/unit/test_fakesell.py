"""The fake Zendesk Sell Core API v2 (tests/fakesell.py) that push's tests run against: its
endpoints, its errors, its rate limit and its scripted faults, driven with httpx."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from fakesell import FakeSell, max_in_window


@pytest.fixture
def sell() -> Iterator[FakeSell]:
    with FakeSell() as fake:
        yield fake


def client_for(fake: FakeSell, *, token: str | None = None, timeout: float = 5.0) -> httpx.Client:
    token = fake.token if token is None else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=fake.base_url, headers=headers, timeout=timeout)


def note_body(resource_type: str, resource_id: int, content: str) -> dict:
    return {
        "data": {
            "resource_type": resource_type,
            "resource_id": resource_id,
            "content": content,
            "tags": ["zendesk-chat"],
        }
    }


# endpoints ---------------------------------------------------------------------------------------


def test_upsert_is_idempotent_by_email(sell):
    body = {
        "data": {
            "first_name": "Ann",
            "last_name": "Lee",
            "email": "ann@example.com",
            "owner_id": 4120927,
            "status": "New",
            "tags": ["zendesk-chat"],
        }
    }
    with client_for(sell) as client:
        first = client.post("/v2/leads/upsert", params={"email": "ann@example.com"}, json=body)
        again = client.post(
            "/v2/leads/upsert",
            params={"email": "ANN@Example.com"},
            json={"data": {"phone": "+1 555 0100"}, "meta": {"source": "chatsell"}},
        )
    assert first.status_code == 201 and again.status_code == 200
    lead = first.json()
    assert lead["meta"] == {"type": "lead"}
    assert lead["data"]["id"] == 90001
    assert again.json()["data"]["id"] == 90001
    assert list(sell.leads) == [90001]
    held = sell.leads[90001]
    assert (held["first_name"], held["last_name"], held["email"]) == (
        "Ann",
        "Lee",
        "ann@example.com",
    )
    assert held["phone"] == "+1 555 0100" and held["tags"] == ["zendesk-chat"]
    assert held["owner_id"] == 4120927
    assert sell.lead_by_email(" Ann@example.com ")["id"] == 90001


def test_upsert_matches_a_seeded_lead_and_needs_a_filter(sell):
    seeded = sell.add_lead(first_name="Bo", last_name="Ek", email="Bo@Example.com")
    with client_for(sell) as client:
        found = client.post(
            "/v2/leads/upsert", params={"email": "bo@example.com"}, json={"data": {"status": "x"}}
        )
        unfiltered = client.post("/v2/leads/upsert", json={"data": {"last_name": "Z"}})
        unwrapped = client.post("/v2/leads/upsert", params={"email": "z@x"}, json={"a": 1})
    assert found.status_code == 200 and found.json()["data"]["id"] == seeded["id"]
    assert sell.leads[seeded["id"]]["status"] == "x"
    assert unfiltered.status_code == 422 and unwrapped.status_code == 422
    assert len(sell.leads) == 1


def test_strict_lead_names_refuses_a_lead_without_a_last_name():
    with FakeSell(strict_lead_names=True) as fake, client_for(fake) as client:
        nameless = client.post(
            "/v2/leads/upsert", params={"email": "a@b.c"}, json={"data": {"first_name": "A"}}
        )
        named = client.post(
            "/v2/leads/upsert", params={"email": "a@b.c"}, json={"data": {"last_name": "B"}}
        )
    assert nameless.status_code == 422
    assert nameless.json()["errors"][0]["error"]["message"] == "last_name: required"
    assert named.status_code == 201


def test_get_and_put_a_contact_and_a_lead(sell):
    contact = sell.add_contact(name="Cy Doe", email="cy@example.com", phone="+1 555 0001")
    lead = sell.add_lead(last_name="Roe", phone="")
    with client_for(sell) as client:
        got = client.get(f"/v2/contacts/{contact['id']}")
        put = client.put(f"/v2/contacts/{contact['id']}", json={"data": {"phone": "+1 555 0002"}})
        lead_put = client.put(f"/v2/leads/{lead['id']}", json={"data": {"phone": "+44 20 1"}})
        lead_got = client.get(f"/v2/leads/{lead['id']}")
    assert got.status_code == 200
    assert got.json() == {"data": got.json()["data"], "meta": {"type": "contact"}}
    assert got.json()["data"]["phone"] == "+1 555 0001"
    assert put.status_code == 200 and put.json()["data"]["phone"] == "+1 555 0002"
    assert sell.contacts[contact["id"]]["phone"] == "+1 555 0002"
    assert lead_put.status_code == 200 and lead_got.json()["data"]["phone"] == "+44 20 1"
    # Sell's side can change under the push
    sell.update_contact(contact["id"], phone="+1 555 9999")
    assert sell.contacts[contact["id"]]["phone"] == "+1 555 9999"


def test_unknown_ids_and_paths_are_404_with_an_errors_array(sell):
    lead = sell.add_lead(last_name="Roe")
    with client_for(sell) as client:
        missing = client.get("/v2/leads/1")
        wrong_kind = client.get(f"/v2/contacts/{lead['id']}")  # a lead's id is no contact's
        put_missing = client.put("/v2/contacts/5", json={"data": {"phone": "1"}})
        nowhere = client.get("/v2/nothing")
    for answer in (missing, wrong_kind, put_missing, nowhere):
        assert answer.status_code == 404
        error = answer.json()["errors"][0]
        assert error["error"]["code"] == "not_found" and error["meta"] == {"type": "error"}


def test_notes_are_listed_by_resource_and_searched_by_q(sell):
    lead = sell.add_lead(last_name="Roe")
    contact = sell.add_contact(name="Cy Doe")
    with client_for(sell) as client:
        made = [
            client.post("/v2/notes", json=note_body("lead", lead["id"], text))
            for text in ("Zendesk Chat c-1\nhello", "Zendesk Chat c-2\nbye", "Zendesk Chat c-1b")
        ]
        client.post("/v2/notes", json=note_body("contact", contact["id"], "Zendesk Chat c-1"))
        of_lead = client.get(
            "/v2/notes", params={"resource_type": "lead", "resource_id": lead["id"]}
        )
        searched = client.get(
            "/v2/notes", params={"resource_type": "lead", "resource_id": lead["id"], "q": "c-1"}
        )
        paged = client.get(
            "/v2/notes",
            params={"resource_type": "lead", "resource_id": lead["id"], "per_page": 2},
        )
    assert [m.status_code for m in made] == [200, 200, 200]
    assert made[0].json()["meta"] == {"type": "note"}
    assert made[0].json()["data"]["tags"] == ["zendesk-chat"]
    contents = [item["data"]["content"] for item in of_lead.json()["items"]]
    assert contents == ["Zendesk Chat c-1\nhello", "Zendesk Chat c-2\nbye", "Zendesk Chat c-1b"]
    found = searched.json()
    assert [i["data"]["id"] for i in found["items"]] == [
        made[0].json()["data"]["id"],
        made[2].json()["data"]["id"],
    ]
    assert found["meta"]["count"] == 2 and found["items"][0]["meta"] == {"type": "note"}
    assert paged.json()["meta"]["count"] == 2 and "next_page" in paged.json()["meta"]["links"]
    assert len(sell.notes) == 4
    assert len(sell.notes_of("contact", contact["id"])) == 1


def test_tasks_are_created_and_searched(sell):
    lead = sell.add_lead(last_name="Roe")
    task = {
        "content": "Zendesk Chat c-7\nCall back",
        "owner_id": 4120927,
        "resource_type": "lead",
        "resource_id": lead["id"],
        "due_date": "2026-11-02T13:00:00Z",
        "remind_at": "2026-11-02T13:00:00Z",
    }
    with client_for(sell) as client:
        made = client.post("/v2/tasks", json={"data": task})
        other = client.post("/v2/tasks", json={"data": {**task, "content": "Zendesk Chat c-8"}})
        found = client.get(
            "/v2/tasks", params={"resource_type": "lead", "resource_id": lead["id"], "q": "c-7"}
        )
        bad_date = client.post("/v2/tasks", json={"data": {**task, "due_date": "soon"}})
    assert made.status_code == 200 and other.status_code == 200
    assert made.json()["meta"] == {"type": "task"}
    assert made.json()["data"]["owner_id"] == 4120927
    assert made.json()["data"]["completed"] is False
    assert [i["data"]["id"] for i in found.json()["items"]] == [made.json()["data"]["id"]]
    assert bad_date.status_code == 422
    assert [t["content"] for t in sell.tasks_of("lead", lead["id"])] == [
        "Zendesk Chat c-7\nCall back",
        "Zendesk Chat c-8",
    ]


def test_a_note_on_a_missing_resource_or_without_content_is_422(sell):
    lead = sell.add_lead(last_name="Roe")
    with client_for(sell) as client:
        missing = client.post("/v2/notes", json=note_body("lead", 123, "x"))
        empty = client.post("/v2/notes", json=note_body("lead", lead["id"], ""))
        as_text = client.post("/v2/notes", json=note_body("lead", str(lead["id"]), "x"))
        bad_type = client.post("/v2/notes", json=note_body("visitor", lead["id"], "x"))
        task_missing = client.post(
            "/v2/tasks",
            json={"data": {"content": "x", "resource_type": "contact", "resource_id": 1}},
        )
    assert missing.status_code == 422
    payload = missing.json()
    assert payload["meta"]["http_status"] == "422 Unprocessable Entity"
    assert payload["errors"][0]["error"]["code"] == "invalid"
    assert payload["errors"][0]["error"]["message"] == "resource_id: not found"
    assert payload["errors"][0]["error"]["details"]
    assert payload["errors"][0]["meta"] == {"type": "error"}
    assert empty.json()["errors"][0]["error"]["message"] == "content: required"
    assert as_text.status_code == 422 and bad_type.status_code == 422
    assert task_missing.status_code == 422
    assert sell.notes == [] and sell.tasks == []


def test_a_request_without_the_token_is_401(sell):
    with client_for(sell, token="") as anonymous, client_for(sell, token="wrong") as wrong:
        answers = [anonymous.get("/v2/users/self"), wrong.post("/v2/leads/upsert?email=a@b")]
    for answer in answers:
        assert answer.status_code == 401
        assert answer.json()["errors"][0]["error"]["code"] == "unauthorized"
    assert sell.leads == {}
    assert [r.authorized for r in sell.requests] == [False, False]
    with client_for(sell) as client:
        assert client.get("/v2/users/self").json()["data"]["id"] == sell.user_id


# the rate limit ----------------------------------------------------------------------------------


def test_requests_beyond_the_rate_are_429_with_retry_after(sell):
    with client_for(sell) as client:
        answers = [client.get("/v2/users/self") for _ in range(15)]
    statuses = [a.status_code for a in answers]
    assert statuses == [200] * 10 + [429] * 5
    limited = answers[-1]
    assert limited.headers["Retry-After"] == "1"
    assert limited.json()["errors"][0]["error"]["code"] == "rate_limit_exceeded"
    assert sell.max_requests_in_any_second() == 10
    assert sell.max_requests_in_any_second(include_rejected=True) == 15
    assert sell.rate_limited_count == 5
    assert [r.accepted for r in sell.requests] == [True] * 10 + [False] * 5


def test_the_window_slides():
    with FakeSell(rate_per_second=3) as fake, client_for(fake) as client:
        first = [client.get("/v2/users/self").status_code for _ in range(3)]
        last = fake.requests[2].time
        time.sleep(0.3)
        blocked = client.get("/v2/users/self").status_code  # the first three are < 1 s old
        time.sleep(max(0.0, last + 1.02 - time.monotonic()))
        freed = client.get("/v2/users/self").status_code
    assert first == [200, 200, 200] and blocked == 429 and freed == 200
    assert fake.max_requests_in_any_second() == 3


def test_the_rate_limit_without_retry_after_and_with_an_empty_body():
    fake = FakeSell(rate_per_second=2, retry_after=None, rate_limit_body="empty")
    with fake, client_for(fake) as client:
        answers = [client.get("/v2/users/self") for _ in range(3)]
        fake.rate_limit_body = "text"
        text = client.get("/v2/users/self")
    limited = answers[-1]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert "Retry-After" not in limited.headers and limited.content == b""
    assert limited.headers["Content-Length"] == "0"
    assert text.status_code == 429 and "Retry-After" not in text.headers
    with pytest.raises(ValueError):
        text.json()


def test_no_rate_limit_when_the_rate_is_none():
    with FakeSell(rate_per_second=None) as fake, client_for(fake) as client:
        statuses = {client.get("/v2/users/self").status_code for _ in range(25)}
    assert statuses == {200}
    assert fake.max_requests_in_any_second() == 25


def test_max_in_window_counts_half_open_sliding_seconds():
    assert max_in_window([]) == 0
    assert max_in_window([0.0, 0.5, 0.99, 1.0, 1.5]) == 3  # [0, 1) and [0.5, 1.5)
    assert max_in_window([0.0, 1.0, 2.0, 3.0]) == 1
    assert max_in_window([3.0, 0.1, 0.2, 0.3, 2.0]) == 3  # any order
    assert max_in_window([0.0, 0.2, 0.4], window=0.3) == 2


# scripted faults ---------------------------------------------------------------------------------


def test_scripted_errors_meet_the_matching_requests_in_turn(sell):
    lead = sell.add_lead(last_name="Roe")
    sell.fail_next("503", path_prefix="/v2/notes", method="POST", times=2)
    sell.fail_next("429", retry_after=2)
    sell.fail_next("429-empty")
    sell.fail_next("500")
    sell.fail_next("422", message="content: too long")
    with client_for(sell) as client:
        got = client.get(f"/v2/leads/{lead['id']}")  # meets the "429": the 503s are for notes
        statuses = [client.post("/v2/notes", json=note_body("lead", lead["id"], "x")) for _ in "ab"]
        empty = client.get(f"/v2/leads/{lead['id']}")
        server_error = client.get(f"/v2/leads/{lead['id']}")
        invalid = client.post("/v2/notes", json=note_body("lead", lead["id"], "x"))
        ok = client.post("/v2/notes", json=note_body("lead", lead["id"], "x"))
    assert got.status_code == 429 and got.headers["Retry-After"] == "2"
    assert got.json()["errors"][0]["error"]["code"] == "rate_limit_exceeded"
    assert [s.status_code for s in statuses] == [503, 503]
    assert statuses[0].json()["errors"][0]["error"]["code"] == "server_error"
    assert empty.status_code == 429 and empty.content == b"" and "Retry-After" not in empty.headers
    assert server_error.status_code == 500
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["error"]["message"] == "content: too long"
    assert ok.status_code == 200
    assert len(sell.notes) == 1  # only the last one was written
    assert sell.pending_faults == []
    assert [r.fault for r in sell.requests] == [
        "429",
        "503",
        "503",
        "429-empty",
        "500",
        "422",
        None,
    ]
    # the scripted 429s are not accepted requests
    assert [r.accepted for r in sell.requests].count(False) == 2


def test_an_unknown_fault_is_refused(sell):
    with pytest.raises(ValueError):
        sell.fail_next("teapot")


def test_a_drop_after_write_loses_the_answer_but_keeps_the_note(sell):
    lead = sell.add_lead(last_name="Roe")
    sell.fail_next("drop-after-write", path_prefix="/v2/notes", method="POST")
    with client_for(sell) as client:
        assert client.get(f"/v2/leads/{lead['id']}").status_code == 200  # opens the connection
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/v2/notes", json=note_body("lead", lead["id"], "Zendesk Chat c-9\nhi"))
        # the note is in Sell: a lookup finds it, on a new connection
        found = client.get(
            "/v2/notes", params={"resource_type": "lead", "resource_id": lead["id"], "q": "c-9"}
        )
        again = client.get(f"/v2/leads/{lead['id']}")
    assert found.status_code == 200 and again.status_code == 200
    assert [i["data"]["content"] for i in found.json()["items"]] == ["Zendesk Chat c-9\nhi"]
    assert len(sell.notes) == 1
    post = sell.requests_to("POST", "/v2/notes")[0]
    assert post.dropped and post.status is None and post.fault == "drop-after-write"
    ports = [r.client[1] for r in sell.requests]
    assert ports[0] == ports[1] != ports[2] == ports[3]  # kept alive, then a new connection


def test_a_drop_before_write_writes_nothing(sell):
    sell.fail_next("drop-before-write", path_prefix="/v2/leads/upsert")
    with client_for(sell) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/v2/leads/upsert?email=a@b.c", json={"data": {"last_name": "B"}})
        assert sell.leads == {}
        retried = client.post("/v2/leads/upsert?email=a@b.c", json={"data": {"last_name": "B"}})
    assert retried.status_code == 201 and len(sell.leads) == 1


def test_a_slow_answer_times_the_client_out_after_the_write(sell):
    lead = sell.add_lead(last_name="Roe")
    sell.fail_next("slow", seconds=0.6, path_prefix="/v2/tasks")
    task = {"content": "Zendesk Chat c-3", "resource_type": "lead", "resource_id": lead["id"]}
    with client_for(sell, timeout=0.2) as client:
        began = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            client.post("/v2/tasks", json={"data": task})
        assert time.monotonic() - began < 0.5
        assert len(sell.tasks) == 1  # written before the answer was held back
        assert client.get(f"/v2/leads/{lead['id']}").status_code == 200
    assert sell.wait_idle(timeout=3)


def test_a_slow_write_lands_after_the_time_out(sell):
    lead = sell.add_lead(last_name="Roe")
    sell.fail_next("slow-before-write", seconds=0.4)
    with client_for(sell, timeout=0.1) as client, pytest.raises(httpx.ReadTimeout):
        client.post("/v2/notes", json=note_body("lead", lead["id"], "late"))
    assert sell.notes == []
    assert sell.wait_idle(timeout=3)
    assert [n["content"] for n in sell.notes] == ["late"]


def test_keep_alive_uses_one_connection(sell):
    with client_for(sell) as client:
        for _ in range(5):
            assert client.get("/v2/users/self").status_code == 200
    assert len({r.client for r in sell.requests}) == 1


def test_close_does_not_wait_for_slow_answers_or_idle_connections():
    fake = FakeSell().start()
    lead = fake.add_lead(last_name="Roe")
    fake.fail_next("slow", seconds=30)
    with client_for(fake, timeout=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get(f"/v2/leads/{lead['id']}")
        began = time.monotonic()
        fake.close()
        assert time.monotonic() - began < 3
        with pytest.raises(httpx.TransportError):
            client.get("/v2/users/self")
    fake.close()  # twice is fine
