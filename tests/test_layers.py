"""The house's floors, asserted on the code's own imports: `core` imports nothing of ours; `trace` (what runs
in the worker process, with torch) and `analysis` (what runs in the editor's or the CLI's process, never
torch) import only `core` and themselves, never each other; `lsp` sits on `analysis`; `cli` on top. No
module imports another that imports it back, directly or around a circle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "server" / "shapelens"
ALLOWED = {
    "core": {"core"},
    "trace": {"core", "trace"},
    "analysis": {"core", "analysis"},
    "lsp": {"core", "analysis", "lsp"},
    "cli": {"core", "analysis", "lsp", "cli"},
    "__init__": set(),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every `shapelens...` module the file imports, at any depth (lazy imports in functions count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("shapelens")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("shapelens"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists()
                found.add(candidate if is_module else node.module)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {i for i in imports_of(path) if i in modules and i != name} for name, path in modules.items()}


def floor(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_each_floor_imports_only_the_floors_below() -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        for target in targets
        if floor(target) not in ALLOWED[floor(module)] and target != "shapelens"
    ]
    assert wrong == []


def test_no_import_circles() -> None:
    edges = graph()
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                circles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_the_graph_is_read() -> None:
    """The checks above are only worth something if the imports are found at all."""
    edges = graph()
    assert "shapelens.core.findings" in edges["shapelens.core.source"]
    assert "shapelens.analysis.worker_client" in edges["shapelens.analysis.engine"]
    assert "shapelens.core.syntax" in edges["shapelens.trace.child"]
