"""The name-resolution model the static rules stand on: what a name or `self.<attr>` in a file may be
bound to, which class an expression builds, whether a class is an `nn.Module`, and node text by character
columns. Pure AST (jedi only through `Names`, where the file cannot tell), cached per file; nothing runs.

`Scope` is the context the one walk over the file carries (`walk.py`): the enclosing class and its `self`,
the function, whether an `if` tests `training`, isinstance narrowing.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from shapelens.analysis.edits import line_starts, offset
from shapelens.analysis.names import Names, names_for, statements, target_names
from shapelens.core.source import Source
from shapelens.core.torch_facts import (
    ACTIVATION_CLASSES,
    ACTIVATION_FUNCTIONS,
    DROPOUTS,
    LAYERS,
    MODULE_BASE,
    OTHER_MODULE_BASES,
    SELU,
)

Function = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
Def = ast.FunctionDef | ast.AsyncFunctionDef

# the last parts of every name the tables use: only these are worth a jedi look-up
JEDI_FOR = frozenset(
    name.rpartition(".")[2]
    for name in (
        *DROPOUTS, *ACTIVATION_CLASSES, *ACTIVATION_FUNCTIONS, *SELU, *LAYERS, *OTHER_MODULE_BASES,
        "torch.nn.Module", "torch.nn.Sequential", "collections.OrderedDict",
    )
)  # fmt: skip


@dataclass(frozen=True)
class Scope:
    cls: ast.ClassDef | None = None  # the class whose method we are in (for `self.x`)
    self_name: str | None = None
    method: Def | None = None  # that method
    function: Function | None = None  # the innermost function (for local names)
    top_function: Def | None = None  # the outermost def, when not in a class (SL203's scope)
    inner_class: ast.ClassDef | None = None  # the innermost class around us (SL203's scope)
    sequential: ast.Call | None = None  # the outermost nn.Sequential(...) around us (SL203's scope)
    guarded: bool = False  # inside `if ... training ...:` (the dropout already follows the mode)
    narrowed: tuple[tuple[str, str], ...] = ()  # `isinstance(name, Class)` tests around us


class FileModel:
    """One file's names and values, asked by every static check (one instance per file, shared)."""

    def __init__(self, source: Source, jedi_for: frozenset[str] = JEDI_FOR) -> None:
        self.source = source
        # jedi only where the AST cannot tell (a star import of a library, an unreadable project file)
        self.names: Names = names_for(source.tree, source.path, source.text, True, jedi_for)
        self._starts = line_starts(source.text)
        self._classes = {n.name: n for n in source.tree.body if isinstance(n, ast.ClassDef)}
        self._module_class: dict[ast.ClassDef, bool] = {}
        self._self_attrs: dict[ast.ClassDef, dict[str, list[ast.expr]]] = {}
        self._locals: dict[ast.AST, dict[str, list[ast.expr]]] = {}

    # -- text ---------------------------------------------------------------------------------------------

    def offsets(self, node: ast.AST) -> tuple[int, int]:
        span = self.source.span(node)
        text, starts = self.source.text, self._starts
        return offset(text, starts, span.line, span.column), offset(text, starts, span.end_line, span.end_column)

    def text(self, node: ast.AST) -> str:
        """The node's source text, by character columns (`ast.get_source_segment` wants byte columns,
        which `parse` has already converted)."""
        begin, end = self.offsets(node)
        return self.source.text[begin:end]

    # -- what names and values are ------------------------------------------------------------------------

    def resolve(self, node: ast.AST) -> str | None:
        return self.names.resolve(node)

    def is_module_class(self, cls: ast.ClassDef, seen: frozenset[str] = frozenset()) -> bool:
        """Whether `cls` subclasses nn.Module (directly, through a torch.nn class or a class of this file)."""
        if cls in self._module_class:
            return self._module_class[cls]
        result = False
        unknown_base = False
        for base in cls.bases:
            name = self.resolve(base)
            if name is not None and (MODULE_BASE.match(name) or name in OTHER_MODULE_BASES):
                result = True
            elif isinstance(base, ast.Name) and base.id in self._classes and base.id not in seen:
                result = self.is_module_class(self._classes[base.id], seen | {cls.name})
            elif name is None or not name.startswith("torch."):
                unknown_base = True
            if result:
                break
        if not result and unknown_base:
            # a base we cannot read (a project base class, another framework's module): a class with a
            # `forward` is a module in all but name
            result = any(isinstance(s, Def) and s.name == "forward" for s in cls.body)
        self._module_class[cls] = result
        return result

    def _self_attr_values(self, cls: ast.ClassDef) -> dict[str, list[ast.expr]]:
        """`self.<name> = <value>` anywhere in the class's methods, and class-level `name = <value>`."""
        found = self._self_attrs.get(cls)
        if found is not None:
            return found
        found = {}
        for stmt in cls.body:
            if isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    if isinstance(target, ast.Name):
                        found.setdefault(target.id, []).append(stmt.value)
            elif isinstance(stmt, Def) and stmt.args.args:
                me = stmt.args.args[0].arg
                for node in statements(stmt):
                    if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
                        continue
                    for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                        if is_attribute_of(target, me):
                            assert isinstance(target, ast.Attribute)
                            found.setdefault(target.attr, []).append(node.value)
        self._self_attrs[cls] = found
        return found

    def _attr_values(self, cls: ast.ClassDef, attr: str, seen: frozenset[str]) -> list[ast.expr] | None:
        values = self._self_attr_values(cls).get(attr)
        if values is not None:
            return values
        for base in cls.bases:  # inherited from a base class in this file
            if isinstance(base, ast.Name) and base.id in self._classes and base.id not in seen:
                values = self._attr_values(self._classes[base.id], attr, seen | {cls.name})
                if values is not None:
                    return values
        return None

    def _local_values(self, owner: ast.AST) -> dict[str, list[ast.expr]]:
        """`name = <value>` in a function's own body (not nested functions), or at module level. A name
        bound any other way (loop, import, def, tuple target) gets a `None` constant: not a layer. Only
        statements are read (a walrus inside an expression is not: reading every expression would cost
        more than that rare case is worth)."""
        found = self._locals.get(owner)
        if found is not None:
            return found
        found = {}
        stack: list[ast.AST] = list(getattr(owner, "body", []))
        unknown = ast.Constant(None)
        while stack:
            node = stack.pop()
            if isinstance(node, Def | ast.ClassDef):
                found.setdefault(node.name, []).append(unknown)
                continue
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    value = node.value if isinstance(target, ast.Name) else unknown
                    for name in target_names(target):
                        found.setdefault(name, []).append(value)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                found.setdefault(node.target.id, []).append(node.value or unknown)
            elif isinstance(node, ast.AugAssign | ast.For | ast.AsyncFor):
                for name in target_names(node.target):
                    found.setdefault(name, []).append(unknown)
            elif isinstance(node, ast.With | ast.AsyncWith):
                for name in (n for item in node.items for n in target_names(item.optional_vars)):
                    found.setdefault(name, []).append(unknown)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                for alias in node.names:
                    found.setdefault((alias.asname or alias.name).split(".")[0], []).append(unknown)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                found.setdefault(node.name, []).append(unknown)
            for name in ("body", "orelse", "finalbody", "handlers", "cases"):
                stack.extend(getattr(node, name, ()))
        self._locals[owner] = found
        return found

    def values_of(self, node: ast.expr, scope: Scope) -> list[ast.expr] | None:
        """The expressions `node` (a name or `self.x`) may have been bound to, when the file says."""
        if isinstance(node, ast.Name):
            owner = scope.function
            if isinstance(owner, Def):
                values = self._local_values(owner).get(node.id)
                if values is not None or node.id in parameters(owner):
                    return values
            return self._local_values(self.source.tree).get(node.id)
        if is_attribute_of(node, scope.self_name) and scope.cls is not None:
            assert isinstance(node, ast.Attribute)
            return self._attr_values(scope.cls, node.attr, frozenset())
        return None

    def instance_of(self, node: ast.expr, scope: Scope, depth: int = 0) -> str | None:
        """The canonical class of the object `node` evaluates to, if the file says: `nn.Dropout(0.1)`,
        `self.drop` built in `__init__`, a local `drop = nn.Dropout()`, an isinstance-narrowed name."""
        if isinstance(node, ast.Call):
            return self.resolve(node.func)
        if isinstance(node, ast.Name):
            for name, cls_name in reversed(scope.narrowed):
                if name == node.id:
                    return cls_name
        values = self.values_of(node, scope) if depth < 4 else None
        if not values:
            return None
        kinds = {self.instance_of(v, scope, depth + 1) for v in values}
        return kinds.pop() if len(kinds) == 1 else None

    def constructor(self, node: ast.expr, scope: Scope) -> ast.Call | None:
        """The one constructor call that built the object `node` names, if there is exactly one."""
        values = self.values_of(node, scope)
        return values[0] if values and len(values) == 1 and isinstance(values[0], ast.Call) else None


# -- small AST helpers ----------------------------------------------------------------------------------


def is_attribute_of(node: ast.AST, name: str | None) -> bool:
    """`node` is `<name>.<attr>` (`self.drop` for name "self")."""
    return (
        name is not None
        and isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == name
    )


def parameters(function: Def) -> set[str]:
    args = function.args
    names = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
    return names | {a.arg for a in (args.vararg, args.kwarg) if a is not None}
