"""The package layers follow the data (issue 21): errors/files < config < problem < policy < sandbox < sdpo < run < grid
< report < cli. No module imports a higher layer, and no two modules import each other, directly or round a longer
circle. Every `import` counts, at module level or inside a function (a lazy import is still a dependency).

problem/importers/ is a layer of its own above sandbox: an importer checks what it converts by judging the reference
solution (and mutants) in the sandbox, so it needs the sandbox, while the sandbox needs the problem schema below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "sdpo_ttt"
LAYERS = ("errors", "files", "config", "problem", "policy", "sandbox", "problem.importers", "sdpo", "run", "grid", "report", "cli")
RANK = {name: 0 for name in ("errors", "files")} | {name: i for i, name in enumerate(LAYERS) if i >= 2}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The sdpo_ttt modules that `name` imports; `from pkg import sub` counts as importing pkg.sub when sub is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[1:3] == ["problem", "importers"]:
        return "problem.importers"
    return parts[1] if len(parts) > 1 else None  # the root package (__version__) sits below every layer


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(graph.items()):
        low = _layer(module)
        for target in sorted(targets):
            high = _layer(target)
            if high is not None and (low is None or RANK[high] > RANK[low]):
                bad.append(f"{module} -> {target}")
    return bad


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_package_is_a_known_layer() -> None:
    layers = {_layer(m) for m in _graph()} - {None}
    assert layers <= set(LAYERS), f"packages with no place in the layers: {sorted(layers - set(LAYERS))}"


def test_no_module_imports_a_higher_layer() -> None:
    assert upward_imports(_graph()) == []


def test_no_import_circle() -> None:
    assert circles(_graph()) == []


def test_the_checks_see_circles_and_upward_imports() -> None:
    toy = {"sdpo_ttt.config.tree": {"sdpo_ttt.run.strategies"}, "sdpo_ttt.run.strategies": {"sdpo_ttt.sdpo.update"},
           "sdpo_ttt.sdpo.update": {"sdpo_ttt.run.strategies"}}
    assert upward_imports(toy) == ["sdpo_ttt.config.tree -> sdpo_ttt.run.strategies", "sdpo_ttt.sdpo.update -> sdpo_ttt.run.strategies"]
    assert circles(toy) == [["sdpo_ttt.run.strategies", "sdpo_ttt.sdpo.update"]]


def test_function_level_imports_count(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from sdpo_ttt.run import loop\n    import sdpo_ttt.grid.plan\n")
    known = {"sdpo_ttt.run", "sdpo_ttt.run.loop", "sdpo_ttt.grid.plan"}
    assert _imports("sdpo_ttt.sdpo.m", source, known) == {"sdpo_ttt.run.loop", "sdpo_ttt.grid.plan"}
