"""The real payloads in ../shared/samples/ read as they are, with zero rejects."""

import os
from pathlib import Path

import pytest

from etl.extract.chats import read_batches
from etl.extract.files import discover
from etl.extract.sell import read_sell

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"


@pytest.fixture
def samples() -> Path:
    if not SAMPLES.is_dir():
        if os.environ.get("CI", "").lower() in ("1", "true"):
            pytest.fail(f"{SAMPLES} is missing in CI")
        pytest.skip(f"{SAMPLES} not present (CI has it)")
    return SAMPLES


def test_chat_samples(samples):
    batches = list(read_batches(discover(samples / "chat"), 100))
    rejects = [r for b in batches for r in b.rejects]
    assert rejects == []
    chats = batches[0].chats.set_index("chat_id")
    assert set(chats.index) == {"1704.2314815.QHgVx6SOrRuSx", "2104.10414779.SVhDCJ9flq79a"}
    live = chats.loc["1704.2314815.QHgVx6SOrRuSx"]
    assert (live["kind"], live["visitor_email"], live["message_count"]) == ("chat", "", 19)
    offline = chats.loc["2104.10414779.SVhDCJ9flq79a"]
    assert (
        offline["kind"],
        offline["visitor_phone"],
        offline["transcript"].endswith("Jiny: Hi there!"),
    ) == (
        "offline_msg",
        "+32178763521",
        True,
    )
    assert batches[0].agents["agent_id"].tolist() == ["4123471"]
    assert batches[0].departments["department_id"].tolist() == ["1817719521"]


def test_sell_samples(samples):
    result = read_sell(discover(samples / "sell"))
    assert result.rejects == []
    frames = result.frames
    assert sorted(frames["leads"]["id"]) == [1, 2, 100, 200, 300]
    assert sorted(frames["contacts"]["id"]) == [1, 2, 100, 200]
    assert frames["contacts"].set_index("id").loc[100, "is_organization"]
    assert frames["users"].iloc[0]["team_name"] == "Uzi's team"
    assert sorted(frames["notes"]["resource_id"]) == [159833586, 204996216]
