"""How the trace child runs a project file's imports: on a time budget of their own, and without letting an
import the model never uses stop the trace.

Every import statement at a project file's top level (and in its top-level `if`/`try` blocks) is rewritten
so that it runs inside `importing(...)`, which pauses the load's timer and charges the import to a separate,
larger budget (`IMPORT_BUDGET_S` for the whole load: importing timm costs ≈6 s cold, which is not the
model's time); an import that outlives it ends the load as `ImportTimeout` at the import's line
("import of timm did not finish in 30 s").

An import that is not already inside a user's `try` is also guarded (at the top level, in its blocks, and
inside functions and methods, whose imports run when the trace calls them): if the library is missing or broken
(`No module named 'torchvision'`, a compiled extension that does not load), its names are bound to a
`StandIn` that raises `MissingImport`, naming the import, only when the traced code uses it. A failure
inside one of the user's own files is never hidden this way: it is that file's finding.
"""

from __future__ import annotations

import ast
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from shapelens.trace.context import TraceTimeout

IMPORT_BUDGET_S = 30.0  # seconds all of a load's imports may take together, on top of the trace's timeout
BUDGET_VARIABLE = "SHAPELENS_IMPORT_BUDGET_S"  # where a worker's environment sets another (tests do)


def import_budget() -> float:
    """The import budget: IMPORT_BUDGET_S unless the worker's environment says otherwise."""
    try:
        value = float(os.environ.get(BUDGET_VARIABLE, IMPORT_BUDGET_S))
    except ValueError:
        return IMPORT_BUDGET_S
    return value if 0 < value <= 3600 else IMPORT_BUDGET_S


IMPORTING = "__shapelens_importing__"
STAND_IN = "__shapelens_stand_in__"


class ImportTimeout(TraceTimeout):
    """The import budget ran out during `module`'s import at `path:line`."""

    def __init__(self, module: str, path: str, line: int, budget: float) -> None:
        super().__init__(f"import of {module} did not finish in {budget:g} s")
        self.module, self.path, self.line, self.budget = module, path, line, budget


class MissingImport(ImportError):
    """Traced code used a name whose import failed; says which import statement, where, and why it failed."""

    def __init__(self, used: str, statement: str, path: str, line: int, reason: str) -> None:
        super().__init__(f"the model uses {used}, but `{statement}` (line {line}) failed: {reason}")
        self.used, self.statement, self.path, self.line, self.reason = used, statement, path, line, reason


class ImportClock:
    """The load's import budget: while an import runs, the load's own timer is paused."""

    def __init__(self, budget: float | None = None) -> None:
        self.budget = import_budget() if budget is None else budget
        # told (path, line) when an import starts and ("", 0) when it ends: the worker, which kills a child
        # stuck in native code, then says which import it was
        self.on_change: Callable[[str, int], None] | None = None
        self.left = self.budget
        self.depth = 0  # an import that imports (a project file's own imports) is still the outer import

    @contextmanager
    def importing(self, module: str, path: str, line: int) -> Iterator[None]:
        if self.depth:
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1
            return
        paused, _ = signal.getitimer(signal.ITIMER_REAL)
        if paused > 0:
            signal.setitimer(signal.ITIMER_REAL, max(self.left, 0.001))
        started = time.monotonic()
        self.depth = 1
        if self.on_change is not None:
            self.on_change(path, line)
        try:
            yield
        except TraceTimeout as err:
            if paused > 0 and not isinstance(err, ImportTimeout):
                raise ImportTimeout(module, path, line, self.budget) from err
            raise
        finally:
            self.depth = 0
            if self.on_change is not None:
                self.on_change("", 0)
            self.left -= time.monotonic() - started
            if paused > 0:
                signal.setitimer(signal.ITIMER_REAL, paused)


class StandIn:
    """What a failed import's names are bound to: harmless until used, then `MissingImport`."""

    def __init__(self, used: str, statement: str, path: str, line: int, reason: str) -> None:
        object.__setattr__(self, "_shapelens_missing", (used, statement, path, line, reason))

    def _fail(self) -> MissingImport:
        return MissingImport(*object.__getattribute__(self, "_shapelens_missing"))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # copy, pickle and inspect ask for dunders: no stand-in for those
        used, statement, path, line, reason = object.__getattribute__(self, "_shapelens_missing")
        return StandIn(f"{used}.{name}", statement, path, line, reason)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise self._fail()

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[type, ...]:
        raise self._fail()

    def __iter__(self) -> Iterator[Any]:
        raise self._fail()

    def __getitem__(self, key: Any) -> Any:
        raise self._fail()

    def _raise(self, *args: Any, **kwargs: Any) -> Any:
        raise self._fail()

    # arithmetic and conversions use the value too (`planes * Bottleneck.expansion`, `int(spaces.n)`)
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _raise
    __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __pow__ = __rpow__ = __matmul__ = __rmatmul__ = _raise
    __neg__ = __pos__ = __abs__ = __int__ = __float__ = __index__ = __len__ = __lt__ = __le__ = _raise
    __gt__ = __ge__ = __contains__ = __enter__ = __setitem__ = _raise

    def __repr__(self) -> str:
        used, statement, _, line, _ = object.__getattribute__(self, "_shapelens_missing")
        return f"<{used}: `{statement}` at line {line} failed>"


def stand_in_factory(is_project: Callable[[str], bool]) -> Callable[..., Any]:
    """`__shapelens_stand_in__(err, used, statement, path, line)`: the stand-in for a failed library import, or
    the failure itself re-raised when it happened inside a project file (that file's own finding)."""

    def stand_in(err: BaseException, used: str, statement: str, path: str, line: int) -> Any:
        tb = err.__traceback__.tb_next if err.__traceback__ is not None else None
        while tb is not None:
            if is_project(tb.tb_frame.f_code.co_filename):
                raise err
            tb = tb.tb_next
        if isinstance(err, MissingImport):
            raise err
        package = sys.modules.get(used)
        if package is not None and statement.startswith("import ") and f" {used}." in f" {statement}":
            return package  # `import torch.utils.tensorboard` failed, but `torch` itself did not
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return StandIn(used, statement, path, line, text)

    return stand_in


def imported_module(text: str, line: int) -> str | None:
    """The module the import statement at `line` of a file imports (`import timm` → "timm")."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and node.lineno == line:
            return _module_of(node)
    return None


# -- the rewrite ---------------------------------------------------------------------------------------------


def _module_of(node: ast.Import | ast.ImportFrom) -> str:
    if isinstance(node, ast.Import):
        return ", ".join(a.name for a in node.names)
    return "." * node.level + (node.module or "")


def _bindings(node: ast.Import | ast.ImportFrom) -> list[tuple[str, str]] | None:
    """(bound name, what it stands for) per name the import binds; None for `from x import *`."""
    found = []
    for alias in node.names:
        if alias.name == "*":
            return None
        if isinstance(node, ast.Import):
            bound = alias.asname or alias.name.split(".")[0]
            found.append((bound, alias.name if alias.asname else alias.name.split(".")[0]))
        else:
            found.append((alias.asname or alias.name, alias.name))
    return found


def _copy_location(nodes: list[ast.stmt], like: ast.AST) -> list[ast.stmt]:
    for node in nodes:
        for child in ast.walk(node):
            ast.copy_location(child, like)
            child.end_lineno, child.end_col_offset = like.end_lineno, like.end_col_offset  # type: ignore[attr-defined]
    return nodes


def _guarded(node: ast.Import | ast.ImportFrom, path: str, stand_in: bool) -> list[ast.stmt]:
    module = _module_of(node)
    timed = ast.With(
        items=[
            ast.withitem(
                context_expr=ast.Call(
                    func=ast.Name(IMPORTING, ast.Load()),
                    args=[ast.Constant(module), ast.Constant(path), ast.Constant(node.lineno)],
                    keywords=[],
                )
            )
        ],
        body=[node],
    )
    bindings = _bindings(node) if stand_in else None
    if not bindings:
        return _copy_location([timed], node)
    error = "__shapelens_import_error__"
    handler_body: list[ast.stmt] = [
        ast.Assign(
            targets=[ast.Name(bound, ast.Store())],
            value=ast.Call(
                func=ast.Name(STAND_IN, ast.Load()),
                args=[
                    ast.Name(error, ast.Load()),
                    ast.Constant(used),
                    ast.Constant(ast.unparse(node)),  # the statement, as written
                    ast.Constant(path),
                    ast.Constant(node.lineno),
                ],
                keywords=[],
            ),
        )
        for bound, used in bindings
    ]
    guarded = ast.Try(
        body=[timed],
        handlers=[ast.ExceptHandler(type=ast.Name("Exception", ast.Load()), name=error, body=handler_body)],
        orelse=[],
        finalbody=[],
    )
    # the node keeps its own location (tracebacks and records name the import's line); the rest copies it
    result = _copy_location([guarded], node)
    return result


def _loads_library(stmt: ast.stmt) -> bool:
    """`torch.classes.load_library("build/libinterpreter.so")`, `torch.ops.load_library(...)`: a compiled
    extension the project builds itself, loaded by a bare call."""
    call = stmt.value if isinstance(stmt, ast.Expr) else None
    return isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "load_library"


def _library_guarded(stmt: ast.stmt) -> list[ast.stmt]:
    """A native library that does not load (not built here) is left unloaded, as a failed import is: only the
    operators it would have registered are missing, and torch names them if the traced code uses one."""
    guarded = ast.Try(
        body=[stmt],
        handlers=[ast.ExceptHandler(type=ast.Name("Exception", ast.Load()), name=None, body=[ast.Pass()])],
        orelse=[],
        finalbody=[],
    )
    return _copy_location([guarded], stmt)


def guard_imports(body: list[ast.stmt], path: str, in_try: bool = False) -> list[ast.stmt]:
    """The statements with every import timed, and guarded by a stand-in unless a user's `try` holds it;
    imports inside functions and methods too (`def forward(...): import einops`), which run at trace time."""
    out: list[ast.stmt] = []
    for stmt in body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            if stmt.module == "__future__" if isinstance(stmt, ast.ImportFrom) else False:
                out.append(stmt)
            else:
                out += _guarded(stmt, path, stand_in=not in_try)
        elif not in_try and _loads_library(stmt):
            out += _library_guarded(stmt)
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            stmt.body = guard_imports(stmt.body, path) or stmt.body
            out.append(stmt)
        elif isinstance(stmt, ast.If | ast.For | ast.AsyncFor | ast.While | ast.With | ast.AsyncWith):
            stmt.body = guard_imports(stmt.body, path, in_try) or stmt.body
            if not isinstance(stmt, ast.With | ast.AsyncWith):
                stmt.orelse = guard_imports(stmt.orelse, path, in_try)
            out.append(stmt)
        elif isinstance(stmt, ast.Try):
            stmt.body = guard_imports(stmt.body, path, True) or stmt.body
            for handler in stmt.handlers:
                handler.body = guard_imports(handler.body, path, True) or handler.body
            stmt.orelse = guard_imports(stmt.orelse, path, True)
            stmt.finalbody = guard_imports(stmt.finalbody, path, True)
            out.append(stmt)
        else:
            out.append(stmt)
    return out
