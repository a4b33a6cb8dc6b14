"""Running a file's top level as a script in the trace child, after its models (`TracePlan.script`, decided
by `analysis/script.py`): statement by statement, in the module the file was loaded into, each statement
instrumented like a line of `forward` (a hint per tensor it binds, the layers it builds and calls checked by
the recorder's hooks, loops cut short once their shapes repeat).

A statement that raises is a finding at its line (SL001 with the operands' shapes, through `explain`), unless
it failed for want of what a shape-only trace does not have (a tensor's values on meta, a refused download or
write, a missing file): then the reason is a note. Either way the names it binds become unknown, and a
statement that reads an unknown name is skipped, not failed, so one failure is one finding. Statements the
plan marks `skip` (a print, a plot, `torch.save`) never run and their names are unknown as well.

The whole script is one `TargetResult` named `SCRIPT_TARGET`; its first failure is `error`, later ones
`errors`.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import dataclasses
import dis
import inspect
import os
import sys
import time
import traceback
import types
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy
from torch.overrides import TorchFunctionMode

from shapelens.core.source import Source, parse
from shapelens.core.syntax import bound_names, loaded_names, node_key
from shapelens.core.wire import (
    SCRIPT_TARGET,
    ErrorKind,
    Event,
    Status,
    TargetResult,
    TraceError,
    TracePlan,
)
from shapelens.trace import explain
from shapelens.trace.context import Context, Emitter, TraceTimeout, time_limit
from shapelens.trace.instrument import RECORD, RETURN, instrument_statements
from shapelens.trace.loader_stand_in import StandIns, Unreadable, left_out_with
from shapelens.trace.model_run import NEEDS_FAKE, _classify, collect_layers, collect_records
from shapelens.trace.recording import FILE_ID, Recorder, mismatch_records

# failures that say the trace lacks something a real run has (values, files, the network), not that the
# code is wrong: a note, never an error finding
_WANTS = (
    (
        ("FileNotFoundError", "No such file", "IsADirectoryError", "PermissionError", "Dataset not found"),
        "it reads a file that is not here",
    ),
    (NEEDS_FAKE, "it needs a tensor's values, which a shape-only trace does not have"),
    (("only available on CPU", "share_memory"), "it needs real memory, which a shape-only trace does not have"),
    (("ModuleNotFoundError", "ImportError", "MissingImport"), "an import it needs is not installed"),
    (("URLError", "ConnectionError", "socket", "urlopen", "HTTPError"), "it needs the network"),
)


_TORCH = os.path.dirname(torch.__file__) + os.sep
_OURS = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # shapelens itself
_PATCHES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "patches.py")  # wrappers around torch's calls
_NOT_SHAPES = (NameError, AttributeError, KeyError, AssertionError, ImportError, OSError, StopIteration)
_SHAPE_TYPES = (RuntimeError, IndexError, ValueError)  # what torch's C code raises for a shape or dtype


# what Python itself says of its own lists, strings and numbers: no tensor is involved (a dataset's
# `glob.glob(folder + "/*.txt")[0]` over a folder that is not here)
_PYTHON_ONLY = (
    "list index out of range", "tuple index out of range", "string index out of range", "pop from empty list",
    "invalid literal for int()", "could not convert string to float", "math domain error",
)  # fmt: skip


def _code_error(err: BaseException) -> bool:
    """Whether a failure is torch's own verdict on what the script gave it (a shape, a dtype, an argument
    torch rejects: SL001), rather than the script's own check (`raise`, `assert`), a name left undefined, or
    a library other than torch: those say the script lacked data or set-up a trace does not have (a note)."""
    if isinstance(err, _NOT_SHAPES) or any(marker in str(err) for marker in _PYTHON_ONLY):
        return False
    frames = []
    tb = err.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    while len(frames) > 1 and frames[-1].tb_frame.f_code.co_filename == _PATCHES:
        frames.pop()  # a patched torch call (`x.view(...)` keeps its flatten factors): the call is torch's, not ours
    if not frames:
        return True
    jit = os.path.join(_TORCH, "jit") + os.sep
    if any(f.tb_frame.f_code.co_filename.startswith(jit) for f in frames):
        return False  # `torch.jit.trace(model, x)` on meta meets value checks a CPU trace passes: set-up, not shapes
    tb = frames[-1]
    path = tb.tb_frame.f_code.co_filename
    if path.startswith(_OURS):
        return False  # our own failure while recording is never the script's error
    if path.startswith(_TORCH):
        # torch's Python code raised (F.nll_loss's batch check, a module's own argument check); not its processes,
        # process groups, C++ classes or fx's own tracing: those are set-up, not shapes
        return not any(f"{os.sep}{part}" in path for part in ("multiprocessing", "distributed", "_classes", "fx"))
    if "site-packages" in path or path.startswith(sys.prefix):
        return False  # another library's complaint
    if "multiprocessing" in path or "distributed" in path:
        return False  # processes and process groups: the sandbox's refusals, not shapes
    # the user's own line: a call into torch's C code failed there (`range(None)` is no shape error), unless the
    # line raised it itself
    op = next((i.opname for i in dis.get_instructions(tb.tb_frame.f_code) if i.offset == tb.tb_lasti), "")
    return isinstance(err, _SHAPE_TYPES) and not op.startswith(("RAISE", "RERAISE"))


def _want(err: BaseException) -> str | None:
    text = f"{type(err).__name__}: {err}"
    if _classify(err, "forward") == "refused":
        return "the trace refused it"
    if isinstance(err, OSError | ImportError):
        return "it needs a file, the network or a module that is not here"
    for markers, why in _WANTS:
        if any(marker in text for marker in markers):
            return why
    return None


def _statements(plan: TracePlan) -> tuple[list[tuple[ast.stmt, str | None]], set[tuple[Any, ...]]]:
    """The script's top-level statements in order (with why not, for a skipped one), and the keys of the
    statements inside blocks that are skipped where they stand."""
    parsed = parse(plan.file, plan.source)
    if not isinstance(parsed, Source):
        return [], set()
    nodes = {node_key(n): n for n in ast.walk(parsed.tree) if isinstance(n, ast.stmt)}
    order: list[tuple[ast.stmt, str | None]] = []
    inner: set[tuple[Any, ...]] = set()
    for item in plan.script:
        key = tuple(item["node"])
        if item.get("inner"):
            inner.add(key)
        elif key in nodes:
            order.append((nodes[key], item.get("skip")))
    return order, inner


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class _Discard:
    """A stdout that keeps nothing (the script's prints are not the trace's business)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


class _Silence(ast.NodeTransformer):
    """Replaces the statements inside blocks that the plan skips (a `print` in a loop) by `pass`."""

    def __init__(self, keys: set[tuple[Any, ...]]) -> None:
        self.keys = keys

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.stmt) and node_key(node) in self.keys:
            return ast.copy_location(ast.Pass(), node)
        return super().visit(node)


_VALUE_METHODS = ("item", "tolist", "numpy")
_VALUES = "it reads a tensor's values (`.item()`), which a shape-only trace does not have"


def _header(stmt: ast.stmt) -> list[ast.AST]:
    """What a statement evaluates itself (a compound statement: its header only)."""
    if isinstance(stmt, ast.If | ast.While):
        return [stmt.test]
    if isinstance(stmt, ast.For):
        return [stmt.iter]
    if isinstance(stmt, ast.With):
        return [item.context_expr for item in stmt.items]
    if isinstance(stmt, ast.Try | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return []
    return [stmt]


def _reads_values(stmt: ast.stmt) -> bool:
    """`running_loss += loss.item()`, `if loss.item() < best:`: a read of a tensor's values (none on meta)."""
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _VALUE_METHODS
        and not node.args
        for part in _header(stmt)
        for node in ast.walk(part)
    )


def _seeds(stmt: ast.stmt) -> set[tuple[Any, ...]]:
    return {node_key(n) for n in _outside_definitions(stmt) if isinstance(n, ast.stmt) and _reads_values(n)}


def _outside_definitions(node: ast.AST) -> list[ast.AST]:
    """`ast.walk`, not entering the functions and classes defined inside."""
    out: list[ast.AST] = []
    stack = [node]
    while stack:
        current = stack.pop()
        out.append(current)
        if current is node or not isinstance(current, (*_DEFINITIONS, ast.Lambda)):
            stack += ast.iter_child_nodes(current)
    return out


def _value_reads(stmt: ast.stmt) -> tuple[set[tuple[Any, ...]], set[str]]:
    """Inside the loops of a top-level statement traced on meta: the statements that read a tensor's values and
    those that read what they bound, left out where they stand (`pass`) so that the loop's other lines (the
    backward pass, the optimizer step, a validation loop after it) still run; and the names they would have
    bound or changed. A loop at the top level keeps its own header."""
    keys: set[tuple[Any, ...]] = set()
    changed: set[str] = set()
    if isinstance(stmt, _DEFINITIONS):
        return keys, changed  # a function's body runs as written, if it is called at all
    for loop in (n for n in _outside_definitions(stmt) if isinstance(n, ast.For | ast.While)):
        found, names = left_out_with(loop.body, set(), _reads_values)
        keys |= found
        changed |= names
    return keys, changed


def _module_layers(ns: dict[str, Any], names: list[str], recorder: Recorder) -> list[Any]:
    """The layers the script bound to names, each once: a model built at the top level and called there."""
    out = []
    covered: set[int] = set()  # modules already listed (a layer that is also part of a model bound later)
    modules = [ns.get(name) for name in names]
    for name, value in zip(names, modules, strict=True):
        if not isinstance(value, nn.Module) or id(value) in covered:
            continue
        parts = {id(m) for m in value.modules()}
        if any(isinstance(o, nn.Module) and o is not value and id(value) in {id(m) for m in o.modules()}
               for o in modules):  # fmt: skip
            continue  # `fc = nn.Linear(...)` then `model = nn.Sequential(fc, ...)`: listed under the model
        covered |= parts
        for layer in collect_layers(value, recorder, None):
            out.append(dataclasses.replace(layer, name=f"{name}.{layer.name}" if layer.name else name))
    return out


class _OneDevice(TorchFunctionMode):
    """A script traced on meta keeps some CPU tensors torch makes whatever the default device
    (`torch.Tensor(np.ones(...))`, PyTorch-GAN's labels with `Tensor = torch.Tensor`): where a call mixes them with
    meta tensors, they join the meta ones, as on one real device. Only while the script runs."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        values = [*args, *kwargs.values()]
        flat = [v for a in values for v in (a if isinstance(a, list | tuple) else (a,))]
        devices = {v.device.type for v in flat if isinstance(v, torch.Tensor) and not is_lazy(v) and v.dim()}
        if "meta" in devices and "cpu" in devices:
            args = tuple(_to_meta(a) for a in args)
            kwargs = {k: _to_meta(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)


def _to_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and not is_lazy(value) and value.device.type == "cpu" and value.dim():
        return value.to("meta")
    if isinstance(value, list | tuple):
        return type(value)(_to_meta(v) for v in value)
    return value


class _Returned(BaseException):
    """A stepped function's `return`, raised where it stands (inside a loop or a `with` as well): a
    `BaseException`, so that the function's own `except Exception:` does not catch it."""

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value


RETURNED = "__shapelens_returned__"
_VALUE = "__shapelens_value__"
_BIND = "__shapelens_bind__"
_MAX_DEPTH = 3  # `main()` → `get_loaders()` → one more: deeper calls run as written
_NOT_PLAIN = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE


class _Returns(ast.NodeTransformer):
    """`return e` → `raise __shapelens_returned__(e)` in a stepped function's statements (not in the functions,
    classes and lambdas they define)."""

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return node

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        return node

    def visit_Return(self, node: ast.Return) -> ast.AST:
        value = node.value if node.value is not None else ast.Constant(None)
        raised = ast.Raise(exc=ast.Call(ast.Name(RETURNED, ast.Load()), [value], []), cause=None)
        return ast.copy_location(raised, node)


def _has_return(stmt: ast.stmt) -> bool:
    return any(isinstance(n, ast.Return) for n in _outside_definitions(stmt))


@dataclasses.dataclass
class _Scope:
    """Where statements run: the module's namespace, or a stepped function's (its globals' copy with its
    arguments), with the names unknown there and those a made-up batch flowed into."""

    ns: dict[str, Any]
    unknown: dict[str, tuple[str, bool]]  # name -> why it is unknown, and whether a failure made it so
    guessed: set[str]
    depth: int = 0


class _ScriptRun:
    """One script run: its statements, one by one, and the functions its statements call stepped into
    (`main()` built the loader, `get_loaders(args)` returned it), statement by statement as well, so that a
    failure there (a refused download) leaves names unknown instead of ending the call."""

    def __init__(self, plan: TracePlan, ctx: Context, recorder: Recorder, table: list[Any]) -> None:
        self.plan = plan
        self.recorder = recorder
        self.table = table
        self.device = torch.device(ctx.device)
        self.untraced: list[tuple[int, str, str]] = []  # statements skipped for a name a failure left unknown
        self.notes: list[str] = []
        self.errors: list[TraceError] = []
        self.bound_in_order: list[str] = []  # at the top level
        self.stand_ins = StandIns(ctx.module.__dict__, self.device, recorder, {plan.file: plan.source})
        parsed = parse(plan.file, plan.source)
        tree = parsed.tree if isinstance(parsed, Source) else ast.Module(body=[], type_ignores=[])
        self.defs = {
            (n.name, n.lineno): n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and not n.decorator_list
        }
        self.scopes: list[_Scope] = []

    def block(self, statements: list[tuple[ast.stmt, str | None]], scope: _Scope) -> tuple[Any, str | None]:
        """Run statements in a scope; a stepped function's return value, or why it is unknown."""
        self.scopes.append(scope)
        try:
            for stmt, skip in statements:
                try:
                    unreached = self.statement(stmt, skip, scope)
                except _Returned as returned:
                    return returned.value, None
                if unreached is not None and scope.depth:
                    return None, unreached  # the function's `return` did not run: what it gives is unknown
            return None, None
        finally:
            self.scopes.pop()

    def statement(self, stmt: ast.stmt, skip: str | None, scope: _Scope) -> str | None:
        """Run one statement; why not, when it did not run (or failed) and holds a `return`."""
        plan, recorder, stand_ins, notes = self.plan, self.recorder, self.stand_ins, self.notes
        unknown, ns, device = scope.unknown, scope.ns, self.device
        names = sorted(bound_names(stmt))
        line = stmt.lineno
        if skip is not None:
            for name in names:
                unknown[name] = (f"line {line} was not run: it {skip}", False)
            return None
        # a def or class never waits for a name its body reads: defining it is harmless
        reads = set() if isinstance(stmt, _DEFINITIONS) else loaded_names(stmt)
        needs = sorted(reads & unknown.keys())
        if needs and self._stand_in(stmt, unknown[needs[0]][0], names, scope):
            return None
        if needs:
            why, failed = unknown[needs[0]]
            for name in names:
                unknown[name] = (why, failed)
            notes.append(f"line {line} not traced: `{needs[0]}` is unknown ({why.split(':')[0]})")
            if failed:
                self.untraced.append((line, needs[0], why))
            return f"line {line} did not run: `{needs[0]}` is unknown" if _has_return(stmt) else None
        stepped = self.step(stmt, scope)
        if stepped:
            return None
        silenced = stand_ins.silence(stmt)  # what would read a part of a made-up batch that is unknown
        values, valued = _value_reads(stmt) if device.type == "meta" else (set(), set())
        for key in sorted(values & _seeds(stmt)):
            notes.append(f"line {key[0]} not traced: {_VALUES}")
        if silenced.keys or values:
            stmt = _Silence(silenced.keys | values).visit(stmt)
        if isinstance(stmt, ast.FunctionDef) and device.type == "meta":
            quiet, lines = _quiet(stmt)
            stmt = quiet or stmt
            notes += [f"line {at} not traced: {_VALUES}" for at in lines]
        body = instrument_statements([stmt], plan.source, self.table)
        if scope.depth:
            body = [ast.fix_missing_locations(_Returns().visit(s)) for s in body]
        code = compile(ast.Module(body=body, type_ignores=[]), plan.file, "exec")
        made, met = stand_ins.made_count(), len(recorder.mismatches)
        if reads & scope.guessed:  # what a made-up batch flowed into is a guess too
            made = -1
        try:
            exec(code, ns)
        except (TraceTimeout, SystemExit, KeyboardInterrupt, _Returned):
            if _drop_guessed(stand_ins, made, recorder, met, notes, line):
                scope.guessed.update(names)
            raise
        except BaseException as err:
            return self.failed(stmt, err, names, scope, made, met)
        self._bound(names, scope)
        if _drop_guessed(stand_ins, made, recorder, met, notes, line):
            scope.guessed.update(names)
        stand_ins.empty(stmt, line)
        left, left_out = stand_ins.left_unknown(stmt, silenced, names)
        left.update(dict.fromkeys(valued - left.keys(), f"line {line}: a statement in its loop {_VALUES}"))
        for name, why in left.items():
            unknown[name] = (why, True)
        self.untraced += left_out
        return None

    def _stand_in(self, stmt: ast.stmt, why: str, names: list[str], scope: _Scope) -> bool:
        """A `DataLoader` the statement could not make: its stand-in bound (or, for a `return` of one in a
        stepped function, returned)."""
        loader = self.stand_ins.bind(stmt, why, set(scope.unknown))
        if loader is None:
            return False
        if isinstance(stmt, ast.Return) and scope.depth:
            raise _Returned(loader)
        self._bound(names, scope)
        return True

    def _bound(self, names: list[str], scope: _Scope) -> None:
        if scope.depth == 0:
            self.bound_in_order += [n for n in names if n not in self.bound_in_order]
        for name in names:
            scope.unknown.pop(name, None)

    def failed(
        self, stmt: ast.stmt, err: BaseException, names: list[str], scope: _Scope, made: int, met: int
    ) -> str | None:
        """A statement raised: a finding when torch says the code is wrong, else a note; its names unknown."""
        plan, recorder, stand_ins, notes, unknown = self.plan, self.recorder, self.stand_ins, self.notes, scope.unknown
        line = stmt.lineno
        unreached = f"line {line} did not run" if _has_return(stmt) else None
        guessed = _drop_guessed(stand_ins, made, recorder, met, notes, line)
        missing = getattr(err, "name", None) if isinstance(err, NameError) else None
        if missing in unknown:  # a function it called reads a name left unknown (a skipped `open`)
            why, failed = unknown[missing]
            for name in names:
                unknown[name] = (why, failed)
            notes.append(f"line {line} not traced: `{missing}` is unknown ({why.split(':')[0]})")
            if failed:
                self.untraced.append((line, str(missing), why))
            return unreached
        if explain.missing_forward(err):  # the model's own trace says so (SL008): once is enough
            for name in names:
                unknown[name] = (f"line {line} did not run: {explain.missing_forward(err)} has no forward", False)
            notes.append(f"line {line} not traced: {explain.missing_forward(err)} has no forward yet")
            return unreached
        want = _want(err)
        if "num_samples=0" in str(err):  # a sampler over a dataset with no samples here (no data folder)
            want = "its dataset has no samples here"
        if want is None and not _code_error(err):  # a dataset's own check (its data is not here) binds a stand-in too
            want = "it stopped on the script's own terms, not on a shape"
        if isinstance(err, Unreadable) or "UnknownPart" in str(err):
            want = "it needs the loader's dataset, which could not be read"
        elif guessed:  # a guess never accuses the code
            want = "the batch made from the model's inferred input does not fit how the code uses it"
        elif want is not None and self._stand_in(
            stmt, f"line {line} did not run: {want} ({type(err).__name__}: {explain.plain(str(err))})", names, scope
        ):
            return None
        if want is None:  # the code's own error: a finding; what needs its names is skipped quietly
            self.errors.append(explain.failure(_classify(err, "forward"), err, plan, recorder, "forward"))
            for name in names:
                unknown[name] = (f"line {line} failed", False)
            return unreached
        cause = f"{want} ({type(err).__name__}: {explain.plain(str(err))})"
        for name in names:
            unknown[name] = (f"line {line} did not run: {cause}", True)
        notes.append(f"line {line} not traced: {cause}")
        return unreached

    # -- stepping into the script's own functions ------------------------------------------------------------

    def _steppable(self, stmt: ast.stmt, scope: _Scope) -> tuple[types.FunctionType, ast.FunctionDef] | None:
        """`main()`, `loaders = get_loaders(args)`: a call, as a whole statement, of a plain function of the
        script's own file (no decorator, generator, closure, `global` or `nonlocal`)."""
        if scope.depth >= _MAX_DEPTH or not isinstance(stmt, ast.Expr | ast.Assign):
            return None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) != 1:
            return None
        call = stmt.value
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
            return None
        func = scope.ns.get(call.func.id)
        if not isinstance(func, types.FunctionType) or func.__closure__ is not None:
            return None
        code = func.__code__
        if code.co_filename != self.plan.file or code.co_flags & _NOT_PLAIN:
            return None
        node = self.defs.get((func.__name__, code.co_firstlineno))
        if node is None or any(isinstance(n, ast.Global | ast.Nonlocal) for n in _outside_definitions(node)):
            return None
        return func, node

    def step(self, stmt: ast.stmt, scope: _Scope) -> bool:
        """Run a call of the script's own function statement by statement, in a scope of its own; bind what it
        returns to the statement's target. False when it is no such call (the statement runs as written)."""
        found = self._steppable(stmt, scope)
        if found is None:
            return False
        func, node = found
        assert isinstance(stmt, ast.Expr | ast.Assign) and isinstance(stmt.value, ast.Call)
        call = stmt.value
        signature = inspect.signature(func)
        scope.ns[_BIND] = lambda *args, **kwargs: signature.bind(*args, **kwargs)
        bind = ast.Expression(ast.Call(ast.Name(_BIND, ast.Load()), call.args, call.keywords))
        try:
            bound = eval(compile(ast.fix_missing_locations(ast.copy_location(bind, call)), self.plan.file, "eval"),
                         scope.ns)  # fmt: skip
        except Exception:
            return False  # the arguments do not fit: the call as written says how
        finally:
            scope.ns.pop(_BIND, None)
        bound.apply_defaults()
        outer = next((s for s in reversed(self.scopes) if s.ns is func.__globals__), self.scopes[0])
        local = set(func.__code__.co_varnames) | set(func.__code__.co_cellvars)
        inner = _Scope(
            {**func.__globals__, **bound.arguments, RETURNED: _Returned},
            {k: v for k, v in outer.unknown.items() if k not in local},
            {k for k in outer.guessed if k not in local},
            scope.depth + 1,
        )
        inner.guessed |= {k for k in bound.arguments if loaded_names(call) & scope.guessed}
        made = self.stand_ins.made_count()
        with self.stand_ins.scope(inner.ns):
            value, why = self.block([(s, None) for s in node.body], inner)
        if not isinstance(stmt, ast.Assign):
            return True
        names = sorted(bound_names(stmt))
        if why is not None:
            for name in names:
                scope.unknown[name] = (f"{why} (in `{func.__name__}`)", True)
            return True
        assign = ast.copy_location(ast.Assign([stmt.targets[0]], ast.Name(_VALUE, ast.Load())), stmt)
        code = compile(
            ast.Module(body=instrument_statements([assign], self.plan.source, self.table), type_ignores=[]),
            self.plan.file,
            "exec",
        )
        scope.ns[_VALUE] = value
        try:
            exec(code, scope.ns)
        except (TraceTimeout, SystemExit, KeyboardInterrupt):
            raise
        except BaseException as err:
            cause = f"`{func.__name__}` gave {type(value).__name__} ({type(err).__name__}: {err})"
            for name in names:
                scope.unknown[name] = (f"line {stmt.lineno} did not run: {cause}", True)
            self.notes.append(f"line {stmt.lineno} not traced: {cause}")
            return True
        finally:
            scope.ns.pop(_VALUE, None)
        self._bound(names, scope)
        if isinstance(stmt.targets[0], ast.Name):
            self.stand_ins.named(stmt.targets[0].id, value)  # `loader = get_loader(args)`
        if self.stand_ins.made_count() != made:
            scope.guessed.update(names)
        return True


def run_script(plan: TracePlan, ctx: Context, recorder: Recorder, emit: Emitter) -> None:
    """Trace the file's top level (after its models) and emit its `TargetResult`."""
    started = time.perf_counter()
    emit({"event": Event.START, "name": SCRIPT_TARGET, "time": time.time()})
    for store in (recorder.records, recorder.producers, recorder.uses, recorder.loop_notes):
        store.clear()
    recorder.mismatches.clear()
    if ctx.sandbox is not None:
        ctx.sandbox.refusals.clear()
    recorder.last = (-1, 0)
    order, inner = _statements(plan)
    statements = [(_Silence(inner).visit(stmt) if inner else stmt, skip) for stmt, skip in order]
    ns = ctx.module.__dict__
    # the script's statements join the table of the file's own functions: the module's one recording function
    # (which they were compiled to call at load) then serves both
    # (a file its own package imports is loaded twice, as the checked module and as `pkg.mod`: the table is the
    # one the module's recording function indexes, never merely the first of that path)
    file_id = getattr(ns.get(RECORD), FILE_ID, None)
    if file_id is None:
        file_id = next(i for i, (path, _) in enumerate(recorder.files) if path == plan.file)
        ns[RECORD], ns[RETURN] = recorder.bind(file_id)
    table = recorder.files[file_id][1]
    run = _ScriptRun(plan, ctx, recorder, table)
    device = run.device
    recorder.active = True
    try:
        with (
            time_limit(float(plan.timeout), recorder),
            device if device.type == "meta" else nullcontext(),
            contextlib.redirect_stdout(_Discard()),  # a print flood in the functions it calls: nowhere
            _OneDevice() if device.type == "meta" else nullcontext(),
        ):
            if device.type == "meta":
                _quiet_value_reads(run, ns)
            run.block(statements, _Scope(ns, {}, set()))
    except TraceTimeout as err:
        run.errors.append(explain.failure("timeout", err, plan, recorder, "forward"))
    except (SystemExit, KeyboardInterrupt) as err:
        run.notes.append(f"the script stopped: {type(err).__name__}({', '.join(map(str, err.args))})")
    finally:
        recorder.active = False
    errors, notes, untraced, stand_ins = run.errors, run.notes, run.untraced, run.stand_ins
    if untraced:  # never silent: the first statement left out, and why (SL011)
        line, name, why = untraced[0]
        more = (
            f" (and {len(untraced) - 1} more statement{'s' * (len(untraced) > 2)} after it)"
            if len(untraced) > 1
            else ""
        )
        message = f"not traced{more}: `{name}` is unknown: {why}"
        errors.append(TraceError(ErrorKind.UNTRACED, message, plan.file, line, stage="forward"))
    notes += recorder.loop_notes_list() + stand_ins.notes()
    refusal = _refusal_note(ctx)
    if refusal and not any("refused" in note for note in notes):  # one the script's own code caught
        notes.append(refusal)
    layers = _module_layers(ns, run.bound_in_order, recorder)
    emit.result(
        TargetResult(
            SCRIPT_TARGET,
            Status.ERROR if any(e.kind != ErrorKind.UNTRACED for e in errors) else Status.OK,
            device.type,
            records=stand_ins.hover_notes(collect_records(recorder)),
            layers=layers,
            mismatches=mismatch_records(recorder),
            error=errors[0] if errors else None,
            errors=errors[1:],
            elapsed_ms=(time.perf_counter() - started) * 1000,
            notes=notes,
        )
    )


def _quiet_value_reads(run: _ScriptRun, ns: dict[str, Any]) -> None:
    """The script's own functions the model load already defined, redefined as `_quiet` says."""
    for (name, line), node in run.defs.items():
        func = ns.get(name)
        if not (
            isinstance(func, types.FunctionType)
            and func.__code__.co_filename == run.plan.file
            and func.__code__.co_firstlineno == line
            and func.__closure__ is None
        ):
            continue
        quiet, lines = _quiet(node)
        if quiet is None:
            continue
        code = compile(
            ast.Module(body=instrument_statements([quiet], run.plan.source, run.table), type_ignores=[]),
            run.plan.file,
            "exec",
        )
        try:
            exec(code, ns)
        except Exception:
            continue
        run.notes += [f"line {at} not traced: {_VALUES}" for at in lines]


def _quiet(node: ast.FunctionDef) -> tuple[ast.FunctionDef | None, list[int]]:
    """A function of the script with the statements in its loops that read a tensor's values (`total +=
    loss.item()`, `print(..., loss.item())`) left out, with what reads what those bound: on meta they would end
    the call (`train(...)` at its first log line, before `test(...)` ever ran); and the lines left out for a
    value read. None when there is none, or when its `return` would be left out: what it gives would be
    wrong, not merely unknown."""
    in_loops = {
        node_key(s)
        for loop in _outside_definitions(node)
        if isinstance(loop, ast.For | ast.While)
        for s in _outside_definitions(loop)
        if s is not loop and isinstance(s, ast.stmt) and _reads_values(s)
    }
    if not in_loops:
        return None, []
    keys, _ = left_out_with(node.body, set(), lambda s: node_key(s) in in_loops)
    nodes = {node_key(s): s for s in ast.walk(node) if isinstance(s, ast.stmt)}
    if any(_has_return(nodes[key]) for key in keys if key in nodes):
        return None, []
    quiet = _Silence(keys).visit(copy.deepcopy(node))
    return quiet, sorted(key[0] for key in keys & in_loops)


def _drop_guessed(stand_ins: StandIns, made: int, recorder: Recorder, met: int, notes: list[str], line: int) -> bool:
    """Whether the statement just run used a batch made from a model's inferred input; if so, the layer
    mismatches it met are dropped (a guess never accuses the code) and a note says so."""
    if stand_ins.made_count() == made:
        return False
    if len(recorder.mismatches) > met:
        del recorder.mismatches[met:]
        notes.append(f"line {line}: a layer did not fit the batch made from the model's inferred input (no finding)")
    return True


def _refusal_note(ctx: Context) -> str | None:
    if ctx.sandbox is None or not ctx.sandbox.refusals:
        return None
    message, _path, line = ctx.sandbox.refusals[0]
    return f"the trace refused what line {line} tried: {message}"


def run_script_safely(plan: TracePlan, ctx: Context, recorder: Recorder, emit: Emitter) -> None:
    """`run_script`; a bug of ours while reporting loses the script's result, never the worker's protocol."""
    try:
        run_script(plan, ctx, recorder, emit)
    except BaseException as err:
        traceback.print_exc()
        message = f"shapelens could not report this trace ({type(err).__name__}: {err})"
        emit.result(TargetResult(SCRIPT_TARGET, Status.ERROR, ctx.device.type, error=TraceError(
            ErrorKind.CRASH, message, plan.file, 0)))  # fmt: skip


def script_failed(plan: TracePlan, error: TraceError) -> TargetResult:
    """The script's result when the file did not even load (its imports failed): the same error."""
    return TargetResult(SCRIPT_TARGET, Status.ERROR, None, error=error)
