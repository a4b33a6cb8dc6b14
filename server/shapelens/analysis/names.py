"""Resolving dotted names through a file's imports: `nn.Linear` → `torch.nn.Linear`,
`F.gelu` → `torch.nn.functional.gelu`, `D` (from `from torch.nn import Dropout as D`) → `torch.nn.Dropout`.

Pure AST and cached per tree, so the static rules and model discovery stay fast.
(Used by discover.py as `qualified_name(tree, expr)`; keep that signature.)
"""

from __future__ import annotations

import ast
from weakref import WeakKeyDictionary

_IMPORTS: WeakKeyDictionary[ast.Module, dict[str, str]] = WeakKeyDictionary()


def import_map(tree: ast.Module) -> dict[str, str]:
    """Local name → the dotted name it stands for, from every import statement in the file."""
    cached = _IMPORTS.get(tree)
    if cached is not None:
        return cached
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    _IMPORTS[tree] = names
    return names


def dotted(expr: ast.expr) -> str | None:
    """`a.b.c` for a chain of attributes on a name, else None."""
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name):
        return None
    parts.append(expr.id)
    return ".".join(reversed(parts))


def qualified_name(tree: ast.Module, expr: ast.expr) -> str | None:
    """The canonical dotted name `expr` refers to through the imports, or None if it is not imported.

    Submodule paths are folded the way torch re-exports them (`torch.nn.modules.linear.Linear` and
    `torch.nn.Linear` both give `torch.nn.Linear`).
    """
    name = dotted(expr)
    if name is None:
        return None
    head, _, rest = name.partition(".")
    base = import_map(tree).get(head)
    if base is None:
        return None
    full = f"{base}.{rest}" if rest else base
    if full.startswith("torch.nn.modules."):
        full = "torch.nn." + full.rsplit(".", 1)[-1]
    return full
