"""The house's rules of direction: imports go down, never round.

Every ``import`` of a project module counts, at the top of a file or inside a function (a lazy
import is still a dependency). Layers, bottom up:

- the bottom: ``etl.vocab`` (imports nothing of the project), ``etl.contracts`` (only the
  vocabulary), ``etl.errors``, ``etl.text``, ``etl.hashing``, ``etl.config``, ``etl.logs``,
  ``etl.procs``;
- ``etl.extract``, ``etl.transform``, ``etl.load``, ``etl.report``: each imports only the bottom
  and itself (the loader applies a plan without the planner; the report names outcomes without
  the loader);
- ``etl.stage``: the run's scratch space, over the readers;
- ``etl.monitor``: alerts, health, metrics and pings, over the store;
- ``etl.run``: the runner, over all of them;
- the faces: ``etl.readside``, ``etl.pull``, ``etl.generate``, ``etl.cli``, ``jobs``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

BOTTOM = {"etl", "etl.vocab", "etl.contracts", "etl.errors", "etl.text", "etl.hashing", "etl.pacing",
          "etl.config", "etl.logs", "etl.procs"}  # fmt: skip
# package -> the packages (besides the bottom and itself) it may import
ALLOWED = {
    "etl.extract": set(),
    "etl.transform": set(),
    "etl.load": set(),
    "etl.report": set(),
    "etl.stage": {"etl.extract"},
    "etl.monitor": {"etl.load"},
    "etl.run": {
        "etl.extract",
        "etl.transform",
        "etl.load",
        "etl.report",
        "etl.stage",
        "etl.monitor",
    },
}


def _modules() -> dict[str, Path]:
    found = {}
    for base in ("etl", "jobs"):
        for path in sorted((ROOT / base).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Project modules ``name`` imports anywhere in its file (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> str | None:
    for package in ALLOWED:
        if module == package or module.startswith(package + "."):
            return package
    return None


def test_the_graph_sees_lazy_imports():
    """(A check of the check: ``etl.cli`` imports the runner inside a function only.)"""
    assert "etl.run" in GRAPH["etl.cli"]
    assert "etl.vocab" in GRAPH["etl.load.apply"]


def test_the_vocabulary_imports_nothing_of_the_project():
    assert GRAPH["etl.vocab"] == set()
    assert GRAPH["etl.contracts"] <= {"etl.vocab"}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m in BOTTOM and m != "etl"))
def test_the_bottom_imports_only_the_bottom(module):
    assert GRAPH[module] <= BOTTOM, GRAPH[module] - BOTTOM


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m)))
def test_layers_import_only_downward(module):
    own = _layer(module)
    allowed = BOTTOM | {own} | ALLOWED[own]
    wrong = {
        target for target in GRAPH[module] if target not in BOTTOM and _layer(target) not in allowed
    }
    assert not wrong, f"{module} imports {sorted(wrong)}"


def test_no_module_imports_a_face():
    faces = {"etl.cli", "etl.readside", "etl.generate", "etl.pull", "jobs"}
    for module, targets in GRAPH.items():
        if _layer(module) or module in BOTTOM:
            hits = {t for t in targets if any(t == f or t.startswith(f + ".") for f in faces)}
            assert not hits, f"{module} imports {sorted(hits)}"


def test_no_circle_between_modules():
    """No module reaches itself through its imports (a package's ``__init__`` re-exporting its
    own modules is the package, not a circle)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def edges(module: str) -> set[str]:
        # a module imported through its package's __init__ is not a return to the package
        return {t for t in GRAPH[module] if not module.startswith(t + ".")}

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in edges(module):
            if state.get(target) == 1:
                circle = stack[stack.index(target) :] + [target]
                pytest.fail("import circle: " + " -> ".join(circle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_no_room_too_large_to_hold_in_mind():
    """The largest class a few hundred lines (the runner's was 750)."""
    for name, path in MODULES.items():
        if name == "etl.generate":  # the test and benchmark export generator, not the product
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                lines = node.end_lineno - node.lineno + 1
                assert lines <= 300, f"{name}.{node.name} is {lines} lines"
