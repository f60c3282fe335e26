"""The code stack stays a stack: transforms <- resources <- assets <- flowehr_pipelines <- bench.

Read from the source with ``ast`` (nothing is imported), so the check covers imports
inside functions too. A package may import its own or lower packages only, and no two
files may import each other, directly or round a longer loop. Imports guarded by
``if TYPE_CHECKING:`` count: a type-only circle is still a circle to a reader.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("transforms", "resources", "assets", "flowehr_pipelines", "bench")
LEVEL = {package: level for level, package in enumerate(LAYERS)}
MAX_MODULE_LINES = 500


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the layered packages, by dotted name (a package by its own name)."""
    modules: dict[str, Path] = {}
    for package in LAYERS:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _imported_names(path: Path, name: str) -> Iterator[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # ``from package import module`` imports the module, not the package; any
            # other name resolves to the module that holds it (see import_graph).
            yield from (f"{module}.{alias.name}" for alias in node.names)


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (resolved to the longest known name)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for imported in set(_imported_names(path, name)):
            if imported.split(".")[0] not in LEVEL:
                continue
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def upward_imports(graph: Mapping[str, set[str]]) -> list[str]:
    """``a -> b`` for every import of a higher layer's module."""
    return sorted(
        f"{source} -> {target}"
        for source, targets in graph.items()
        for target in targets
        if LEVEL[target.split(".")[0]] > LEVEL[source.split(".")[0]]
    )


def import_circles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected sets of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                members.append(member)
                if member == node:
                    break
            if len(members) > 1:
                circles.append(sorted(members))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(circles)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(module_files())


def test_no_package_imports_a_higher_layer(graph: dict[str, set[str]]) -> None:
    assert upward_imports(graph) == []


def test_no_two_files_import_each_other(graph: dict[str, set[str]]) -> None:
    assert import_circles(graph) == []


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {
        name: len(path.read_text(encoding="utf-8").splitlines())
        for name, path in module_files().items()
    }
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_the_check_sees_an_upward_import_and_a_circle(tmp_path: Path) -> None:
    """The checks can fail: a tree with both faults is caught."""
    for package in LAYERS:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "resources" / "low.py").write_text("def f():\n    from assets.high import g\n")
    (tmp_path / "assets" / "high.py").write_text("from assets import other\n")
    (tmp_path / "assets" / "other.py").write_text("from assets.high import x\n")
    fake = import_graph(module_files(tmp_path))
    assert upward_imports(fake) == ["resources.low -> assets.high"]
    assert import_circles(fake) == [["assets.high", "assets.other"]]
