"""The package reads in data-flow order: these tests hold its import graph to that order.

Stages, earliest first; a module may import its own stage and the stages before it, never a later
one, and no two modules may import each other through any chain (a cycle). Lazy imports inside
functions count: they are arrows all the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "splitaudit"

# (stage, module prefixes); "splitaudit" itself is the package __init__ (the public API, the top).
STAGES = [
    ("leaves", ["errors", "_version", "_types", "_text", "_validate", "_optional", "_parallel",
                "_plainpng", "distributed"]),
    ("load", ["dataset", "imageio", "sources"]),
    ("fingerprints", ["fingerprints"]),
    ("search", ["search", "neighbors"]),
    ("duplicates", ["duplicates"]),
    ("checks", ["checks"]),
    ("resplit", ["_folds", "resplit"]),
    ("retrain", ["retrain"]),
    ("explain", ["explain"]),
    ("report", ["report"]),        # renders the result objects it is given; imports no orchestrator
    ("pipeline", ["scan", "audit", "index"]),
    ("shell", ["_terminal", "cli", "__main__", ""]),
]
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
LONG_REASON = "Long because"   # a longer function says why in its docstring


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom, modules: dict) -> set[str]:
    if node.level:
        base = importer.split(".") if is_package else importer.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("splitaudit"):
        return set()
    found = set()
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        found.add(sub if sub in modules else target)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the splitaudit modules it imports (at the top or inside functions)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                targets |= _resolve(name, path.name == "__init__.py", node, modules)
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("splitaudit")}
        graph[name] = {t for t in targets if t != name and t in modules}
    return graph


def stage_of(module: str) -> int:
    rest = module.split(".", 1)[1] if "." in module else ""
    for rank, (_, prefixes) in enumerate(STAGES):
        for prefix in prefixes:
            if rest == prefix or (prefix and rest.startswith(prefix + ".")):
                return rank
    raise AssertionError(f"{module} belongs to no stage: add it to STAGES in {Path(__file__).name}")


def test_every_module_has_a_stage():
    for module in _modules():
        stage_of(module)


def test_no_import_runs_from_an_earlier_stage_to_a_later_one():
    upward = [f"{m} ({STAGES[stage_of(m)][0]}) -> {t} ({STAGES[stage_of(t)][0]})"
              for m, targets in import_graph().items() for t in sorted(targets)
              if stage_of(t) > stage_of(m)]
    assert not upward, "imports against the data flow:\n" + "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_import_graph_has_no_cycle():
    graph = import_graph()
    # A package's __init__ re-exporting its submodules is not a cycle with them unless a submodule
    # imports the package back.
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_planted_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_is_too_long():
    long = {m: n for m, p in _modules().items()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function without its docstring (numpydoc docstrings are long on purpose)."""
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if ast.get_docstring(node) is not None and len(node.body) > 1:
        lines -= node.body[1].lineno - first.lineno
    return lines


def test_no_function_is_too_long_without_a_stated_reason():
    long = []
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = _code_lines(node)
                doc = ast.get_docstring(node) or ""
                if lines > MAX_FUNCTION_LINES and LONG_REASON not in doc:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert not long, (f"functions over {MAX_FUNCTION_LINES} lines whose docstring does not say "
                      f"'{LONG_REASON} ...':\n" + "\n".join(long))


@pytest.mark.parametrize("module", ["splitaudit.duplicates.core", "splitaudit.checks.base"])
def test_stage_order_is_read_from_the_table(module):
    assert STAGES[stage_of(module)][0] in {"duplicates", "checks"}
