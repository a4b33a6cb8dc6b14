"""The trace child: one forked process per plan. It loads the user's file (only the statements the plan
keeps, every function instrumented), builds each model on the trace device, runs its `forward` and writes
what it saw to the worker as JSON lines, one `target` event per model.

User code runs here and nowhere else. Its stdout/stdin are detached, every descriptor it inherited from the
worker is closed (the event pipe moves to a high number, and each event carries the run's token), a timer
bounds the load and each model, an address-space limit bounds memory, and the worker kills the whole
process if it stops answering. Whatever user code raises (`sys.exit` included) is a finding, never our
traceback.
"""

from __future__ import annotations

import ast
import fcntl
import gc
import importlib.abc
import importlib.machinery
import json
import os
import resource
import signal
import stat
import struct
import sys
import time
import traceback
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import nn

from shapelens.core.source import Source, parse, read_source
from shapelens.core.syntax import keep_top_level, node_key
from shapelens.trace import explain, rnn
from shapelens.trace.instrument import RECORD, RETURN, instrument
from shapelens.trace.recording import Recorder, in_recorder, note_flatten_factors


class TraceTimeout(BaseException):
    """Raised by the timer inside user code; a BaseException so `except Exception` in a model cannot eat it."""


class Emitter:
    def __init__(self, fd: int, progress: Any, token: str) -> None:
        self.fd = fd
        self.progress = progress  # an mmap shared with the worker: (file id, line) of the last statement
        self.token = token  # the worker ignores lines without it (anything user code managed to write)

    def __call__(self, event: dict[str, Any]) -> None:
        data = (json.dumps({"token": self.token, **event}) + "\n").encode()
        while data:
            data = data[os.write(self.fd, data) :]

    def at(self, file_id: int, line: int) -> None:
        if self.progress is not None:
            struct.pack_into("ii", self.progress, 0, file_id, line)


# -- process set-up ---------------------------------------------------------------------------------------


def isolate(plan: dict[str, Any]) -> None:
    """Detach stdin/stdout (user prints must not corrupt the protocol), cap memory, and put the file's
    folder and the project root on sys.path, as when the file is run from its folder."""
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)  # prints go to the log, not to the worker's protocol channel
    folder = os.path.dirname(plan["file"])
    for entry in (plan["root"], folder):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    os.chdir(folder)
    if plan["device"] == "cuda":
        return  # CUDA reserves tens of GB of address space at init: the worker's RSS watch bounds it instead
    try:
        with open("/proc/self/statm") as handle:
            current = int(handle.read().split()[0]) * resource.getpagesize()
        limit = current + int(plan["memory_mb"]) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (OSError, ValueError):  # not Linux: the worker's kill on timeout is the only bound
        pass


def seal_descriptors(channel: int) -> int:
    """Move the event pipe to a high descriptor and close every other one this process inherited, but 0, 1
    and 2: the worker's protocol stdout (duplicated there) and any older pipe must be out of user code's
    reach. Character devices stay (/dev/null, a GPU driver's handles, which CUDA here still uses).
    Returns the event pipe's new descriptor."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    floor = 1000 if soft < 0 else max(3, min(1000, soft - 24))
    try:
        moved = fcntl.fcntl(channel, fcntl.F_DUPFD_CLOEXEC, floor)
        os.close(channel)
        channel = moved
    except OSError:  # a tiny descriptor limit: it stays where it is, the token still guards it
        pass
    try:
        inherited = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # not Linux
        inherited = list(range(3, 1024 if soft < 0 else min(soft, 65536)))
    for fd in inherited:
        if fd <= 2 or fd == channel:
            continue
        try:
            if not stat.S_ISCHR(os.fstat(fd).st_mode):
                os.close(fd)
        except OSError:  # already closed (the listing's own descriptor)
            continue
    return channel


def project_file_test(root: str, main_file: str) -> Callable[[str], bool]:
    root = os.path.abspath(root)
    ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # shapelens itself is never user code
    excluded = tuple({os.path.abspath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, ours)})
    cache: dict[str, bool] = {main_file: True}

    def is_project(path: str) -> bool:
        known = cache.get(path)
        if known is None:
            full = os.path.abspath(path)
            known = cache[path] = (
                not path.startswith("<")  # <frozen runpy>, <string>, <shapelens>
                and full.startswith(root + os.sep)
                and not full.startswith(excluded)
                and "site-packages" not in full
                and os.sep + "." not in full[len(root) :]  # .venv, .tox, ...
            )
        return known

    return is_project


# -- loading user code --------------------------------------------------------------------------------------


class Loader:
    """Executes project files as real modules, keeping only what may run and recording every function."""

    def __init__(self, recorder: Recorder, on_file: Callable[[int, str], None]) -> None:
        self.recorder = recorder
        self.on_file = on_file  # the worker maps progress (file id, line) back to a path

    def exec_file(self, module: types.ModuleType, path: str, text: str, keep: set[tuple[Any, ...]] | None) -> None:
        exec(self.prepare(module, path, text, keep), module.__dict__)

    def prepare(
        self, module: types.ModuleType, path: str, text: str, keep: set[tuple[Any, ...]] | None
    ) -> types.CodeType:
        """The file's code, filtered and instrumented, with the recording functions in `module`."""
        parsed = parse(path, text)
        if not isinstance(parsed, Source):
            raise SyntaxError(f"{path}:{parsed.span.line}: {parsed.message}")
        tree = parsed.tree
        body = keep_top_level(tree) if keep is None else [s for s in tree.body if node_key(s) in keep]
        module_tree = ast.Module(body=body, type_ignores=[])
        module_tree, table = instrument(module_tree, text)
        file_id = self.recorder.add_file(path, table)
        self.on_file(file_id, path)
        record, record_return = self.recorder.bind(file_id)
        module.__dict__[RECORD] = record
        module.__dict__[RETURN] = record_return
        return compile(module_tree, path, "exec")


class ProjectFinder(importlib.abc.MetaPathFinder):
    """Imports of the user's own files go through `Loader` (filtered and recorded); all else is untouched."""

    def __init__(self, loader: Loader, is_project: Callable[[str], bool]) -> None:
        self.loader = loader
        self.is_project = is_project

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.origin or not spec.origin.endswith(".py") or not self.is_project(spec.origin):
            return None
        spec.loader = _ProjectModuleLoader(self.loader, spec.origin)
        return spec


class _ProjectModuleLoader(importlib.abc.Loader):
    def __init__(self, loader: Loader, path: str) -> None:
        self.loader = loader
        self.path = path

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        self.loader.exec_file(module, self.path, read_source(self.path), keep=None)


# -- patches that make user code traceable ---------------------------------------------------------------


def install_patches(recorder: Recorder, ctx: Context) -> None:
    """Record where modules are built, watch every layer call, keep flatten factors, redirect explicit
    device moves to the trace device, and use the RNN shape rule on meta."""
    original_init = nn.Module.__init__

    def module_init(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        recorder.note_construction(self)

    nn.Module.__init__ = module_init  # type: ignore[method-assign]
    nn.modules.module.register_module_forward_pre_hook(recorder.pre_hook)  # type: ignore[arg-type]
    nn.modules.module.register_module_forward_hook(recorder.forward_hook)

    def keep_factors(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(tensor: Any, *args: Any, **kwargs: Any) -> Any:
            out = original(tensor, *args, **kwargs)
            if isinstance(tensor, torch.Tensor):
                note_flatten_factors(out, tensor)
            return out

        return wrapper

    for owner, name in ((torch.Tensor, "view"), (torch.Tensor, "reshape"), (torch.Tensor, "flatten"),
                        (torch, "flatten"), (torch, "reshape")):  # fmt: skip
        setattr(owner, name, keep_factors(getattr(owner, name)))
    flatten_forward = nn.Flatten.forward
    nn.Flatten.forward = lambda self, x: keep_factors(lambda t: flatten_forward(self, t))(x)  # type: ignore[method-assign,assignment]

    def redirect(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if args and isinstance(args[0], str | torch.device | int) and not isinstance(args[0], bool):
                args = (ctx.device, *args[1:])
            if "device" in kwargs:
                kwargs["device"] = ctx.device
            return original(self, *args, **kwargs)

        return wrapper

    torch.Tensor.to = redirect(torch.Tensor.to)  # type: ignore[method-assign]
    nn.Module.to = redirect(nn.Module.to)  # type: ignore[method-assign]
    torch.Tensor.cuda = lambda self, *a, **k: self.to(ctx.device)  # type: ignore[method-assign]
    nn.Module.cuda = lambda self, *a, **k: self.to(ctx.device)  # type: ignore[method-assign]
    if ctx.device.type == "meta":  # real-device traces run the real kernels
        rnn.install()


# -- running one model --------------------------------------------------------------------------------------


def _find_nodes(tree: ast.Module) -> dict[tuple[Any, ...], list[ast.AST]]:
    found: dict[tuple[Any, ...], list[ast.AST]] = {}
    for node in ast.walk(tree):
        if hasattr(node, "lineno"):
            found.setdefault(node_key(node), []).append(node)
    return found


class Target:
    def __init__(
        self,
        spec: dict[str, Any],
        module: types.ModuleType,
        path: str,
        nodes: Any,
        device: torch.device,
        move: bool = True,
    ) -> None:
        self.move = move  # False under FakeTensorMode: its parameters are already fake, `.to()` cannot swap them
        self.spec = spec
        self.module = module
        self.path = path
        self.nodes = nodes
        self.device = device

    def _pick(self, item: dict[str, Any], kind: type) -> ast.AST:
        for node in self.nodes.get(tuple(item["node"]), []):
            if isinstance(node, kind):
                return node  # type: ignore[return-value]
        raise LookupError(f"plan item not found in the source: {item}")

    def run_statement(self, item: dict[str, Any], ns: dict[str, Any]) -> None:
        if "code" in item:
            exec(compile(item["code"], "<shapelens>", "exec"), ns)
            return
        stmt = self._pick(item, ast.stmt)
        exec(compile(ast.Module(body=[stmt], type_ignores=[]), self.path, "exec"), ns)  # type: ignore[list-item]

    def value(self, item: dict[str, Any], ns: dict[str, Any]) -> Any:
        if "tensor" in item:
            return make_tensor(item["tensor"], item["dtype"], self.device)
        if "code" in item:
            return eval(compile(item["code"], "<shapelens>", "eval"), ns)
        expr = self._pick(item, ast.expr)
        return eval(compile(ast.Expression(body=expr), self.path, "eval"), ns)  # type: ignore[arg-type]

    def build(self) -> tuple[nn.Module | None, list[Any], dict[str, Any]]:
        ns = dict(self.module.__dict__)
        for item in self.spec["setup"]:
            self.run_statement(item, ns)
        model = self.value(self.spec["model"], ns)
        if not isinstance(model, nn.Module):
            return None, [], {}
        if self.move:
            model = model.to(self.device)
        args = [self.value(a, ns) for a in self.spec["args"]]
        kwargs = {k: self.value(v, ns) for k, v in self.spec["kwargs"].items()}
        if not args and not kwargs and self.spec.get("infer_from") is not None:
            args = infer_inputs(model, self.spec["infer_from"], self.device)
        to_device = lambda v: v.to(self.device) if self.move and isinstance(v, torch.Tensor) else v  # noqa: E731
        return model, [to_device(a) for a in args], {k: to_device(v) for k, v in kwargs.items()}


class NoInput(Exception):
    pass


def make_tensor(dims: list[int], dtype_text: str, device: torch.device) -> torch.Tensor:
    dtype = {"float": torch.float32, "half": torch.float16, "double": torch.float64, "long": torch.int64,
             "int": torch.int32}.get(dtype_text) or getattr(torch, dtype_text)  # fmt: skip
    if device.type == "meta" or dtype == torch.bool:
        return torch.zeros(dims, dtype=dtype, device=device)
    if dtype.is_floating_point or dtype.is_complex:
        return torch.randn(dims, dtype=dtype, device=device)
    return torch.randint(0, 2, dims, dtype=dtype, device=device)  # valid indices for any embedding


def infer_inputs(model: nn.Module, attr: str, device: torch.device) -> list[torch.Tensor]:
    """An input fixed by the first layer: Linear → [2, in_features]; Embedding → int64 [2, 8];
    RNN/LSTM/GRU → [2, 8, input_size] with batch_first, else [8, 2, input_size]."""
    layer: Any = getattr(model, attr, None) if attr else model
    while isinstance(layer, nn.Sequential) and len(layer):
        layer = layer[0]
    if isinstance(layer, nn.Linear) and not isinstance(layer, nn.LazyLinear):
        return [make_tensor([2, layer.in_features], "float32", device)]
    if isinstance(layer, nn.Embedding):
        return [make_tensor([2, 8], "int64", device)]
    if isinstance(layer, nn.RNNBase):
        dims = [2, 8, layer.input_size] if layer.batch_first else [8, 2, layer.input_size]
        return [make_tensor(dims, "float32", device)]
    name = type(layer).__name__ if layer is not None else "its first layer"
    raise NoInput(
        f"no input is known for {type(model).__name__} and {name} does not fix its size: add "
        f"`# shapelens: x=(...)` above the class or its forward, or an example call in the file"
    )


@contextmanager
def time_limit(seconds: float, recorder: Recorder) -> Iterator[None]:
    """Raise TraceTimeout in the user's code after `seconds`. Never inside the recorder's bookkeeping: there
    the timeout waits until the statement is recorded (or, in a hook, for a millisecond more)."""

    def stop() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        recorder.expired = None
        raise TraceTimeout

    def expire(signum: int, frame: Any) -> None:
        if in_recorder(frame):
            recorder.expired = stop
            signal.setitimer(signal.ITIMER_REAL, 0.001)
            return
        stop()

    recorder.expired = None
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        recorder.expired = None


# Meta cannot follow data-dependent ops (nonzero, masks), legacy constructors or tensors pinned to the CPU;
# FakeTensorMode can, with unknown (unbacked) sizes where a shape depends on values.
NEEDS_FAKE = ("meta", "nonzero", "data-dependent", "cannot be converted to Scalar", "_local_scalar_dense",
              "Cannot copy out", "expected device", "is not on the expected device")  # fmt: skip
DATA_DEPENDENT = ("GuardOnDataDependentSymNode", "DataDependentOutputException", "data-dependent")


def _fake_mode() -> Any:
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    return FakeTensorMode(allow_non_fake_inputs=True, shape_env=ShapeEnv(allow_dynamic_output_shape_ops=True))


def _attempt(
    spec: dict[str, Any], ctx: Context, recorder: Recorder, plan: dict[str, Any], fake: bool
) -> dict[str, Any]:
    """Build and run one model once; returns the model, flop counts and stage reached, or the exception."""
    for store in (recorder.records, recorder.producers, recorder.uses):
        store.clear()
    recorder.mismatches.clear()
    recorder.last = (-1, 0)  # a failure outside user code must not point at the previous model's last line
    if recorder.on_progress is not None:
        recorder.on_progress(-1, 0)
    outcome: dict[str, Any] = {"stage": "build", "model": None, "flops": None, "error": None}
    from torch.utils.flop_counter import FlopCounterMode

    device_context = _fake_mode() if fake else torch.device(ctx.device)
    try:
        with time_limit(float(plan["timeout"]), recorder), device_context:
            target = Target(spec, ctx.module, plan["file"], ctx.nodes, ctx.device, move=not fake)
            model, args, kwargs = target.build()
            outcome["model"] = model
            if model is None:
                return outcome
            outcome["stage"] = "forward"
            # FLOPs only where asked (hover shows them): the counter dispatches every op in Python
            counter = FlopCounterMode(display=False) if plan.get("flops") else None
            recorder.active = True
            with counter or nullcontext():
                model(*args, **kwargs)
            recorder.active = False
            outcome["flops"] = counter.get_flop_counts() if counter else None
    except BaseException as err:  # anything the user's code raises, `sys.exit()` included, is a finding
        outcome["error"] = err
    finally:
        recorder.active = False
    return outcome


def _classify(err: BaseException, stage: str) -> str:
    text = f"{type(err).__name__}: {err}"
    if isinstance(err, TraceTimeout):
        return "timeout"
    if isinstance(err, MemoryError) or "can't allocate memory" in text:
        return "memory"
    if isinstance(err, NoInput):
        return "noinput"
    if explain.missing_forward(err):
        return "noforward"
    if isinstance(err, RecursionError):
        return "recursion"
    if isinstance(err, SystemExit | KeyboardInterrupt):
        return "exit"
    if stage == "import":
        return "build"
    if any(marker in text for marker in DATA_DEPENDENT):
        return "datadep"
    return "shape" if stage == "forward" else "build"


def trace_target(spec: dict[str, Any], ctx: Context, recorder: Recorder, emit: Emitter, plan: dict[str, Any]) -> None:
    started = time.perf_counter()
    emit({"event": "start", "name": spec["name"], "time": time.time()})
    result: dict[str, Any] = {
        "event": "target",
        "name": spec["name"],
        "mode": ctx.device.type,
        "status": "ok",
    }
    outcome = _attempt(spec, ctx, recorder, plan, fake=False)
    err = outcome["error"]
    if (
        ctx.device.type == "meta"
        and err is not None
        and _classify(err, outcome["stage"]) in ("shape", "build", "datadep")
        and any(marker in f"{type(err).__name__}: {err}" for marker in NEEDS_FAKE)
    ):
        ctx.device = torch.device("cpu")  # FakeTensorMode's tensors claim the CPU, storage-less all the same
        try:
            outcome = _attempt(spec, ctx, recorder, plan, fake=True)
        finally:
            ctx.device = torch.device("meta")
        result["mode"] = "fake"
        err = outcome["error"]
    if outcome["model"] is None and err is None:
        emit({**result, "status": "skipped"})
        return
    if err is not None:
        kind = _classify(err, outcome["stage"])
        if kind == "noinput":
            error = {"kind": "noinput", "message": str(err)}
        else:
            error = explain.failure(kind, err, plan, recorder, outcome["stage"])
        result.update(status="error", error=error)
    model = outcome["model"]
    result["records"] = collect_records(recorder)
    result["layers"] = collect_layers(model, recorder, outcome["flops"]) if model is not None else []
    result["mismatches"] = [
        {
            "code": m.code,
            "layer": type(m.module).__name__,
            "site": _site(recorder, m.module),
            "attr": m.attr,
            "declared": m.declared,
            "actual": m.actual,
            "factors": m.factors,
            "where": m.where,
            "input_shape": m.input_shape,
        }
        for m in recorder.mismatches
    ]
    result["elapsed_ms"] = (time.perf_counter() - started) * 1000
    emit(result)


def _site(recorder: Recorder, module: nn.Module) -> dict[str, Any] | None:
    site = recorder.sites.get(id(module))
    return None if site is None else dict(site.__dict__)


def collect_records(recorder: Recorder) -> list[dict[str, Any]]:
    out = []
    for (file_id, sid), values in list(recorder.records.items()):
        path, table = recorder.files[file_id]
        statement = table[sid]
        for target, items in list(values.items()):
            if not items:  # an entry is written whole, in one step; a half-made one is skipped all the same
                continue
            out.append({
                "path": path, "line": statement.line, "end_line": statement.end_line,
                "end_column": statement.end_column, "target": target,
                "shapes": [list(shape) for shape, _, _ in items], "dtype": items[0][1], "device": items[0][2],
                "producer": recorder.producers.get((file_id, sid)),
                "unknown": "data-dependent size" if any(None in s for s, _, _ in items) else None,
            })  # fmt: skip
    return out


def collect_layers(model: nn.Module, recorder: Recorder, flops: dict[str, Any] | None) -> list[dict[str, Any]]:
    root_name = type(model).__name__
    out = []
    for name, module in model.named_modules():
        site = _site(recorder, module)
        if site is None or not recorder.is_project_file(site["path"]):
            continue
        uses = recorder.uses.get(id(module), [])
        params = list(module.parameters())
        counted = (flops or {}).get(f"{root_name}.{name}" if name else root_name)
        out.append({
            "name": name, "type": type(module).__name__, "site": site,
            "params": _known(sum(p.numel() for p in params)),
            "bytes": _known(sum(p.numel() * p.element_size() for p in params)),
            "flops": _known(sum(counted.values())) if counted else (0 if flops is not None else None),
            "calls": [{
                "path": use.where[0] if use.where else None, "line": use.where[1] if use.where else None,
                "inputs": [list(s) for s in use.inputs], "outputs": [list(s) for s in use.outputs],
            } for use in uses],
            "extra": layer_extra(module),
        })  # fmt: skip
    return out


def _known(count: Any) -> int | None:
    """An int, or None where it depends on values (FakeTensorMode's unbacked sizes give `512*u0`)."""
    try:
        return int(count)
    except Exception:
        return None


def layer_extra(module: nn.Module) -> dict[str, Any]:
    extra: dict[str, Any] = {"training": module.training, "repr": module.extra_repr()}
    if isinstance(module, nn.modules.dropout._DropoutNd):
        extra.update(p=module.p, inplace=module.inplace)
    return extra


# -- the child's main ---------------------------------------------------------------------------------------


class Context:
    def __init__(self, module: types.ModuleType, nodes: Any, device: torch.device) -> None:
        self.module = module
        self.nodes = nodes
        self.device = device


def trace_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        return torch.device("meta")  # the CLI/LSP already said there is no CUDA here
    return torch.device({"cuda": "cuda", "cpu": "cpu"}.get(requested, "meta"))


def library_imports(before: set[str], is_project: Callable[[str], bool]) -> list[str]:
    """Modules this child imported that are libraries (installed packages, the standard library), never the
    user's files: the worker imports them after the trace, so the next children inherit them warm."""
    found = []
    for name in set(sys.modules) - before:
        path = getattr(sys.modules.get(name), "__file__", None)
        if path and not is_project(path) and name != "__main__" and not name.startswith("shapelens"):
            found.append(name)
    return sorted(found)


def run(plan: dict[str, Any], fd: int, progress: Any, token: str) -> None:
    emit = Emitter(fd, progress, token)
    before = set(sys.modules)
    isolate(plan)
    emit.fd = seal_descriptors(fd)
    device = trace_device(plan["device"])
    is_project = project_file_test(plan["root"], plan["file"])
    recorder = Recorder(is_project)
    recorder.on_progress = emit.at
    ctx = Context(types.ModuleType(plan["module"]), {}, device)
    install_patches(recorder, ctx)
    loader = Loader(recorder, lambda file_id, path: emit({"event": "file", "id": file_id, "path": path}))
    sys.meta_path.insert(0, ProjectFinder(loader, is_project))
    name = plan["module"]
    module = ctx.module
    module.__file__ = plan["file"]
    if "." in name:
        module.__package__ = name.rpartition(".")[0]
    sys.modules[name] = module
    try:
        code = loader.prepare(module, plan["file"], plan["source"], {tuple(k) for k in plan["keep"]})
        # the file's top level is user code too: a slow import or a sleep is a timeout at its line
        with (
            time_limit(float(plan["timeout"]), recorder),
            torch.device(device) if device.type == "meta" else nullcontext(),
        ):
            exec(code, module.__dict__)
    except BaseException as err:  # the file's own imports or definitions failed: every target fails alike
        error = explain.failure(_classify(err, "import"), err, plan, recorder, "import")
        for spec in plan["targets"]:
            emit({"event": "target", "name": spec["name"], "status": "error", "error": error, "mode": device.type,
                  "records": [], "layers": [], "mismatches": []})  # fmt: skip
        return
    parsed = parse(plan["file"], plan["source"])
    ctx.nodes = _find_nodes(parsed.tree) if isinstance(parsed, Source) else {}
    emit({"event": "imports", "modules": library_imports(before, is_project)})
    for spec in plan["targets"]:
        try:
            trace_target(spec, ctx, recorder, emit, plan)
        except BaseException as err:  # a bug of ours while reporting: lose this model, not the ones after it
            traceback.print_exc()
            message = f"shapelens could not report this trace ({type(err).__name__}: {err})"
            emit({"event": "target", "name": spec["name"], "status": "error", "mode": ctx.device.type,
                  "error": {"kind": "crash", "message": message, "path": plan["file"], "line": 0},
                  "records": [], "layers": [], "mismatches": []})  # fmt: skip


def main_in_child(plan: dict[str, Any], fd: int, progress: Any, token: str) -> None:
    """Entry point after fork: never returns."""
    gc.disable()  # a short-lived process: collecting would only copy the warm parent's pages
    code = 0
    try:
        run(plan, fd, progress, token)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
