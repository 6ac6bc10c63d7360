"""generate -> sync through the CLI: every chat of a synthetic export accounted as intended."""

from __future__ import annotations

import json

from click.testing import CliRunner

from etl.cli import cli


def test_generated_exports_sync_to_their_expected_outcomes(tmp_path):
    runner = CliRunner()
    out = tmp_path / "exports"
    made = runner.invoke(
        cli, ["generate", "--out", str(out), "--chats", "1500", "--records", "800", "--seed", "7"]
    )
    assert made.exit_code == 0, made.output
    manifest = json.loads((out / "manifest.json").read_text())
    db = f"sqlite:///{tmp_path / 'g.db'}"
    result = runner.invoke(
        cli,
        ["--db", db, "sync", "--chats", str(out / "chat"), "--sell", str(out / "sell"), "--json"],
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["accounting"]["balanced"] is True
    expected = {k: v for k, v in manifest["expected_outcomes"].items() if v}
    assert {k: v for k, v in report["outcomes"].items() if v} == expected
    again = runner.invoke(cli, ["generate", "--out", str(out), "--chats", "10"])
    assert again.exit_code == 2 and "--overwrite" in again.stderr
