"""Source rewriting for the trace child: which top-level statements of a project file may run, and the
per-statement recording inserted into every function body.

Recording is a rewrite, not `sys.settrace` (≈2.5× slower) nor a TorchFunctionMode (≈1.13×): after each
statement that binds names we insert `__shapelens_record__(sid, (a, b))`, and `return e` becomes
`return __shapelens_return__(sid, e)`. `sid` indexes a table of `Statement`s built here, so the hot path
carries no strings. Line numbers are kept as written (new nodes copy the statement's location), so
tracebacks, `co_positions` and the recorded lines all point at the user's source.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from shapelens.core.source import segment, split_lines

RECORD = "__shapelens_record__"
RETURN = "__shapelens_return__"
LOOP = "loop"  # `__shapelens_record__.loop(sid, iterable)`: the recorder's wrapper around a for loop's iterable


@dataclass(frozen=True)
class Statement:
    """A statement whose bound tensors we record; positions 1-based, `end_column` just after its end."""

    line: int
    end_line: int
    end_column: int
    targets: tuple[str, ...]  # the names it binds, in order ("return" for a return)
    producer: str | None  # source text of the call that produced the value, if any ("self.conv1")


# -- recording ----------------------------------------------------------------------------------------


def _target_names(target: ast.expr) -> list[str] | None:
    """`a` → [a]; `a, (b, c)` → [a, b, c]; anything with attributes or subscripts → None (not recorded)."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        names: list[str] = []
        for element in target.elts:
            inner = _target_names(element.value if isinstance(element, ast.Starred) else element)
            if inner is None:
                return None
            names += inner
        return names
    return None


def _breaks(body: list[ast.stmt]) -> bool:
    """Whether a loop body has a `break` of its own (not one of a loop nested in it), or a return."""
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Break | ast.Return | ast.Raise):
            return True
        if not isinstance(node, ast.For | ast.While | ast.AsyncFor | ast.FunctionDef | ast.Lambda | ast.ClassDef):
            stack += ast.iter_child_nodes(node)
        elif isinstance(node, ast.For | ast.While | ast.AsyncFor):
            stack += node.orelse
    return False


class _Recorder(ast.NodeTransformer):
    def __init__(self, source: str, table: list[Statement]) -> None:
        self.lines = split_lines(source)
        self.table = table

    def _producer(self, value: ast.expr | None) -> str | None:
        if isinstance(value, ast.Call):
            return segment(self.lines, value.func)
        if isinstance(value, ast.BinOp) and isinstance(value.op, ast.MatMult):
            return "@"
        return None

    def _add(self, stmt: ast.stmt, targets: tuple[str, ...], value: ast.expr | None) -> int:
        self.table.append(
            Statement(
                stmt.lineno,
                stmt.end_lineno or stmt.lineno,
                (stmt.end_col_offset or 0) + 1,
                targets,
                self._producer(value),
            )
        )
        return len(self.table) - 1

    def _record_after(self, stmt: ast.stmt, names: list[str], value: ast.expr | None) -> list[ast.stmt]:
        sid = self._add(stmt, tuple(names), value)
        call = ast.Expr(
            ast.Call(
                ast.Name(RECORD, ast.Load()),
                [ast.Constant(sid), ast.Tuple([ast.Name(n, ast.Load()) for n in names], ast.Load())],
                [],
            )
        )
        return [stmt, ast.copy_location(call, stmt)]

    def _body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for stmt in body:
            result = self.visit(stmt)
            out += result if isinstance(result, list) else [result]
        return out

    def generic_visit(self, node: ast.AST) -> ast.AST:
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                setattr(node, field, self._body(body))
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                handler.body = self._body(handler.body)
        if isinstance(node, ast.Match):
            for case in node.cases:
                case.body = self._body(case.body)
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        return self.generic_visit(node)

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        return node

    def visit_For(self, node: ast.For) -> ast.AST:
        """`for x in it:` → `for x in __shapelens_record__.loop(sid, it):` — the recorder may end a loop once the
        shapes of an iteration repeat (`Recorder.loop`); the loop's own `else` still runs, as on a natural end."""
        self.generic_visit(node)
        sid = self._add(node, (), None)
        wrapper = ast.Attribute(ast.Name(RECORD, ast.Load()), LOOP, ast.Load())
        node.iter = ast.copy_location(ast.Call(wrapper, [ast.Constant(sid), node.iter], []), node.iter)
        names = _target_names(node.target)
        if names:  # the loop variable gets its hint, at the end of the `for` line, as each turn binds it
            node.body = [self._record_target(node, names), *node.body]
        return node

    def _record_target(self, node: ast.For, names: list[str]) -> ast.stmt:
        line = self.lines[node.iter.end_lineno - 1] if node.iter.end_lineno else ""
        colon = line.find(":", node.iter.end_col_offset or 0)
        end = colon + 1 if colon >= 0 else (node.iter.end_col_offset or 0)
        self.table.append(Statement(node.lineno, node.iter.end_lineno or node.lineno, end + 1, tuple(names), None))
        values = ast.Tuple([ast.Name(n, ast.Load()) for n in names], ast.Load())
        call = ast.Call(ast.Name(RECORD, ast.Load()), [ast.Constant(len(self.table) - 1), values], [])
        return ast.copy_location(ast.Expr(call), node.body[0])

    def visit_While(self, node: ast.While) -> list[ast.stmt]:
        """`while c:` → `__shapelens_loop_<sid> = __shapelens_record__.loop(sid, None)` then
        `while __shapelens_loop_<sid>.again() and c:` — the same early end as a `for`, as if `c` turned false."""
        self.generic_visit(node)
        if isinstance(node.test, ast.Constant) and node.test.value and not _breaks(node.body):
            return [node]  # `while True:` with no way out: endless, and the timeout says so at its line (SL002)
        sid = self._add(node, (), None)
        name = f"__shapelens_loop_{sid}"
        wrapper = ast.Attribute(ast.Name(RECORD, ast.Load()), LOOP, ast.Load())
        start = ast.Assign(
            [ast.Name(name, ast.Store())], ast.Call(wrapper, [ast.Constant(sid), ast.Constant(None)], [])
        )
        again = ast.Call(ast.Attribute(ast.Name(name, ast.Load()), "again", ast.Load()), [], [])
        node.test = ast.copy_location(ast.BoolOp(ast.And(), [again, node.test]), node.test)
        return [ast.copy_location(start, node), node]

    def visit_Assign(self, node: ast.Assign) -> ast.AST | list[ast.stmt]:
        names: list[str] = []
        for target in node.targets:
            found = _target_names(target)
            if found:
                names += found
        return self._record_after(node, names, node.value) if names else node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST | list[ast.stmt]:
        if node.value is not None and isinstance(node.target, ast.Name):
            return self._record_after(node, [node.target.id], node.value)
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST | list[ast.stmt]:
        if isinstance(node.target, ast.Name):
            return self._record_after(node, [node.target.id], node.value)
        return node

    def visit_Return(self, node: ast.Return) -> ast.AST:
        if node.value is None:
            return node
        sid = self._add(node, ("return",), node.value)
        node.value = ast.copy_location(
            ast.Call(ast.Name(RETURN, ast.Load()), [ast.Constant(sid), node.value], []), node.value
        )
        return node


def instrument_statements(statements: list[ast.stmt], source: str, table: list[Statement]) -> list[ast.stmt]:
    """Top-level statements run one by one as a script (`trace/script_run.py`): each records what it binds,
    like a line of `forward`, and the defs among them record their bodies. Rewrites the nodes in place."""
    out = _Recorder(source, table)._body(statements)
    for stmt in out:
        ast.fix_missing_locations(stmt)
    return out


def instrument(tree: ast.Module, source: str) -> tuple[ast.Module, list[Statement]]:
    """Rewrite every function body in `tree` (in place) to record what its statements bind."""
    table: list[Statement] = []
    recorder = _Recorder(source, table)

    def outermost_defs(node: ast.AST) -> None:
        # nested defs are reached by the recorder itself, through the outer function's body
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                child.body = recorder._body(child.body)
            else:
                outermost_defs(child)

    outermost_defs(tree)
    ast.fix_missing_locations(tree)
    return tree, table
