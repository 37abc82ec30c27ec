"""The package's layout: one folder per framework under ``backends/`` with every part the core
dispatches to, the wheel ships those folders, and the modules import each other without
cycles (function-level imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers import FRAMEWORKS

import xinit.checkpoints as ckpt
from xinit.backends import info, part

ROOT = Path(__file__).resolve().parents[2]

KNOWN_CYCLES: tuple[set[str], ...] = ()  # none: keep it so


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_every_framework_has_its_light_parts(name):
    light = info(name)
    assert isinstance(light.REQUIRES, str) and isinstance(light.EXTRA, str)
    fmt = part(name, "checkpoint")
    assert fmt.SUFFIXES and all(s.startswith(".") for s in fmt.SUFFIXES)
    assert callable(fmt.read) and callable(fmt.write)


def test_checkpoint_table_is_built_from_the_frameworks():
    assert (*FRAMEWORKS, "safetensors") == ckpt.FORMATS
    assert {**{f: f for f in FRAMEWORKS}, "safetensors": "neutral"} == ckpt.CONVENTION
    for name in FRAMEWORKS:
        for suffix in part(name, "checkpoint").SUFFIXES:
            assert ckpt.SUFFIXES[suffix] == name
            assert ckpt.detect_format(f"model{suffix}") == name
    assert set(ckpt.SUFFIXES.values()) == set(ckpt.FORMATS)


def test_the_wheel_lists_every_package():
    """Every folder with an ``__init__.py`` under xinit/ and backends/ ships in the wheel."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = set(project["tool"]["setuptools"]["packages"])
    folders = {p.parent.name for p in (ROOT / "backends").glob("*/__init__.py")}
    assert folders == {*FRAMEWORKS, "common"}  # one folder per framework, and the shared one
    found = {
        ".".join((pkg, *init.parent.relative_to(base).parts))
        for base, pkg in ((ROOT / "xinit", "xinit"), (ROOT / "backends", "xinit.backends"))
        for init in base.rglob("__init__.py")
    }
    assert found == packages


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package), for xinit/ and backends/ (xinit.backends)."""
    mods = {}
    for base, pkg in ((ROOT / "xinit", "xinit"), (ROOT / "backends", "xinit.backends")):
        for f in base.rglob("*.py"):
            parts = [pkg, *f.relative_to(base).with_suffix("").parts]
            is_pkg = parts[-1] == "__init__"
            mods[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return mods


def _imports(mods) -> dict[str, set[str]]:
    """Each module's imports of the others, at any depth of the file (not only the top)."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, (f, is_pkg) in mods.items():
        here = m if is_pkg else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                    base = f"{anchor}.{base}" if base else anchor
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != m:
                    edges[m].add(t)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(comp)
    return found


def test_no_new_import_cycles():
    mods = _modules()
    assert {"xinit.checkpoints", "xinit.backends.torch.checkpoint"} <= set(mods)
    edges = _imports(mods)
    assert "xinit.checkpoints" in edges["xinit.backends.paddle.checkpoint"]  # the scan sees it
    new = [sorted(c) for c in _cycles(edges) if not any(c <= known for known in KNOWN_CYCLES)]
    assert not new, f"import cycles: {new}"


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
