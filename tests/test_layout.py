"""Layout rules beside the style test (docs/decisions.md, "Layout rules"): every module of the package is at most
``MAX_LINES`` long, no import circle exists between its modules (imports inside functions count), and every
import points down the floors of ``FLOORS`` (a new top-level module must be given its floor here)."""
from __future__ import annotations

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "ganno_jax"
MAX_LINES = 350
#: Floor of each top-level module or subpackage, bottom (0) to top; an import may point to its own floor or
#: lower, never higher.
FLOORS = {
    "checks": 0, "registry": 0,
    "data": 1, "checkpoint": 1, "distributed": 1, "files": 1, "tracking": 1,
    "tasks": 2,
    "env": 3,
    "baselines": 4,
    "agents": 5,
    "runs": 6, "scales": 6, "run_log": 6, "learned": 6,
    "sgd_scheduler": 7,
    "evaluation": 8,
    "training": 9, "evaluate": 9, "flags": 9,
    "__init__": 10,
    "bench": 11, "demo": 11, "experiment": 11,
    "cli": 12,
}


def _modules() -> dict[str, str]:
    """Dotted module name -> file path, for every module of the package (``__init__`` files as the package)."""
    out = {}
    for folder, _, files in os.walk(os.path.join(ROOT, PACKAGE)):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[name.removesuffix(".__init__")] = path
    return out


def _imports(modules: dict[str, str]) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (at any depth of its code), resolved to known modules."""
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                submodules = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
                candidates = submodules or [node.module]  # ``from pkg import submodule`` imports the submodule
            else:
                continue
            for target in candidates:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def _floor_key(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module of ``graph`` (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_every_module_is_at_most_max_lines():
    long = {name: n for name, path in _modules().items() if (n := len(open(path).read().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"


def test_no_import_circle():
    """Edges into packages' ``__init__`` re-export faces are left out (as ``shared/tools/import_cycles.py`` does)."""
    modules = _modules()
    packages = {name for name, path in modules.items() if path.endswith("__init__.py")}
    graph = {m: {t for t in targets if t not in packages} for m, targets in _imports(modules).items()}
    assert _circles(graph) == []


def test_every_import_points_down_the_floors():
    graph = _imports(_modules())
    unplaced = sorted({_floor_key(m) for m in graph} - set(FLOORS))
    assert not unplaced, f"give these top-level modules a floor in FLOORS: {unplaced}"
    upward = sorted((m, t) for m, targets in graph.items() for t in targets
                    if FLOORS[_floor_key(t)] > FLOORS[_floor_key(m)])
    assert not upward, f"imports pointing up the floors: {upward}"
