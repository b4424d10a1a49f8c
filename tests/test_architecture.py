"""The project's import graph: no cycles, no private modules across packages, reports off data code.

Read from the source with :mod:`ast` (every import statement, at module level or inside a
function), so a lazy import that would close a cycle counts as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmark", "methods", "datasets")


def _modules(root: Path) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _graph(root: Path) -> dict[str, set[str]]:
    """``{module: modules of the project it imports}``."""
    modules = _modules(root)

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names if alias.name.split(".")[0] in PACKAGES}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.split(".")[0] in PACKAGES:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    imported.add(full if full in modules else node.module)
        graph[name] = {m for m in map(owner, imported) if m is not None and m != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _is_private(module: str) -> bool:
    return any(part.startswith("_") and part not in ("__init__", "__main__") for part in module.split("."))


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return _graph(ROOT)


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_lazy_imports(graph):
    # benchmark.tools.memory imports the synthetic cohort inside a function
    assert "datasets.synthetic_psg.edf" in graph["benchmark.tools.memory"]


def test_no_import_cycle(graph):
    assert _cycles(graph) == []


def test_no_module_imports_a_private_module_of_another_package(graph):
    crossing = [
        (module, imported) for module, imports in graph.items() for imported in imports
        if _is_private(imported) and imported.rpartition(".")[0] != module.rpartition(".")[0]
    ]
    assert crossing == []


def test_reports_and_evaluation_import_no_data_code(graph):
    direct = {
        module: sorted(m for m in imports if m.startswith("datasets"))
        for module, imports in graph.items()
        if module.startswith(("benchmark.report", "benchmark.evaluation"))
    }
    assert {module: found for module, found in direct.items() if found} == {}


def test_method_discovery_skips_the_toolkits():
    import methods

    registered = methods.discover()
    assert not any(cls.__module__.startswith(("methods.nn", "methods.decomposition_tools")) for cls in registered.values())
    assert {"meae", "fastica"} <= set(registered)


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for imported in graph.get(todo.pop(), ()):
            if imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return seen


def test_reachable_follows_imports_of_imports():
    assert _reachable({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a"}}, "a") == {"b", "c"}


def test_the_report_package_reaches_no_suite_and_no_data_code(graph):
    # Reports read the store only: not even through an import of an import may they reach a
    # suite (which would let them reopen data) or the data packages.
    reached = {
        module: sorted(m for m in _reachable(graph, module) if m.startswith(("datasets", "benchmark.suites")))
        for module in graph if module.startswith("benchmark.report")
    }
    assert {module: found for module, found in reached.items() if found} == {}


def test_the_report_package_never_asks_the_method_registry(graph):
    # What a method declares (kind, supervision, ...) is in its cell records; the registry is
    # the ``methods`` package itself.
    asking = sorted(module for module, imports in graph.items() if module.startswith("benchmark.report") and "methods" in imports)
    assert asking == []
