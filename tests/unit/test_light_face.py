"""The face starts light: importing the CLI, ``--help``, ``--version`` and every command's
``--help`` load none of the heavy libraries (pandas, numpy, SQLAlchemy; nor alembic, httpx,
rich). Each check runs in a fresh interpreter, since this one has them loaded already."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("pandas", "numpy", "sqlalchemy", "alembic", "httpx", "rich")

# Prints, as the last line on stderr, the exit code and which heavy modules were imported.
_REPORT = """
import json, sys
def loaded():
    return sorted({name.partition(".")[0] for name in sys.modules} & set(HEAVY))
"""


def _python(code: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{_REPORT}\n{code}"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    *_, last = proc.stderr.splitlines() or [""]
    return {**json.loads(last), "stdout": proc.stdout}


def test_importing_the_cli_loads_no_heavy_library():
    result = _python("import etl.cli\nprint(json.dumps({'loaded': loaded()}), file=sys.stderr)")
    assert result["loaded"] == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--help"], "Usage: chatsell [OPTIONS] COMMAND"),
        (["--version"], "chatsell, version"),
        (["sync", "--help"], "Usage: chatsell sync [OPTIONS]"),
    ],
)
def test_python_m_etl_face_loads_no_heavy_library(argv, expected):
    """``python -m etl ARGS`` as runpy runs it; SystemExit is caught to look at sys.modules."""
    result = _python(
        f"""
import runpy
sys.argv = ["chatsell", *{argv!r}]
try:
    runpy.run_module("etl", run_name="__main__", alter_sys=True)
    code = 0
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
print(json.dumps({{"code": code, "loaded": loaded()}}), file=sys.stderr)
"""
    )
    assert result["code"] in (0, None)
    assert expected in result["stdout"]
    assert result["loaded"] == []


def test_every_commands_help_loads_no_heavy_library():
    """Every command and subcommand's --help, in one interpreter: whatever one of them imports
    stays in sys.modules, so the set at the end covers them all."""
    result = _python(
        """
import click
from etl.cli import cli

def paths(group, prefix=()):
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from paths(command, (*prefix, name))

codes = {}
for path in paths(cli):
    try:
        cli.main([*path, "--help"], prog_name="chatsell", standalone_mode=True)
    except SystemExit as exc:
        codes[" ".join(path)] = exc.code
sys.stdout.flush()
print(json.dumps({"codes": codes, "loaded": loaded()}), file=sys.stderr)
"""
    )
    assert {"sync", "backfill", "report", "runs", "feed", "db", "db upgrade"} <= set(
        result["codes"]
    )
    assert set(result["codes"].values()) == {0}, result["codes"]
    assert result["loaded"] == []
