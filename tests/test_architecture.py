"""The one-way house: imports point from the command line down to the base modules, never back.

Read from the source (``ast``), so a lazy import inside a function counts as much as
one at the top of a file. ARCHITECTURE.md states the rule these tests hold.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "pipeline"

# Layer of each top-level part of the package: a module may import its own layer or lower ones.
LAYERS = {
    "paths": 0, "timeutil": 0, "venues": 0, "settings": 1, "registry": 1, "markets": 2,
    "model": 3, "backtest": 4,
    "store": 3, "collect": 4,
    "render": 5, "snapshots": 5,
    "steps": 6, "build": 7, "commands": 8, "cli": 9,
}
# Parts that do no I/O: they may not import the parts that do.
PURE = {"model", "backtest"}
IO_PARTS = {"store", "collect", "render", "snapshots", "steps", "build", "commands", "cli"}
MAX_LINES = 600
SOFT_MAX_LINES = 450


def _modules() -> dict[str, Path]:
    out = {}
    for f in PKG.rglob("*.py"):
        rel = f.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Absolute names of the pipeline modules ``name`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pipeline")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not base.startswith("pipeline"):
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.add(sub if sub in MODULES else base)
    return found - {name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_part_has_a_layer():
    assert {_part(m) for m in MODULES if _part(m)} <= set(LAYERS)


def test_no_library_module_imports_the_command_layer():
    bad = [(m, i) for m, imps in GRAPH.items() if _part(m) not in ("commands", "cli")
           for i in imps if _part(i) in ("commands", "cli")]
    assert not bad, f"library modules import the command layer: {bad}"


def test_imports_point_down_the_layers():
    bad = [(m, i) for m, imps in GRAPH.items() if _part(m) for i in imps
           if _part(i) and LAYERS[_part(i)] > LAYERS[_part(m)]]
    assert not bad, f"imports pointing up the layers: {bad}"


def test_pure_stages_do_no_io():
    bad = [(m, i) for m, imps in GRAPH.items() if _part(m) in PURE for i in imps if _part(i) in IO_PARTS]
    assert not bad, f"pure stages import I/O stages: {bad}"


def test_no_import_cycle():
    # Package __init__ files import nothing here, so module-level edges are the whole graph.
    seen, stack, cycles = set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(stack[stack.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for i in GRAPH.get(m, ()):
            if i in GRAPH:
                visit(i)
        stack.pop()

    for m in sorted(GRAPH):
        visit(m)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size(name):
    """No module over 600 lines; one over 450 says in its docstring why it is one piece."""
    path = MODULES[name]
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(ROOT)} has {n} lines"
    if n > SOFT_MAX_LINES:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        assert "one piece" in doc.lower() or "one module" in doc.lower(), (
            f"{path.relative_to(ROOT)} has {n} lines: its docstring must say why it is one piece")


def test_the_checker_sees_a_forbidden_import(tmp_path):
    """The graph reader is not blind: a lazy import of the command layer inside a function is found."""
    f = tmp_path / "probe.py"
    f.write_text("def f():\n    from pipeline.commands.build import run\n    from ..store import db\n")
    found = _imports("pipeline.model.probe", f)
    assert "pipeline.commands.build" in found and "pipeline.store.db" in found
