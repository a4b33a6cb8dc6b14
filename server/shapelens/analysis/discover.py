"""Finding the models of a file: `nn.Module` subclasses (directly, through a class of the same file, or
through a base class defined elsewhere, resolved with jedi) and `nn.Sequential(...)` built at module level.

Discovery is static and may over-approximate where jedi cannot decide (a base from a third-party package);
the trace child checks `issubclass(cls, nn.Module)` before tracing, so a wrong guess costs nothing.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from functools import lru_cache

from shapelens.analysis.names import qualified_name
from shapelens.core.source import Source, parse, read_source_or_empty

MODULE_BASES = ("torch.nn.",)  # any torch.nn class as a base (Module, Sequential, ModuleList, ...)


@dataclass
class Model:
    name: str  # class name, or the variable a module-level Sequential is bound to
    kind: str  # "class" | "sequential"
    node: ast.ClassDef | ast.Assign
    forward: ast.FunctionDef | None = None
    init: ast.FunctionDef | None = None


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    for stmt in cls.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name == name:
            return stmt
    return None


def find_models(source: Source, root: str) -> list[Model]:
    classes = {n.name: n for n in source.tree.body if isinstance(n, ast.ClassDef)}
    verdicts: dict[str, bool] = {}

    def is_module(cls: ast.ClassDef, depth: int = 0) -> bool:
        if cls.name in verdicts:
            return verdicts[cls.name]
        verdicts[cls.name] = False  # cycles
        result = any(_base_is_module(source, base, classes, is_module, root, depth) for base in cls.bases)
        verdicts[cls.name] = result
        return result

    models: list[Model] = []
    for node in source.tree.body:
        if isinstance(node, ast.ClassDef) and is_module(node):
            models.append(Model(node.name, "class", node, _method(node, "forward"), _method(node, "__init__")))
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Call)
            and qualified_name(source.tree, node.value.func) == "torch.nn.Sequential"
        ):
            models.append(Model(node.targets[0].id, "sequential", node))
    return models


def _base_is_module(source, base, classes, is_module, root, depth) -> bool:  # type: ignore[no-untyped-def]
    qualified = qualified_name(source.tree, base)
    if qualified and qualified.startswith(MODULE_BASES):
        return True
    if isinstance(base, ast.Name) and base.id in classes:
        return bool(is_module(classes[base.id], depth + 1))
    if depth > 4 or not isinstance(base, ast.Name | ast.Attribute):
        return False
    return _jedi_base_is_module(source.path, source.text, root, base.end_lineno, (base.end_col_offset or 1) - 1)


def _jedi_base_is_module(path: str, text: str, root: str, line: int | None, column: int) -> bool:
    """Follow a base class defined elsewhere with jedi: a project file is parsed and checked in turn; a
    class from an installed package counts when jedi places it under torch.nn, and otherwise is kept as a
    candidate only when jedi cannot see it at all (the trace then decides)."""
    import jedi

    try:
        script = jedi.Script(code=text, path=path, project=_project(root))
        names = script.goto(line, column, follow_imports=True)
    except Exception:
        return False
    for name in names:
        full = name.full_name or ""
        if full.startswith(MODULE_BASES):
            return True
        module_path = str(name.module_path or "")
        if name.type == "class" and module_path.endswith(".py") and _inside(module_path, root):
            return _class_in_file_is_module(module_path, name.name, root)
        if name.type == "class" and "site-packages" in module_path:
            return _installed_class_is_module(name)
    return False


def _installed_class_is_module(name) -> bool:  # type: ignore[no-untyped-def]
    """`transformers.GPT2Model` and friends: walk the class's bases as jedi infers them."""
    try:
        seen = 0
        stack = [name]
        while stack and seen < 40:
            current = stack.pop()
            seen += 1
            if (current.full_name or "").startswith(MODULE_BASES):
                return True
            for sig_base in current._name.infer():  # jedi's class value
                for base_set in sig_base.py__bases__():
                    for base in base_set.infer():
                        full = base.py__name__()
                        module = base.get_root_context().py__name__() or ""
                        if f"{module}.{full}".startswith(MODULE_BASES):
                            return True
                        stack.append(_Wrapped(base))
    except Exception:
        return True  # cannot tell: let the trace decide
    return False


class _Wrapped:
    """Adapts a jedi value to the (full_name, _name.infer()) shape `_installed_class_is_module` walks."""

    def __init__(self, value) -> None:  # type: ignore[no-untyped-def]
        self._value = value
        module = value.get_root_context().py__name__() or ""
        self.full_name = f"{module}.{value.py__name__()}"
        self._name = self

    def infer(self):  # type: ignore[no-untyped-def]
        return [self._value]


def _inside(path: str, root: str) -> bool:
    path, root = os.path.abspath(path), os.path.abspath(root)
    return path.startswith(root + os.sep) and "site-packages" not in path


@lru_cache(maxsize=16)
def _project(root: str):  # type: ignore[no-untyped-def]
    import jedi

    return jedi.Project(root, added_sys_path=[root])


def _class_in_file_is_module(path: str, class_name: str, root: str) -> bool:
    parsed = parse(path, read_source_or_empty(path))
    if not isinstance(parsed, Source):
        return False
    return any(m.name == class_name and m.kind == "class" for m in find_models(parsed, root))
