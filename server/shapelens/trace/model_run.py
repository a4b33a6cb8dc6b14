"""Running one model in the trace child: build it from the plan's items, call its forward under the timer
(on meta, else under FakeTensorMode where meta cannot follow), and turn what the recorder saw into the
`TargetResult` the worker receives."""

from __future__ import annotations

import ast
import time
import types
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from shapelens.core.syntax import node_key
from shapelens.core.wire import (
    ErrorKind,
    Event,
    LayerCallRecord,
    LayerRecord,
    Mismatch,
    Record,
    Status,
    TargetResult,
    TargetSpec,
    TraceError,
    TracePlan,
)
from shapelens.trace import explain
from shapelens.trace.context import Context, Emitter, TraceTimeout, time_limit
from shapelens.trace.recording import Recorder
from shapelens.trace.sandbox import refusal_of


def _find_nodes(tree: ast.Module) -> dict[tuple[Any, ...], list[ast.AST]]:
    found: dict[tuple[Any, ...], list[ast.AST]] = {}
    for node in ast.walk(tree):
        if hasattr(node, "lineno"):
            found.setdefault(node_key(node), []).append(node)
    return found


class Target:
    def __init__(
        self,
        spec: TargetSpec,
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
        for item in self.spec.setup:
            self.run_statement(item, ns)
        model = self.value(self.spec.model, ns) if self.spec.model is not None else None
        if not isinstance(model, nn.Module):
            return None, [], {}
        if self.move:
            model = model.to(self.device)
        args = [self.value(a, ns) for a in self.spec.args]
        kwargs = {k: self.value(v, ns) for k, v in self.spec.kwargs.items()}
        if not args and not kwargs and self.spec.infer_from is not None:
            args = infer_inputs(model, self.spec.infer_from, self.device)
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


# Meta cannot follow data-dependent ops (nonzero, masks), legacy constructors or tensors pinned to the CPU;
# FakeTensorMode can, with unknown (unbacked) sizes where a shape depends on values.
NEEDS_FAKE = ("meta", "nonzero", "data-dependent", "cannot be converted to Scalar", "_local_scalar_dense",
              "Cannot copy out", "expected device", "is not on the expected device")  # fmt: skip
DATA_DEPENDENT = ("GuardOnDataDependentSymNode", "DataDependentOutputException", "data-dependent")


def _fake_mode() -> Any:
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    return FakeTensorMode(allow_non_fake_inputs=True, shape_env=ShapeEnv(allow_dynamic_output_shape_ops=True))


def _attempt(spec: TargetSpec, ctx: Context, recorder: Recorder, plan: TracePlan, fake: bool) -> dict[str, Any]:
    """Build and run one model once; returns the model, flop counts and stage reached, or the exception."""
    for store in (recorder.records, recorder.producers, recorder.uses):
        store.clear()
    recorder.mismatches.clear()
    if ctx.sandbox is not None:
        ctx.sandbox.refusals.clear()
    recorder.last = (-1, 0)  # a failure outside user code must not point at the previous model's last line
    if recorder.on_progress is not None:
        recorder.on_progress(-1, 0)
    outcome: dict[str, Any] = {"stage": "build", "model": None, "flops": None, "error": None}
    from torch.utils.flop_counter import FlopCounterMode

    device_context = _fake_mode() if fake else torch.device(ctx.device)
    try:
        with time_limit(float(plan.timeout), recorder), device_context:
            target = Target(spec, ctx.module, plan.file, ctx.nodes, ctx.device, move=not fake)
            model, args, kwargs = target.build()
            outcome["model"] = model
            if model is None:
                return outcome
            outcome["stage"] = "forward"
            # FLOPs only where asked (hover shows them): the counter dispatches every op in Python
            counter = FlopCounterMode(display=False) if plan.flops else None
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
    if refusal_of(err) is not None:
        return "refused"
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


def _swallowed_refusal(ctx: Context, plan: TracePlan) -> TraceError | None:
    """The first refusal of a trace that went on (the model caught it, or a thread met it): its finding."""
    if ctx.sandbox is None or not ctx.sandbox.refusals:
        return None
    message, path, line = ctx.sandbox.refusals[0]
    return TraceError(
        ErrorKind.REFUSED, f"{message}; shapes after it are unaffected", path or plan.file, line, stage="forward"
    )


def trace_target(spec: TargetSpec, ctx: Context, recorder: Recorder, emit: Emitter, plan: TracePlan) -> None:
    started = time.perf_counter()
    emit({"event": Event.START, "name": spec.name, "time": time.time()})
    mode = ctx.device.type
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
        mode = "fake"
        err = outcome["error"]
    if outcome["model"] is None and err is None:
        emit.result(TargetResult(spec.name, Status.SKIPPED, mode))
        return
    error = None
    status = Status.ERROR
    if err is None:
        error = _swallowed_refusal(ctx, plan)
        status = Status.OK
    else:
        kind = _classify(err, outcome["stage"])
        if kind == "noinput":
            error = TraceError(ErrorKind.NOINPUT, str(err))
        else:
            error = explain.failure(kind, err, plan, recorder, outcome["stage"])
    model = outcome["model"]
    mismatches = [
        Mismatch(
            m.code, type(m.module).__name__, recorder.sites.get(id(m.module)), m.attr, m.declared, m.actual,
            list(m.factors) if m.factors else None, list(m.where) if m.where else None, list(m.input_shape),
        )
        for m in recorder.mismatches
    ]  # fmt: skip
    emit.result(
        TargetResult(
            spec.name,
            status,
            mode,
            records=collect_records(recorder),
            layers=collect_layers(model, recorder, outcome["flops"]) if model is not None else [],
            mismatches=mismatches,
            error=error,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )
    )


def collect_records(recorder: Recorder) -> list[Record]:
    out = []
    for (file_id, sid), values in list(recorder.records.items()):
        path, table = recorder.files[file_id]
        statement = table[sid]
        for target, items in list(values.items()):
            if not items:  # an entry is written whole, in one step; a half-made one is skipped all the same
                continue
            out.append(Record(
                path, statement.line, statement.end_line, statement.end_column, target,
                shapes=[list(shape) for shape, _, _ in items], dtype=items[0][1], device=items[0][2],
                producer=recorder.producers.get((file_id, sid)),
                unknown="data-dependent size" if any(None in s for s, _, _ in items) else None,
            ))  # fmt: skip
    return out


def collect_layers(model: nn.Module, recorder: Recorder, flops: dict[str, Any] | None) -> list[LayerRecord]:
    root_name = type(model).__name__
    out = []
    for name, module in model.named_modules():
        site = recorder.sites.get(id(module))
        if site is None or not recorder.is_project_file(site.path):
            continue
        uses = recorder.uses.get(id(module), [])
        params = list(module.parameters())
        counted = (flops or {}).get(f"{root_name}.{name}" if name else root_name)
        out.append(LayerRecord(
            name, type(module).__name__, site,
            params=_known(sum(p.numel() for p in params)),
            bytes=_known(sum(p.numel() * p.element_size() for p in params)),
            flops=_known(sum(counted.values())) if counted else (0 if flops is not None else None),
            calls=[LayerCallRecord(
                use.where[0] if use.where else None, use.where[1] if use.where else None,
                [list(s) for s in use.inputs], [list(s) for s in use.outputs],
            ) for use in uses],
            extra=layer_extra(module),
        ))  # fmt: skip
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
