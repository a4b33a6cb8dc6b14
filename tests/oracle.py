"""Ground truth for shape tests: the shapes each source line binds when a model's `forward` runs for real
on CPU tensors.

This module is deliberately independent of Shapelens (it must never import `shapelens`): it is what the
engine's hints are compared with. It runs the model eagerly on small random CPU tensors under
`sys.settrace` and, for every project file the run enters, reads the names a statement bound from the
frame's locals once the next statement starts (or the function returns). Each file is parsed with `ast`
so the oracle knows every statement's targets and its first and last line; a line event inside a
multi-line statement (Python 3.11 reports sub-expression lines) belongs to that statement.

What counts as a record, matching the JSON contract of `shapelens check`:

- an assignment (`x = ...`, `x: T = ...`, `x += ...`) binding a tensor: one record per bound name; a tuple
  target such as `out, (h_n, c_n) = self.lstm(x)` gives one record per name; `self.cache = x` gives target
  `self.cache`; subscript targets are not recorded;
- a `return` of a tensor: target `"return"`; a `return` of a tuple or list of at most 8 elements: one record
  per tensor element, `"return[0]"`, `"return[1]"`, ..., nested at most two deep (`"return[1][0]"` for
  `return out, (h, c)`);
- other values that are not tensors (ints, tuples bound to one name, modules) are not recorded.

A line that runs more than once with different shapes (a block used twice) keeps every distinct shape, in
the order first seen.

How the model file is loaded: like an import, but only its imports, `def`s, `class`es and plain
assignments run at module level. Bare expression statements (`train(model)`), `if __name__ == "__main__":`
blocks, loops, `with` and `try` blocks are skipped, so a file that trains at import time is safe to load.
The model is then built from a class name and constructor arguments, from a `# shapelens:` directive
(parsed here, independently of the engine), from a `build` expression (`"Net(10, hidden=20)"`), or by
running chosen example-call statements of the file (`example_lines`, e.g. the lines under
`if __name__ == "__main__":` that build the model and call it).
"""

from __future__ import annotations

import ast
import itertools
import os
import re
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

Shape = tuple[int, ...]
Key = tuple[str, int, str]  # (absolute file path, statement's first line, target)

_counter = itertools.count()
_DIRECTIVE = re.compile(r"#\s*shapelens:\s*(?P<body>.+?)\s*$")
_DTYPES = {
    "float32": torch.float32,
    "float": torch.float32,
    "float64": torch.float64,
    "double": torch.float64,
    "float16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "long": torch.int64,
    "int32": torch.int32,
    "int": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}


# -- results ---------------------------------------------------------------------------------------------


@dataclass
class Record:
    """Every distinct shape one statement bound to one target during the run."""

    file: str  # absolute path
    function: str  # the code object's name: "forward", "<module>" for example-call lines
    line: int  # the statement's first line
    end_line: int  # the statement's last line (the label goes at its end: JSON `end_line`, `column`)
    end_column: int  # 1-based character column just after the statement's last character
    target: str
    shapes: list[Shape] = field(default_factory=list)
    dtypes: list[str] = field(default_factory=list)  # parallel to shapes: "float32", "int64", ...


@dataclass
class OracleRun:
    records: list[Record]
    error: BaseException | None  # what the forward raised, if it did (records stop at that line)
    output: Any  # what the forward returned (None on error)
    model: nn.Module | None

    def shapes(self) -> dict[Key, list[Shape]]:
        return {(r.file, r.line, r.target): list(r.shapes) for r in self.records}

    def by_end_line(self) -> dict[tuple[str, int, str], Record]:
        """Records keyed by (file, the statement's last line, target): where an editor puts the label."""
        return {(r.file, r.end_line, r.target): r for r in self.records}


# -- the public entry points -----------------------------------------------------------------------------


def cpu_line_shapes(
    path: str,
    class_name: str | None = None,
    inputs: Mapping[str, Any] | Sequence[Any] | None = None,
    init_args: Sequence[Any] = (),
    init_kwargs: Mapping[str, Any] | None = None,
    *,
    directive: str | None = None,
    build: str | None = None,
    example_lines: Sequence[int] = (),
    root: str | None = None,
) -> dict[Key, list[Shape]]:
    """(file, line, target) -> the distinct shapes that statement bound when the forward ran on CPU.

    Raises what the forward raised; use `run_on_cpu` to get the records up to a failing line instead.
    See `run_on_cpu` for the arguments.
    """
    run = run_on_cpu(
        path,
        class_name,
        inputs,
        init_args,
        init_kwargs,
        directive=directive,
        build=build,
        example_lines=example_lines,
        root=root,
    )
    if run.error is not None:
        raise run.error
    return run.shapes()


def run_on_cpu(
    path: str,
    class_name: str | None = None,
    inputs: Mapping[str, Any] | Sequence[Any] | None = None,
    init_args: Sequence[Any] = (),
    init_kwargs: Mapping[str, Any] | None = None,
    *,
    directive: str | None = None,
    build: str | None = None,
    example_lines: Sequence[int] = (),
    root: str | None = None,
    seed: int = 0,
) -> OracleRun:
    """Build the model, run its forward on CPU tensors, and record every statement's tensors.

    - `class_name` with `init_args`/`init_kwargs`: the model is `class_name(*init_args, **init_kwargs)`.
    - `directive`: the text after `# shapelens:` (`"init(10, hidden=20), x=(8, 3, 32, 32)"`); its
      `init(...)` gives constructor arguments and its keywords the inputs. Pass `directive=...` with
      `class_name`; `directive_for(path, class_name)` reads it from the file.
    - `build`: an expression evaluated in the module's namespace that returns the model.
    - `inputs`: keyword inputs (a mapping) or positional inputs (a sequence). Each value is a shape tuple
      (a float32 tensor of that shape), a tensor, a string (an expression evaluated in the module's
      namespace) or anything else (passed as is).
    - `example_lines`: first lines of statements of the file to run in the module's namespace (in the
      given order, recorded too) instead of building and calling the model here: e.g. the example call
      under `if __name__ == "__main__":` (`net = Net()`, `x = torch.randn(...)`, `out = net(x)`).
    - `root`: the project folder (files below it are recorded); defaults to the file's folder. Like
      running the file from its folder, the folder and `root` are on `sys.path`.
    """
    path = os.path.realpath(path)
    root = os.path.realpath(root or os.path.dirname(path))
    torch.manual_seed(seed)
    recorder = _Recorder(root)
    with _on_sys_path([os.path.dirname(path), root]), _single_thread():
        module = _load_module(path, skip_lines=example_lines)
        if example_lines:
            code = _compile_statements(path, example_lines)
            recorder.extra_code.add(code)
            with recorder:
                try:
                    exec(code, module.__dict__)
                except Exception as err:  # the example's forward failed: keep what was recorded
                    return OracleRun(recorder.records(), err, None, None)
            return OracleRun(recorder.records(), None, None, None)

        args: list[Any] = list(init_args)
        kwargs: dict[str, Any] = dict(init_kwargs or {})
        call_args: list[Any] = []
        call_kwargs: dict[str, Any] = {}
        if directive is not None:
            d_args, d_kwargs, d_inputs = parse_directive(directive, module.__dict__)
            args, kwargs = args + d_args, {**kwargs, **d_kwargs}
            call_kwargs.update(d_inputs)
        if build is not None:
            model = eval(build, module.__dict__)
        elif class_name is not None:
            model = getattr(module, class_name)(*args, **kwargs)
        else:
            raise ValueError("give class_name, build or example_lines")
        if isinstance(inputs, Mapping):
            call_kwargs.update({k: _make_input(v, module.__dict__) for k, v in inputs.items()})
        elif inputs is not None:
            call_args = [_make_input(v, module.__dict__) for v in inputs]
        with torch.no_grad(), recorder:
            try:
                output = model(*call_args, **call_kwargs)
            except Exception as err:
                return OracleRun(recorder.records(), err, None, model)
        return OracleRun(recorder.records(), None, output, model)


def run_script_on_cpu(
    path: str, skip_lines: Sequence[int] = (), root: str | None = None, seed: int = 0
) -> tuple[OracleRun, dict[int, BaseException]]:
    """The file's top level run as a script on CPU, as `python file.py` would (the `if __name__ ==
    "__main__":` block's statements in its place), recording every statement, at the top level and in the
    functions it calls. Each top-level statement runs on its own: one that raises is kept in the returned
    failures (by its line) and the run goes on, so a statement after it that needs its names fails too.
    Loops run in full. `skip_lines`: first lines of statements, at any depth, that do not run (a write, a
    print); each becomes `pass`."""
    path = os.path.realpath(path)
    root = os.path.realpath(root or os.path.dirname(path))
    torch.manual_seed(seed)
    recorder = _Recorder(root)
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), filename=path)
    skipped = set(skip_lines)

    class _Skip(ast.NodeTransformer):
        def visit(self, node: ast.AST) -> Any:
            if isinstance(node, ast.stmt) and node.lineno in skipped:
                return ast.copy_location(ast.Pass(), node)
            return super().visit(node)

    statements: list[ast.stmt] = []
    for stmt in tree.body:
        test = ast.unparse(stmt.test) if isinstance(stmt, ast.If) else ""
        main = "__name__" in test and "__main__" in test
        statements += stmt.body if main else [stmt]  # type: ignore[attr-defined]
    name = f"_oracle_script_{next(_counter)}"
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    failures: dict[int, BaseException] = {}
    with _on_sys_path([os.path.dirname(path), root]), _single_thread():
        for stmt in statements:
            node = _Skip().visit(stmt)
            code = compile(ast.fix_missing_locations(ast.Module(body=[node], type_ignores=[])), path, "exec")
            recorder.extra_code.add(code)
            with recorder:
                try:
                    exec(code, module.__dict__)
                except Exception as err:
                    failures[stmt.lineno] = err
    first = next(iter(failures.values()), None)
    return OracleRun(recorder.records(), first, None, None), failures


# -- directives ------------------------------------------------------------------------------------------


def parse_directive(
    body: str, namespace: Mapping[str, Any] | None = None
) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """`init(10, hidden=20), x=(8, 3, 32, 32), ids=int64(2, 40)` -> (init args, init kwargs, inputs).

    The body is Python call-argument syntax: positional `init(...)` items give constructor arguments;
    keywords give forward inputs — a tuple of ints is a float32 tensor of that shape, `DTYPE(dims...)` a
    tensor of that dtype, anything else is evaluated and passed as is.
    """
    env = dict(namespace or {})
    call = ast.parse(f"_directive({body})", mode="eval").body
    assert isinstance(call, ast.Call)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for item in call.args:
        if not (isinstance(item, ast.Call) and isinstance(item.func, ast.Name) and item.func.id == "init"):
            raise ValueError(f"positional directive items must be init(...): {ast.unparse(item)}")
        args += [_eval(a, env) for a in item.args]
        kwargs.update({k.arg: _eval(k.value, env) for k in item.keywords if k.arg})
    inputs: dict[str, Any] = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            raise ValueError("** is not allowed in a directive")
        value = keyword.value
        if isinstance(value, ast.Tuple):
            inputs[keyword.arg] = _tensor(tuple(_eval(e, env) for e in value.elts), torch.float32)
        elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in _DTYPES:
            shape = tuple(_eval(e, env) for e in value.args)
            inputs[keyword.arg] = _tensor(shape, _DTYPES[value.func.id])
        else:
            inputs[keyword.arg] = _eval(value, env)
    return args, kwargs, inputs


def directives_in_file(path: str) -> dict[str, str]:
    """class name -> directive body, for every class with a `# shapelens:` comment on or above its line
    or its `forward` (the comment block directly above, or at the end of the `class`/`def` line)."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    lines = text.splitlines()
    found: dict[str, str] = {}
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.ClassDef):
            continue
        anchors = [node.lineno]
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name == "forward":
                anchors.append(item.lineno)
        decorators = [d.lineno for d in node.decorator_list]
        for anchor in anchors:
            body = _directive_near(lines, min([anchor, *decorators]) if anchor == node.lineno else anchor)
            if body is None:
                body = _directive_at(lines[anchor - 1])
            if body is not None:
                found[node.name] = body
                break
    return found


def directive_for(path: str, class_name: str) -> str:
    directive = directives_in_file(path).get(class_name)
    if directive is None:
        raise LookupError(f"no `# shapelens:` directive for {class_name} in {path}")
    return directive


def _directive_near(lines: list[str], line: int) -> str | None:
    index = line - 2
    while index >= 0 and lines[index].strip().startswith("#"):
        body = _directive_at(lines[index])
        if body is not None:
            return body
        index -= 1
    return None


def _directive_at(line: str) -> str | None:
    match = _DIRECTIVE.search(line)
    if match is None or match.group("body").startswith("ignore"):
        return None
    return match.group("body")


def _eval(node: ast.expr, env: Mapping[str, Any]) -> Any:
    return eval(compile(ast.Expression(node), "<directive>", "eval"), dict(env))


def _tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    if dtype == torch.bool:
        return torch.zeros(shape, dtype=torch.bool)
    if dtype.is_floating_point:
        return torch.randn(shape, dtype=dtype)
    # Small non-negative values are valid indices for any embedding or class count >= 2.
    return torch.randint(0, 2, shape, dtype=dtype)


def _make_input(value: Any, namespace: Mapping[str, Any]) -> Any:
    if isinstance(value, tuple) and all(isinstance(d, int) for d in value):
        return torch.randn(value)
    if isinstance(value, str):
        return eval(value, dict(namespace))
    return value


# -- loading a model file without running its script part ------------------------------------------------

_KEPT = (
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Assign,
    ast.AnnAssign,
)


def load_module(path: str, skip_lines: Sequence[int] = (), root: str | None = None) -> types.ModuleType:
    """The file as a module registered in `sys.modules`, with only its imports, definitions and plain
    assignments run (never `train(model)`, a `__main__` block, a loop or a `with`). Its folder and `root`
    are on `sys.path` while it loads, so `from blocks import ResBlock` finds the sibling file."""
    path = os.path.realpath(path)
    with _on_sys_path([os.path.dirname(path), root or os.path.dirname(path)]):
        return _load_module(path, skip_lines)


def _load_module(path: str, skip_lines: Sequence[int] = ()) -> types.ModuleType:
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), filename=path)
    body: list[ast.stmt] = [s for s in tree.body if isinstance(s, _KEPT) and s.lineno not in set(skip_lines)]
    name = f"_oracle_{os.path.splitext(os.path.basename(path))[0]}_{next(_counter)}"
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module  # dataclasses, inspect and transformers look modules up here
    exec(compile(ast.Module(body=body, type_ignores=[]), path, "exec"), module.__dict__)
    return module


def _compile_statements(path: str, lines: Sequence[int]) -> types.CodeType:
    """The statements of `path` starting at `lines` (at any depth), dedented into one module code object
    that keeps their line numbers."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), filename=path)
    by_line: dict[int, ast.stmt] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt):
            by_line.setdefault(node.lineno, node)
    missing = [line for line in lines if line not in by_line]
    if missing:
        raise LookupError(f"no statement starts at line(s) {missing} of {path}")
    return compile(ast.Module(body=[by_line[line] for line in lines], type_ignores=[]), path, "exec")


@contextmanager
def rpc_group(name: str) -> Iterator[None]:
    """A real RPC group of one worker, this process, named `name` (with a one-process gloo group for DDP): a
    model written for `torch.distributed.rpc` (`rpc.remote(name, ...)`, RRefs, DDP) then runs for real here,
    so its shapes are the truth the trace's single-process stand-in is checked against."""
    import socket

    import torch.distributed as dist
    import torch.distributed.rpc as rpc

    with socket.socket() as probe:  # a free local port for the group's store
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    dist.init_process_group("gloo", init_method=address, rank=0, world_size=1)
    options = rpc.TensorPipeRpcBackendOptions(init_method=f"tcp://127.0.0.1:{port + 1}")
    try:
        rpc.init_rpc(name, rank=0, world_size=1, rpc_backend_options=options)
        try:
            yield
        finally:
            rpc.shutdown()
    finally:
        dist.destroy_process_group()


@contextmanager
def _single_thread() -> Iterator[None]:
    """Shapes do not depend on threads, and on a busy 2-core machine tiny multi-threaded CPU ops are ~100x
    slower than single-threaded ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextmanager
def _on_sys_path(folders: Sequence[str]) -> Iterator[None]:
    """The folders first on `sys.path`, and imports of the project's own files fresh: a module cached
    under the same name (`blocks` from another folder, or from an earlier run) is set aside meanwhile,
    and what this run imported from the folders is dropped afterwards."""
    folders = [os.path.realpath(f) for f in dict.fromkeys(folders)]
    names = {
        os.path.splitext(entry)[0]
        for folder in folders
        for entry in os.listdir(folder)
        if entry.endswith(".py") or os.path.isfile(os.path.join(folder, entry, "__init__.py"))
    }
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if name.split(".")[0] in names}
    added = [f for f in folders if f not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for folder in added:
            if folder in sys.path:
                sys.path.remove(folder)
        for name in [n for n in list(sys.modules) if n.split(".")[0] in names]:
            del sys.modules[name]
        sys.modules.update(saved)


# -- statements of a file --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Statement:
    line: int
    end_line: int
    end_column: int
    targets: tuple[str, ...]  # dotted names ("x", "self.cache"); empty for statements that bind nothing
    is_return: bool


@dataclass(frozen=True)
class _Group:
    """Simple statements that share a line (`a = f(x); b = g(a)`): Python reports one line event for them,
    so they finish together. Almost always a single statement."""

    statements: tuple[_Statement, ...]

    @property
    def returning(self) -> _Statement | None:
        last = self.statements[-1]
        return last if last.is_return else None


class _FileIndex:
    """For one file: which statement group each line belongs to (compound statements' header lines map to a
    group that binds nothing, so entering them finishes the previous statement)."""

    def __init__(self, path: str) -> None:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        self.lines = text.splitlines()
        self.by_line: dict[int, _Group] = {}
        simple: list[tuple[int, int, _Statement]] = []
        for node in ast.walk(ast.parse(text, filename=path)):
            if isinstance(node, ast.stmt):
                statement = self._add(node)
                if statement is not None:
                    simple.append((node.lineno, node.col_offset, statement))
        groups: list[list[_Statement]] = []
        for _, _, statement in sorted(simple, key=lambda item: (item[0], item[1])):
            if groups and statement.line <= groups[-1][-1].end_line:
                groups[-1].append(statement)  # shares a line with the previous statement
            else:
                groups.append([statement])
        for members in groups:
            group = _Group(tuple(members))
            for line in range(members[0].line, max(m.end_line for m in members) + 1):
                self.by_line[line] = group  # simple statements do not nest: this is the innermost group

    def _add(self, node: ast.stmt) -> _Statement | None:
        compound = hasattr(node, "body")  # if/for/while/with/try/def/class: index their header only
        if compound:
            body: list[ast.stmt] = node.body  # type: ignore[attr-defined]
            first_body = min(s.lineno for s in body) if body else node.lineno
            end_line = max(node.lineno, first_body - 1)
            # a `for` header binds its loop variable (the trace records it as a hint on the `for` line)
            bound = tuple(_names(node.target)) if isinstance(node, ast.For) else ()
            header = _Group((_Statement(node.lineno, end_line, 0, bound, False),))
            for line in range(node.lineno, end_line + 1):
                self.by_line.setdefault(line, header)
            return None
        end_line = node.end_lineno or node.lineno
        end_column = self._character_column(end_line, node.end_col_offset or 0) + 1
        targets: list[str] = []
        if isinstance(node, ast.Assign):
            for target in node.targets:
                targets += _names(target)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign) and node.value is not None:
            targets += _names(node.target)
        return _Statement(node.lineno, end_line, end_column, tuple(targets), isinstance(node, ast.Return))

    def _character_column(self, line: int, byte_offset: int) -> int:
        raw = self.lines[line - 1].encode("utf-8")
        return len(raw[:byte_offset].decode("utf-8", errors="replace"))


def _names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [name for element in target.elts for name in _names(element)]
    if isinstance(target, ast.Starred):
        return _names(target.value)
    if isinstance(target, ast.Attribute):
        inner = _names(target.value) if isinstance(target.value, ast.Name | ast.Attribute) else []
        return [f"{inner[0]}.{target.attr}"] if inner else []
    return []  # subscripts are not bindings of a name


def _lookup(frame_locals: Mapping[str, Any], dotted: str) -> Any:
    head, *rest = dotted.split(".")
    value = frame_locals.get(head, _MISSING)
    for attr in rest:
        if value is _MISSING:
            break
        value = getattr(value, attr, _MISSING)
    return value


_MISSING = object()


# -- the recorder ----------------------------------------------------------------------------------------


class _Recorder:
    """`sys.settrace` on frames whose file lies under `root` (plus example-call code objects)."""

    def __init__(self, root: str) -> None:
        self.root = root + os.sep
        self.extra_code: set[types.CodeType] = set()
        self._records: dict[tuple[str, int, str], Record] = {}
        self._indexes: dict[str, _FileIndex | None] = {}
        self._files: dict[str, str | None] = {}
        self._previous: Any = None

    def __enter__(self) -> _Recorder:
        self._previous = sys.gettrace()
        sys.settrace(self._global)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.settrace(self._previous)

    def records(self) -> list[Record]:
        return list(self._records.values())

    def _project_file(self, filename: str) -> str | None:
        cached = self._files.get(filename, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        real = os.path.realpath(filename)
        ok = (
            real.startswith(self.root)
            and real != os.path.realpath(__file__)
            and "site-packages" not in real
            and f"{os.sep}.venv{os.sep}" not in real
            and os.path.isfile(real)
        )
        self._files[filename] = real if ok else None
        return real if ok else None

    def _index(self, file: str) -> _FileIndex | None:
        if file not in self._indexes:
            try:
                self._indexes[file] = _FileIndex(file)
            except (OSError, SyntaxError):
                self._indexes[file] = None
        return self._indexes[file]

    def _global(self, frame: types.FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        code = frame.f_code
        if event != "call":
            return None
        if code not in self.extra_code and code.co_name.startswith("<"):
            return None  # comprehensions, lambdas and module bodies belong to their enclosing statement
        file = self._project_file(code.co_filename)
        if file is None:
            return None
        index = self._index(file)
        if index is None:
            return None
        is_generator = bool(code.co_flags & (0x20 | 0x80 | 0x200))  # generator, coroutine, async generator
        return _FrameTracer(self, file, index, is_generator).trace

    def record(self, file: str, function: str, statement: _Statement, target: str, value: Any) -> None:
        if not isinstance(value, torch.Tensor):
            return
        key = (file, statement.line, target)
        record = self._records.get(key)
        if record is None:
            record = Record(file, function, statement.line, statement.end_line, statement.end_column, target)
            self._records[key] = record
        shape = tuple(int(d) for d in value.shape)
        dtype = str(value.dtype).removeprefix("torch.")
        if (shape, dtype) not in zip(record.shapes, record.dtypes, strict=True):
            record.shapes.append(shape)
            record.dtypes.append(dtype)


def _returned(target: str, value: Any, depth: int) -> list[tuple[str, Any]]:
    """A returned value's records: the value itself, or each element of a (short, shallow) tuple or list."""
    if not isinstance(value, tuple | list) or isinstance(value, torch.Size):
        return [(target, value)]
    if len(value) > 8 or depth == 2:
        return []
    found: list[tuple[str, Any]] = []
    for index, item in enumerate(value):
        found += _returned(f"{target}[{index}]", item, depth + 1)
    return found


class _FrameTracer:
    """Per-frame state: the statement (group) now executing; its targets are read when the next one starts
    or the function returns."""

    def __init__(self, recorder: _Recorder, file: str, index: _FileIndex, is_generator: bool) -> None:
        self.recorder = recorder
        self.file = file
        self.index = index
        self.is_generator = is_generator
        self.pending: _Group | None = None

    def trace(self, frame: types.FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        if event == "line":
            group = self.index.by_line.get(frame.f_lineno)
            if group is not self.pending:
                self._finish(frame)
                self.pending = group
        elif event == "exception":
            self.pending = None  # the statement did not complete: its targets hold older values
        elif event == "return" and not self.is_generator:  # a generator's "return" events are its yields
            group = self.pending
            self._finish(frame)
            if group is not None and group.returning is not None:
                for target, value in _returned("return", arg, 0):
                    self.recorder.record(self.file, frame.f_code.co_name, group.returning, target, value)
            self.pending = None
        return self.trace

    def _finish(self, frame: types.FrameType) -> None:
        group = self.pending
        if group is None:
            return
        local_values = frame.f_locals
        seen: set[str] = set()
        for statement in reversed(group.statements):  # a name bound twice keeps only its last binding
            for target in statement.targets:
                if target in seen:
                    continue
                seen.add(target)
                value = _lookup(local_values, target)
                if value is not _MISSING:
                    self.recorder.record(self.file, frame.f_code.co_name, statement, target, value)
