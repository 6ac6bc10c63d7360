"""Fixtures of the integration tests."""

from __future__ import annotations

import pytest

from etl.generate import generate


@pytest.fixture(scope="session")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("generated")
    manifest = generate(out, chats=400, records=200, seed=3, pages_size=150, workers=1)
    return out / "chat", out / "sell", manifest
