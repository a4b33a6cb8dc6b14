"""Running one model in the trace child: build it from the plan's items, call its forward under the timer
(on meta, else under FakeTensorMode where meta cannot follow), and turn what the recorder saw into the
`TargetResult` the worker receives."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import linecache
import re
import time
import traceback
import types
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

from shapelens.core.syntax import bound_names, loaded_names, mutated_names, node_key
from shapelens.core.wire import (
    ErrorKind,
    Event,
    InputSource,
    LayerCallRecord,
    LayerRecord,
    Mismatch,
    Record,
    Status,
    TargetResult,
    TargetSpec,
    TracedInput,
    TraceError,
    TracePlan,
)
from shapelens.trace import early_sibling, explain, rpc_stand_in, solve, symbolic
from shapelens.trace.context import Context, Emitter, TraceTimeout, time_limit
from shapelens.trace.inference import (
    FRAME_NAMES,
    Dim,
    Guess,
    NoInput,
    at_image_size,
    declared_image_size,
    infer,
)
from shapelens.trace.recording import Recorder, dtype_name, shape_of
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
        self.ns: dict[str, Any] = {}
        self.candidates: list[list[Guess]] = []  # input sets inferred from the built model, likeliest first
        self.guesses: list[Guess] | None = None  # the set this build used
        self.setup_line: int | None = None  # the set-up statement running (None: set-up done or none)
        self.setup_item: dict[str, Any] | None = None

    @staticmethod
    def _line(item: dict[str, Any]) -> int:
        return int(item["node"][0]) if "node" in item else 0

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
        if "tuple" in item:  # a tuple of inputs (an LSTM's `hidden=(h, c)`), each an item itself
            return tuple(self.value(i, ns) for i in item["tuple"])
        if "build" in item:  # the class built as the child sees fit (trace/library.py, where present)
            from shapelens.trace import library  # type: ignore[attr-defined]

            return library.build(ns[item["build"]])
        if "code" in item:
            return eval(compile(item["code"], "<shapelens>", "eval"), ns)
        expr = self._pick(item, ast.expr)
        return eval(compile(ast.Expression(body=expr), self.path, "eval"), ns)  # type: ignore[arg-type]

    def build_model(self) -> nn.Module | None:
        ns = dict(self.module.__dict__)
        for item in self.spec.setup:
            self.setup_line, self.setup_item = self._line(item), item
            try:
                self.run_statement(item, ns)
            except Exception as err:
                if not item.get(OPTIONAL) or refusal_of(err) is not None:
                    raise
                # an example's set-up the fallback runs where it can (`_example_fallback`): what needs data
                # a shape-only trace lacks is left out, with what depends on it
        self.setup_line = None
        self.ns = ns
        if self.spec.model is None:
            return None
        key = json.dumps(self.spec.model, sort_keys=True)
        said = key not in READS_VALUES and self.device.type == "meta" and _reads_item(self.module, self.spec.name)
        if said:  # its source reads values: built with them at once (a plain build on meta if that fails)
            READS_VALUES[key] = RuntimeError("Tensor.item() cannot be called on meta tensors (its constructor says)")
        try:
            if key in READS_VALUES and self.device.type == "meta":
                raise READS_VALUES[key]  # the last attempt's build met it: no second failing build on meta
            model = self.value(self.spec.model, ns)
        except VALUE_READS as err:
            # a constructor reading a tensor's values (`[r.item() for r in torch.linspace(0, rate, depth)]`,
            # then nn.Dropout(r)): built again with small tensors made on the CPU, where they have values
            if self.device.type != "meta" or not reads_values(err):
                raise
            READS_VALUES[key] = err
            try:
                with SmallOnCpu():
                    model = self.value(self.spec.model, ns)
            except Exception:
                if not said:
                    raise
                del READS_VALUES[key]  # the `.item()` its source has is not on the way: the plain build
                model = self.value(self.spec.model, ns)
            if isinstance(model, nn.Module) and key in READS_VALUES:
                model = model.to("meta")
                BUILD_NOTES.add("built with its small tensors on the CPU: its constructor reads tensor values")
        except NameError as err:
            # a constructor reading what the script's `__main__` block defines (`args = parser.parse_args()`):
            # that block's statements for the name run (a trace parses no command line: the defaults)
            if not err.name or not run_main_block_slice(self.module, self.nodes, err.name, self.path):
                raise
            ns.update({k: v for k, v in self.module.__dict__.items() if k not in ns})
            model = self.value(self.spec.model, ns)
        return model if isinstance(model, nn.Module) else None

    def build(self, guesses: list[Guess] | None = None) -> tuple[nn.Module | None, list[Any], dict[str, Any]]:
        """The model and its inputs; where the plan leaves the inputs to the child, `guesses` (else the first
        candidate `inference.infer` finds, kept in `self.candidates`)."""
        model = self.build_model()
        if model is None:
            return None, [], {}
        if self.move:
            model = model.to(self.device)
        ns = self.ns
        args = [self.value(a, ns) for a in self.spec.args]
        kwargs = {k: self.value(v, ns) for k, v in self.spec.kwargs.items()}
        if not args and not kwargs and self.spec.infer_from is not None:
            if guesses is None:
                self.candidates = library_candidates(model) or infer(model)
                code = (self.spec.model or {}).get("code")
                image = declared_image_size(model, code if isinstance(code, str) else None)
                if image is not None:  # the size its position embeddings are made for: tried first
                    frames = declared_image_size(model, code if isinstance(code, str) else None, FRAME_NAMES)
                    self.candidates = at_image_size(self.candidates, image, frames)
                prior = prior_guesses(self.spec.prior)
                if prior and prior not in self.candidates:
                    self.candidates = [prior, *self.candidates]  # what the last trace chose, while it fits
                guesses = self.candidates[0]
            self.guesses = guesses
            # by name: a library model's second input need not be forward's second parameter (T5's decoder ids)
            kwargs = {g.name: make_tensor(g.shape, _float_of(model, g.dtype), self.device) for g in guesses}
            rrefs = {g.name for c in [guesses, *self.candidates] for g in c if g.rref}  # a prior's by name
            kwargs = {k: rpc_stand_in.LocalRRef(v) if k in rrefs else v for k, v in kwargs.items()}
            kwargs = _objects_of_fields(kwargs)
        to_device = lambda v: v.to(self.device) if self.move and isinstance(v, torch.Tensor) else v  # noqa: E731
        return model, [to_device(a) for a in args], {k: to_device(v) for k, v in kwargs.items()}


READS_VALUES: dict[str, BaseException] = {}  # constructor items whose build read values (one child, one plan)
BUILD_NOTES: set[str] = set()  # how the last target's model was built, when out of the ordinary (hover)
VALUE_READS = (RuntimeError, NotImplementedError, ValueError, TypeError)
SMALL_ON_CPU = 4096  # elements: a tensor this small is made on the CPU in `SmallOnCpu` (16 KiB of float32)


def _reads_item(module: types.ModuleType, name: str, depth: int = 0) -> bool:
    """Whether the class's constructor, or one of its file's classes it builds, reads a tensor's value with
    `.item()` (`[r.item() for r in torch.linspace(0, rate, depth)]`): then it is built with its small tensors on
    the CPU at once, not first on meta to fail there (vit-pytorch's cct_3d spends 5 s of its 10 before that)."""
    cls = module.__dict__.get(name)
    if depth > 3 or not isinstance(cls, type) or getattr(cls, "__module__", None) != module.__name__:
        return False
    init = vars(cls).get("__init__")
    try:
        text = inspect.getsource(init) if init is not None else ""
    except (OSError, TypeError):
        return False
    if ".item()" in text:
        return True
    called = set(re.findall(r"\b([A-Z]\w*)\(", text)) - {name}
    return any(_reads_item(module, other, depth + 1) for other in sorted(called))


def reads_values(err: BaseException) -> bool:
    # lower case: an op with no meta kernel says "with Meta tensors" (timm regnet's torch.unique in __init__)
    text = f"{type(err).__name__}: {err}".lower()
    return any(m in text for m in ("cannot be called on meta", "cannot be converted to scalar", "_local_scalar_dense",
                                   "meta tensors", "cannot copy out of meta"))  # fmt: skip


class SmallOnCpu(TorchFunctionMode):
    """A constructor that reads values runs with every tensor a factory makes (`torch.linspace`, `zeros`,
    `empty` for a parameter) small enough made on the CPU, where `.item()` has an answer, and every larger one
    on meta, so the build stays bounded (at most `SMALL_ON_CPU` elements a tensor); `Target.build` then moves
    the model to meta as usual."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = dict(kwargs or {})
        if func in _device_constructors() and kwargs.get("device") is None:
            made = func(*args, **{**kwargs, "device": "meta"})
            if isinstance(made, torch.Tensor) and made.numel() <= SMALL_ON_CPU:
                return func(*args, **{**kwargs, "device": "cpu"})
            return made
        return func(*args, **kwargs)


def _main_block(nodes: Any) -> ast.If | None:
    for found in nodes.values():
        for node in found:
            test = node.test if isinstance(node, ast.If) and node.col_offset == 0 else None
            if isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__":
                return node
    return None


def run_main_block_slice(module: types.ModuleType, nodes: Any, name: str, path: str) -> bool:
    """Run the simple statements of the file's `if __name__ == "__main__":` block that `name` needs (what binds
    it, what they read, what changes those in place: `parser.add_argument(...)`) in the module's namespace,
    where the model's methods look names up. False where the block does not bind it or the slice fails."""
    block = _main_block(nodes)
    if block is None:
        return _branch_literal(module, nodes, name, path)
    simple = [s for s in block.body if isinstance(s, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.Expr)]
    needed, kept = {name}, list[ast.stmt]()
    for stmt in reversed(simple):
        if (bound_names(stmt) | mutated_names(stmt)) & needed:
            kept.append(stmt)
            needed |= loaded_names(stmt)
    if not any(name in bound_names(s) for s in kept):
        return _branch_literal(module, nodes, name, path)
    try:
        exec(compile(ast.Module(body=kept[::-1], type_ignores=[]), path, "exec"), module.__dict__)
    except Exception:
        return False
    return True


def _branch_literal(module: types.ModuleType, nodes: Any, name: str, path: str) -> bool:
    """A name the top level binds only inside the branches of an `if` (`nc = 3` for one dataset, `nc = 1` for
    another, the branch chosen by the command line): the first branch's literal value, in line order."""
    found = []
    for group in nodes.values():
        for node in group:
            if isinstance(node, ast.If) and node.col_offset == 0:
                for inner in ast.walk(node):
                    if (
                        isinstance(inner, ast.Assign)
                        and [getattr(t, "id", None) for t in inner.targets] == [name]
                        and isinstance(inner.value, ast.Constant)
                    ):
                        found.append(inner)
    if not found:
        return False
    first = min(found, key=lambda n: (n.lineno, n.col_offset))
    module.__dict__[name] = first.value.value  # type: ignore[attr-defined]
    BUILD_NOTES.add(f"{name}={first.value.value!r} (line {first.lineno}: one branch of the file's `if`)")  # type: ignore[attr-defined]
    return True


def _objects_of_fields(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Inputs inferred as an object's fields (`batch.premise`, `batch.hypothesis`: trace/inference.py) passed
    as one object with those attributes."""
    out: dict[str, Any] = {}
    for name, value in kwargs.items():
        root, _, attr = name.partition(".")
        if attr:
            setattr(out.setdefault(root, types.SimpleNamespace()), attr, value)
        else:
            out[name] = value
    return out


def _float_of(model: nn.Module, dtype: str) -> str:
    """A guessed float input takes the model's own float type: a model made `.double()` (or half) computes in
    it, and a float32 input would fail for a reason of our making."""
    if dtype != "float32":
        return dtype
    first = next((p for p in model.parameters() if p.is_floating_point()), None)
    return str(first.dtype).removeprefix("torch.") if first is not None else dtype


def prior_guesses(prior: list[TracedInput]) -> list[Guess]:
    """The inputs the last trace of this model chose (solved sizes included), as a candidate of fixed sizes."""
    if not prior or any(t.shape is None or None in t.shape for t in prior):
        return []
    return [
        Guess(t.name, [Dim(int(d or 0), "fixed") for d in t.shape or []], t.dtype or "float32", t.note or "")
        for t in prior
    ]


def library_candidates(model: nn.Module) -> list[list[Guess]] | None:
    """The input a library model (transformers, timm, torchvision) takes, from trace/library.py's rules; None
    for the user's own models, which the generic inference reads."""
    try:
        from shapelens.trace.library import library_input_specs
    except ImportError:
        return None
    specs = library_input_specs(model)
    if not specs:
        return None
    guesses = []
    for name, dims, dtype, note in specs:
        kinds = [Dim(int(size), "batch" if i == 0 else "fixed") for i, size in enumerate(dims)]
        guesses.append(Guess(name, kinds, dtype, note))
    return [guesses]


def make_tensor(dims: list[int], dtype_text: str, device: torch.device) -> torch.Tensor:
    dtype = {"float": torch.float32, "half": torch.float16, "double": torch.float64, "long": torch.int64,
             "int": torch.int32}.get(dtype_text) or getattr(torch, dtype_text)  # fmt: skip
    if device.type == "meta" or dtype == torch.bool:
        return torch.zeros(dims, dtype=dtype, device=device)
    if dtype.is_floating_point or dtype.is_complex:
        return torch.randn(dims, dtype=dtype, device=device)
    return torch.randint(0, 2, dims, dtype=dtype, device=device)  # valid indices for any embedding


# Meta cannot follow data-dependent ops (nonzero, masks), legacy constructors or tensors pinned to the CPU;
# FakeTensorMode can, with unknown (unbacked) sizes where a shape depends on values.
NEEDS_FAKE = ("meta", "nonzero", "data-dependent", "cannot be converted to Scalar", "_local_scalar_dense",
              "Cannot copy out", "expected device", "is not on the expected device")  # fmt: skip
DATA_DEPENDENT = ("GuardOnDataDependentSymNode", "DataDependentOutputException", "data-dependent")


def _fake_mode() -> Any:
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    early_sibling.needs_fake_tensors()
    return FakeTensorMode(allow_non_fake_inputs=True, shape_env=ShapeEnv(allow_dynamic_output_shape_ops=True))


def _attempt(
    spec: TargetSpec, ctx: Context, recorder: Recorder, plan: TracePlan, fake: bool, guesses: list[Guess] | None = None
) -> dict[str, Any]:
    """Build and run one model once; returns the model, flop counts and stage reached, or the exception."""
    for store in (recorder.records, recorder.producers, recorder.uses):
        store.clear()
    recorder.mismatches.clear()
    if ctx.sandbox is not None:
        ctx.sandbox.refusals.clear()
    recorder.last = (-1, 0)  # a failure outside user code must not point at the previous model's last line
    if recorder.on_progress is not None:
        recorder.on_progress(-1, 0)
    outcome: dict[str, Any] = {"stage": "build", "model": None, "flops": None, "error": None, "target": None}
    from torch.utils.flop_counter import FlopCounterMode

    device_context = _fake_mode() if fake else torch.device(ctx.device)
    try:
        with time_limit(float(plan.timeout), recorder), device_context:
            target = Target(spec, ctx.module, plan.file, ctx.nodes, ctx.device, move=not fake)
            outcome["target"] = target
            model, args, kwargs = target.build(guesses)
            outcome["model"] = model
            outcome["args"], outcome["kwargs"] = args, kwargs
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
    outcome["mismatches"] = list(recorder.mismatches)
    return outcome


def _run(
    spec: TargetSpec, ctx: Context, recorder: Recorder, plan: TracePlan, guesses: list[Guess] | None
) -> tuple[dict[str, Any], str]:
    """One attempt on the trace device, and under FakeTensorMode where meta cannot follow the model."""
    mode = ctx.device.type
    outcome = _attempt(spec, ctx, recorder, plan, False, guesses)
    err = outcome["error"]
    if (
        ctx.device.type == "meta"
        and err is not None
        and _classify(err, outcome["stage"]) in ("shape", "build", "datadep")
        and any(marker in f"{type(err).__name__}: {err}" for marker in NEEDS_FAKE)
    ):
        ctx.device = torch.device("cpu")  # FakeTensorMode's tensors claim the CPU, storage-less all the same
        try:
            outcome = _attempt(spec, ctx, recorder, plan, True, guesses)
        finally:
            ctx.device = torch.device("meta")
        mode = "fake"
    return outcome, mode


def _good(outcome: dict[str, Any]) -> bool:
    return outcome["error"] is None and not outcome["mismatches"] and outcome["model"] is not None


def _where(outcome: dict[str, Any]) -> tuple[Any, ...]:
    """How an attempt failed, for "every candidate fails the same way": the user line and the exception type,
    or the layers that met the wrong size."""
    err = outcome["error"]
    if err is not None:
        frames = traceback.extract_tb(err.__traceback__)
        user = [(f.filename, f.lineno) for f in frames if f.filename == outcome.get("file")]
        return ("error", type(err).__name__, user[-1] if user else None)
    return ("mismatch", tuple(sorted((type(m.module).__name__, m.attr, m.declared) for m in outcome["mismatches"])))


def _describe(guesses: list[Guess]) -> str:
    return ", ".join(f"{g.name}: {g.shape}" + (f" {g.dtype}" if g.dtype != "float32" else "") for g in guesses)


def _bigger(guesses: list[Guess]) -> list[Guess]:
    """The same inputs with every free size four times as large (a deep network's pooling needs room)."""
    return [Guess(g.name, [Dim(d.size * 4 if d.kind == "free" else d.size, d.kind, d.group) for d in g.dims],
                  g.dtype, g.note) for g in guesses]  # fmt: skip


@dataclass
class Attempt:
    spec: TargetSpec
    guesses: list[Guess] | None
    outcome: dict[str, Any]
    mode: str
    notes: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    """Which attempt to report, and whether its failure accuses the code."""

    attempt: Attempt
    guess: bool  # the inputs or the constructor were ours: a failure is ErrorKind.GUESS
    tried: list[Attempt]
    proven: set[str] = field(default_factory=set)  # layers whose mismatch no input size changes


def _search(spec: TargetSpec, ctx: Context, recorder: Recorder, plan: TracePlan) -> Verdict:
    """The plain trace first; where the inputs or the constructor were guessed and it failed, the other
    candidates: other ranks, other constructors, free sizes solved (trace/solve.py), larger free sizes."""
    guessing_inputs = spec.infer_from is not None and not spec.args and not spec.kwargs
    guessed = guessing_inputs or not spec.input_source.user_given or bool(spec.synthesized)
    outcome, mode = _run(spec, ctx, recorder, plan, None)
    outcome["file"] = plan.file
    fallback = _example_fallback(spec, outcome)
    if fallback is not None:
        inferred, note = fallback
        verdict = _search(inferred, ctx, recorder, plan)
        verdict.attempt.notes.insert(0, note)
        return verdict
    first = Attempt(spec, outcome["target"].guesses if outcome["target"] else None, outcome, mode)
    if _good(outcome) or not guessed or (outcome["model"] is None and outcome["error"] is None):
        return Verdict(first, False, [first])
    if outcome["error"] is not None and _classify(outcome["error"], outcome["stage"]) in OWN_KINDS:
        return Verdict(first, False, [first])  # a hang, memory, a refusal: another guess would only repeat it
    tried = [first]
    proven: set[str] = set()
    notes: list[str] = []

    def attempt(candidate_spec: TargetSpec, guesses: list[Guess] | None, notes: list[str] | None = None) -> Attempt:
        result, result_mode = _run(candidate_spec, ctx, recorder, plan, guesses)
        result["file"] = plan.file
        done = Attempt(candidate_spec, guesses, result, result_mode, notes or [])
        tried.append(done)
        return done

    specs = [spec, *(dataclasses.replace(spec, model=item) for item in spec.alternatives)]
    for index, candidate_spec in enumerate(specs):
        current = first if index == 0 else attempt(candidate_spec, None)
        if _good(current.outcome):
            return Verdict(current, False, tried)
        target = current.outcome["target"]
        candidates = target.candidates if target is not None and guessing_inputs else []
        for guesses in candidates[1:]:
            other = attempt(candidate_spec, guesses)
            if _good(other.outcome):
                return Verdict(other, False, tried)
        unsolvable: list[set[str]] = []
        refused_by = {solve.layer_name(t.outcome["model"], m.module) for t in tried if t.outcome["model"] is not None
                      for m in t.outcome["mismatches"]}  # fmt: skip
        for guesses in candidates:
            for common in solve.common_sizes(guesses, refused_by):  # the likely sizes, plainly, before the solve
                done = attempt(candidate_spec, common.guesses, common.notes)
                if _good(done.outcome):
                    return Verdict(done, False, tried)
            solved, found_proven, stuck = _solve(candidate_spec, ctx, recorder, plan, guesses)
            if not spec.synthesized:  # a mismatch with constructor values of ours proves nothing of the code
                proven |= found_proven
            unsolvable.append(stuck)
            if solved is not None:
                done = attempt(candidate_spec, solved.guesses, solved.notes)
                if _good(done.outcome):
                    return Verdict(done, False, tried)
        if candidates and all(unsolvable) and not spec.synthesized:
            # no size of any candidate meets these layers: the model's own error, whatever the input
            proven |= set.intersection(*unsolvable)
            for layer in sorted(set.intersection(*unsolvable)):
                notes.append(f"no input size (1 to {solve.SEARCH}) gives {layer} the size it declares")
        if candidates and any(d.kind == "free" for g in candidates[0] for d in g.dims):
            bigger = _bigger(candidates[0])
            done = attempt(candidate_spec, bigger, [f"{_describe(bigger)}: smaller free sizes fail"])
            if _good(done.outcome):
                return Verdict(done, False, tried)
        if proven and not spec.synthesized:
            break  # the model's own error with its own constructor: another constructor would hide it
    if proven:
        first.notes = notes
        return Verdict(first, False, tried, proven)
    # an exception accuses the code only when no guessed size could have caused it: every candidate failed
    # at the same line the same way, and none had a size of our choosing but the batch
    same = len({_where(t.outcome) for t in tried}) == 1
    chosen_sizes = any(d.kind == "free" for t in tried for g in t.guesses or [] for d in g.dims)
    real = same and not chosen_sizes and first.outcome["error"] is not None
    if real and first.outcome["stage"] == "forward" and not spec.synthesized:
        return Verdict(first, False, tried)
    # the user's init, or a constructor that takes nothing, failed: no guess. Defaults we chose to rely on may
    # be placeholders its callers override (`seq_len=None`, asserted later): that failure is ours
    own_constructor = spec.input_source.user_given or not _takes_arguments(ctx.module.__dict__.get(spec.name))
    if first.outcome["stage"] == "build" and not spec.synthesized and own_constructor:
        return Verdict(first, False, tried)
    return Verdict(first, True, tried)


OPTIONAL = "optional"  # a set-up item's key: a failure of that statement leaves it out (the fallback's set-up)


def _example_fallback(spec: TargetSpec, outcome: dict[str, Any]) -> tuple[TargetSpec, str] | None:
    """An example call whose set-up cannot run in a shape-only trace (it reads a data file, a tensor's values,
    a CPU tensor of the module's) says nothing about the model: the model is built from the set-up that can
    run and traced with inputs inferred from its layers, a guess like any other (no finding accuses the code).
    None where the example's set-up ran (its failures after that are the code's), or for a hang, memory or a
    refusal, which another attempt would only repeat."""
    target, err = outcome["target"], outcome["error"]
    if spec.input_source != InputSource.EXAMPLE or err is None or target is None or target.setup_line is None:
        return None
    if spec.model is None or _classify(err, "build") in OWN_KINDS or refusal_of(err) is not None:
        return None
    if _builds_the_model(target, spec):
        return None  # `model = Net(cfg)` failed in the example: the model's own constructor, not the data
    inferred = dataclasses.replace(
        spec,
        input_source=InputSource.INFER,
        setup=[dict(item, **{OPTIONAL: True}) for item in spec.setup],
        args=[],
        kwargs={},
        infer_from=spec.name,
    )
    reason = explain.plain(f"{type(err).__name__}: {err}").splitlines()[0]
    note = (
        f"the example's set-up stopped at line {target.setup_line} ({reason[:160]}): "
        "a shape-only trace has no data; inputs inferred from the model"
    )
    return inferred, note


def _builds_the_model(target: Target, spec: TargetSpec) -> bool:
    """Whether the failing set-up statement binds a name the model expression reads (`model = Attn(C)` for
    `model(ids)`): then it is the model's own construction that failed."""
    if target.setup_item is None or "node" not in target.setup_item or spec.model is None:
        return False
    try:
        stmt = target._pick(target.setup_item, ast.stmt)
        model = target._pick(spec.model, ast.expr) if "node" in spec.model else ast.parse(spec.model.get("code", ""))
    except (LookupError, SyntaxError):
        return False
    return bool(bound_names(stmt) & loaded_names(model))


def _takes_arguments(cls: Any) -> bool:
    try:
        return any(name != "self" for name in inspect.signature(cls.__init__).parameters)
    except (TypeError, ValueError):
        return False


def _solve(
    spec: TargetSpec, ctx: Context, recorder: Recorder, plan: TracePlan, guesses: list[Guess]
) -> tuple[solve.Solved | None, set[str], set[str]]:
    """The symbolic pass for one input set: solved free sizes, the layers proven wrong for any input, and the
    layers whose equations no size meets."""
    target = Target(spec, ctx.module, plan.file, ctx.nodes, torch.device("meta"), move=False)
    recorder.active = False
    try:
        with time_limit(float(plan.timeout), recorder):
            found = solve.symbolic_pass(target.build_model, guesses, float(plan.timeout))
            solved = solve.solve(found, guesses)
    except BaseException:  # the symbolic pass is a search aid: any failure of it leaves the plain answer
        return None, set(), set()
    proven = {p.layer.split(" ")[0] for p in found.proven}
    stuck = {e.layer.split(" ")[0] for e in found.equations} if solved is None else set()
    return solved, proven, stuck


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


# Targets a traced parent already reached (class name → the parent's target name): no standalone guess for
# them. One child traces one plan, so this lives as long as the plan.
_COVERED: dict[str, str] = {}


def order_targets(targets: list[TargetSpec], tree: ast.Module | None) -> list[TargetSpec]:
    """Parents first: a class whose body names another target traces before it (so the other may be covered)."""
    _COVERED.clear()
    names = {t.name for t in targets}
    users: dict[str, set[str]] = {name: set() for name in names}
    for node in ast.walk(tree) if tree is not None else []:
        if isinstance(node, ast.ClassDef) and node.name in names:
            for inner in ast.walk(node):
                if isinstance(inner, ast.Name) and inner.id in names and inner.id != node.name:
                    users[inner.id].add(node.name)
    depth: dict[str, int] = {}

    def depth_of(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in depth:
            parents = [u for u in users.get(name, ()) if u not in seen]
            depth[name] = 1 + max((depth_of(u, seen | {name}) for u in parents), default=-1)
        return depth[name]

    return sorted(targets, key=lambda t: depth_of(t.name))


def _register_source(plan: TracePlan) -> None:
    """inference.py reads forward's source with inspect: the plan's text, which the editor may not have saved."""
    lines = plan.source.splitlines(keepends=True)
    linecache.cache[plan.file] = (len(plan.source), None, lines, plan.file)


def trace_target(spec: TargetSpec, ctx: Context, recorder: Recorder, emit: Emitter, plan: TracePlan) -> None:
    started = time.perf_counter()
    emit({"event": Event.START, "name": spec.name, "time": time.time()})
    parent = _COVERED.get(spec.name)
    if parent is not None and not spec.input_source.user_given:
        emit.result(TargetResult(spec.name, Status.COVERED, ctx.device.type, covered_by=parent,
                                 elapsed_ms=(time.perf_counter() - started) * 1000))  # fmt: skip
        return
    _register_source(plan)
    BUILD_NOTES.clear()
    verdict = _search(spec, ctx, recorder, plan)
    chosen = verdict.attempt
    if chosen is not verdict.tried[-1]:  # the recorder holds the last attempt's records: run the chosen again
        outcome, mode = _run(chosen.spec, ctx, recorder, plan, chosen.guesses)
        outcome["file"] = plan.file
        chosen = Attempt(chosen.spec, chosen.guesses, outcome, mode, chosen.notes)
    outcome, mode = chosen.outcome, chosen.mode
    chosen.notes = [*chosen.notes, *_weights_notes(), *sorted(BUILD_NOTES)]
    BUILD_NOTES.clear()
    err = outcome["error"]
    if outcome["model"] is None and err is None:
        emit.result(TargetResult(spec.name, Status.SKIPPED, mode))
        return
    error = None
    status = Status.ERROR
    model = outcome["model"]
    kept = list(recorder.mismatches)
    if verdict.proven:
        kept = [m for m in kept if model is None or solve.layer_name(model, m.module) in verdict.proven]
    if err is None and not (verdict.guess and kept):
        error = _swallowed_refusal(ctx, plan)
        status = Status.OK
    elif err is not None:
        kind = _classify(err, outcome["stage"])
        if kind == "noinput":
            error = TraceError(ErrorKind.NOINPUT, str(err))
        else:
            error = explain.failure(kind, err, plan, recorder, outcome["stage"])
    failed = error is not None and error.kind not in OWN_FAILURES
    if verdict.guess and (failed or kept):
        error = _guess_error(verdict, error, kept, spec)
        status = Status.ERROR
        kept = []
    mismatches = [
        Mismatch(
            m.code, type(m.module).__name__, recorder.sites.get(id(m.module)), m.attr, m.declared, m.actual,
            list(m.factors) if m.factors else None, list(m.where) if m.where else None, list(m.input_shape),
        )
        for m in kept
    ]  # fmt: skip
    if status == Status.OK and model is not None:
        for sub in model.modules():
            if sub is not model and type(sub).__module__ == plan.module and id(sub) in recorder.uses:
                _COVERED.setdefault(type(sub).__name__, spec.name)
    notes = [*_built_notes(chosen.spec, ctx), *chosen.notes, *getattr(recorder, "loop_notes_list", list)()]
    result = TargetResult(
        spec.name,
        status,
        mode,
        records=collect_records(recorder),
        layers=collect_layers(model, recorder, outcome["flops"]) if model is not None else [],
        mismatches=mismatches,
        error=error,
        elapsed_ms=(time.perf_counter() - started) * 1000,
        inputs=traced_inputs(model, outcome, chosen),
        notes=notes,
        input_source=chosen.spec.input_source if chosen.spec.input_source != spec.input_source else None,
    )
    # the symbolic forms (#13): one more forward on symbolic sizes, capped; the plain result if it fails
    if plan.symbolic:
        left = float(plan.timeout) - (time.perf_counter() - started) - 0.25
        try:  # the pass is an addition: past the target's own time the plain result stands (and is not lost)
            with time_limit(max(left, 0.001), recorder):
                guesses = chosen.guesses
                result = symbolic.after_trace(result, model, outcome, guesses, chosen.spec, recorder, plan.timeout)
        except TraceTimeout:
            pass
    emit.result(result)


def _weights_notes() -> list[str]:
    """Pretrained weights the build asked for and did not get (trace/library.py): the hover says so."""
    try:
        from shapelens.trace.library import weights_notes
    except ImportError:
        return []
    return weights_notes()


def _built_notes(spec: TargetSpec, ctx: Context) -> list[str]:
    """What `{"build": "ClassName"}` made up for the constructor (trace/library.py: "n_layer=2", ...)."""
    item = spec.model or {}
    cls = ctx.module.__dict__.get(item.get("build", ""))
    if cls is None:
        return []
    try:
        from shapelens.trace.library import synthesized_notes
    except ImportError:
        return []
    return list(synthesized_notes(cls))


# failures no guess explains away: they stay what they are (a timeout, memory, a refusal, no input at all)
OWN_FAILURES = (ErrorKind.NOINPUT, ErrorKind.TIMEOUT, ErrorKind.MEMORY, ErrorKind.REFUSED)
OWN_KINDS = ("timeout", "memory", "refused", "recursion", "exit")  # the same, as `_classify` names them


def _guess_error(verdict: Verdict, error: TraceError | None, kept: list[Any], spec: TargetSpec) -> TraceError:
    """The information finding of a guessed trace that failed: what was tried, what it met, how to say more."""
    tried = []
    for attempt in verdict.tried:
        text = _describe(attempt.guesses) if attempt.guesses else None
        if text and text not in tried:
            tried.append(text)
    if error is not None:
        reason = error.message
    else:
        m = kept[0]
        reason = f"{type(m.module).__name__} `{m.attr}` is {m.declared} but it received {m.actual}"
    param = verdict.attempt.guesses[0].name if verdict.attempt.guesses else "x"
    if error is not None and error.stage == "build":  # the constructor failed: its arguments were ours
        made = f" ({', '.join(spec.synthesized)})" if spec.synthesized else ""
        what, how = f"built with a guessed constructor{made}", "its arguments with `# shapelens: init(...)`"
    else:
        what = f"traced with {' or '.join(tried)} (guessed)" if tried else "traced with a guessed constructor"
        how = f"the input with `# shapelens: {param}=(...)`"
    return TraceError(
        ErrorKind.GUESS,
        f"{what} and it failed: {reason}; give {how}",
        error.path if error else None,
        error.line if error else None,
        stage=error.stage if error else "forward",
        operands=error.operands if error else [],
        exception=error.exception if error else None,
        traceback=error.traceback if error else None,
    )


def traced_inputs(model: nn.Module | None, outcome: dict[str, Any], chosen: Attempt) -> list[TracedInput]:
    """What forward was called with, by parameter name: the hover and JSON show it, a guess as a guess."""
    if model is None or "args" not in outcome:
        return []
    guesses = {g.name: g for g in chosen.guesses or []}
    try:
        bound = inspect.signature(model.forward).bind_partial(*outcome["args"], **outcome["kwargs"]).arguments
    except (TypeError, ValueError):
        bound = {f"arg{i}": a for i, a in enumerate(outcome["args"])} | dict(outcome["kwargs"])
    out = []
    fields = {f"{name}.{attr}": field for name, value in bound.items() if isinstance(value, types.SimpleNamespace)
              for attr, field in vars(value).items()}  # fmt: skip
    if fields:  # an object of tensors: each field, as it was inferred
        bound = {k: v for k, v in bound.items() if not isinstance(v, types.SimpleNamespace)} | fields
    for name, value in bound.items():
        value = value.local_value() if isinstance(value, rpc_stand_in.LocalRRef) else value  # the tensor it holds
        items = value if isinstance(value, tuple | list) else [value]
        tensor = next((v for v in items if isinstance(v, torch.Tensor)), None)  # a tuple shows its first
        shape = shape_of(tensor) if tensor is not None else None
        dtype = dtype_name(tensor) if tensor is not None else None
        note = None
        guess = guesses.get(name)
        if guess is not None:
            free = [i for i, d in enumerate(guess.dims) if d.kind == "free"]
            note = guess.note
            own = [n.split(": ", 1)[1] for n in chosen.notes if n.startswith(f"{name}: ")]
            if own:
                note += "; " + "; ".join(own)
            elif free and "no layer fixes" not in note:
                dims = ", ".join(map(str, free))
                many = len(free) > 1
                note += f"; dim{'s' if many else ''} {dims} free (no layer fixes {'them' if many else 'it'}): a default"
        out.append(TracedInput(name, shape, dtype, note))
    return out


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
