"""The one walk over a file that feeds every static check: it carries the scope (enclosing class and its
`self`, function, `if ... training` guards, isinstance narrowing, the outermost `nn.Sequential`) and calls
each check's hooks (`base.StaticCheck`) at names, calls, statement lists and assignments."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from dataclasses import replace

from shapelens.analysis.rules.base import StaticCheck
from shapelens.analysis.rules.resolution import Def, FileModel, Function, Scope

# nodes with nothing below them that a rule reads
_LEAVES = frozenset({ast.Constant, ast.Load, ast.Store, ast.Del, ast.Pass, ast.Break, ast.Continue})
# nodes that hold statement lists (where consecutive statements are looked at; `if`/`while` elsewhere)
_WITH_BODY: frozenset[type[ast.AST]] = frozenset({
    ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.For, ast.AsyncFor, ast.With, ast.AsyncWith, ast.Try,
    ast.ExceptHandler, ast.match_case, *([ast.TryStar] if hasattr(ast, "TryStar") else []),
})  # fmt: skip


class Walk:
    """One file, walked once: every check sees every node in the same visit."""

    def __init__(self, model: FileModel, checks: Sequence[StaticCheck]) -> None:
        self.model = model
        self.checks = checks

    def run(self) -> None:
        self._visit(self.model.source.tree, Scope())
        for check in self.checks:
            check.finish()

    def _visit(self, node: ast.AST, scope: Scope) -> None:
        kind = type(node)
        # names and constants are most of a tree: handle them first and do not descend into their contexts
        if kind is ast.Name or kind is ast.Attribute:
            for check in self.checks:
                check.name(node, scope)  # type: ignore[arg-type]
            if kind is ast.Attribute:
                self._visit(node.value, scope)  # type: ignore[attr-defined]
            return
        if kind in _LEAVES:
            return
        if isinstance(node, ast.ClassDef):
            self._visit_class(node, scope)
            return
        if isinstance(node, Function):
            top = scope.top_function
            if top is None and isinstance(node, Def) and scope.inner_class is None:
                top = node
            scope = replace(scope, function=node, top_function=top)
        elif isinstance(node, ast.If | ast.IfExp | ast.While):
            self._visit_conditional(node, scope)
            return
        elif isinstance(node, ast.Call):
            callee = self.model.resolve(node.func)
            for check in self.checks:
                check.call(node, callee, scope)
            if callee == "torch.nn.Sequential" and scope.sequential is None:
                scope = replace(scope, sequential=node)
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            for check in self.checks:
                check.assignment(node, scope)
        if kind in _WITH_BODY:
            for block in _blocks(node):
                self._block(block, scope)
        for child in ast.iter_child_nodes(node):
            self._visit(child, scope)

    def _block(self, block: list[ast.stmt], scope: Scope) -> None:
        for check in self.checks:
            check.block(block, scope)

    def _visit_class(self, node: ast.ClassDef, scope: Scope) -> None:
        for header in (*node.bases, *node.decorator_list, *(k.value for k in node.keywords)):
            self._visit(header, scope)
        inner = replace(scope, inner_class=node, cls=None, self_name=None, method=None)
        for child in node.body:
            if isinstance(child, Def):
                static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in child.decorator_list)
                params = [*child.args.posonlyargs, *child.args.args]
                me = params[0].arg if params and not static else None
                self._visit(child, replace(inner, cls=node, self_name=me, method=child))
            else:
                self._visit(child, inner)

    def _visit_conditional(self, node: ast.If | ast.IfExp | ast.While, scope: Scope) -> None:
        self._visit(node.test, scope)
        taken = replace(
            scope,
            guarded=scope.guarded or _mentions_training(node.test),
            narrowed=scope.narrowed + self._isinstance_tests(node.test),
        )
        for branch, branch_scope in ((node.body, taken), (node.orelse, scope)):
            children = branch if isinstance(branch, list) else [branch]
            if children and isinstance(children[0], ast.stmt):
                self._block(children, branch_scope)  # type: ignore[arg-type]
            for child in children:
                self._visit(child, branch_scope)

    def _isinstance_tests(self, test: ast.expr) -> tuple[tuple[str, str], ...]:
        tests = test.values if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) else [test]
        found: list[tuple[str, str]] = []
        for t in tests:
            if (
                isinstance(t, ast.Call)
                and isinstance(t.func, ast.Name)
                and t.func.id == "isinstance"
                and len(t.args) == 2
                and isinstance(t.args[0], ast.Name)
            ):
                cls_name = self.model.resolve(t.args[1])
                if cls_name is not None:
                    found.append((t.args[0].id, cls_name))
        return tuple(found)


def _blocks(node: ast.AST) -> Iterator[list[ast.stmt]]:
    for name in ("body", "orelse", "finalbody"):
        value = getattr(node, name, None)
        if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
            yield value


def _mentions_training(test: ast.expr) -> bool:
    return any(
        (isinstance(n, ast.Name) and n.id == "training") or (isinstance(n, ast.Attribute) and n.attr == "training")
        for n in ast.walk(test)
    )
