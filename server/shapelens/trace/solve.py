"""Free input sizes solved, not guessed: one forward with symbolic sizes (FakeTensorMode + ShapeEnv, as DESIGN.md's
"Facts measured" says) for the batch and every free dim of a guessed input, while a layer pre-hook reads the
size expression each layer meets (`16*((H//4) - 3)*((W//4) - 3)` at LeNet's fc1) beside the size it declares.
Each `expr == declared` is an equation over the free sizes, solved by search over positive integers (sympy
cannot solve floor divisions): tied sizes (an image's H = W) first, common sizes first. An expression with no
free size left that differs from the declared size is a mismatch no input can fix: a real error.

Runs only when the plain trace with the default sizes failed or met a mismatch (the fast path stays plain).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from shapelens.trace import early_sibling
from shapelens.trace.inference import Dim, Guess

PREFERRED = [32, 28, 64, 224, 16, 8, 128, 256, 96, 48, 299, 227, 512, 12, 10, 20, 24, 40, 100, 160, 192, 384]
SEARCH = 1024  # sizes tried: 1..SEARCH
MAX_COMBINATIONS = 20_000


@dataclass
class Equation:
    expr: Any  # a sympy expression over the input's symbols
    declared: int
    layer: str  # "fc1 (Linear.in_features)"


@dataclass
class Proven:
    """A layer meets a size no input changes: the model's own error."""

    layer: str
    declared: Any
    actual: Any


@dataclass
class Pass:
    equations: list[Equation] = field(default_factory=list)
    proven: list[Proven] = field(default_factory=list)
    error: BaseException | None = None
    symbols: dict[Any, tuple[int, int]] = field(default_factory=dict)  # symbol → (input index, dim index)


def layer_name(model: nn.Module, module: nn.Module) -> str:
    """A layer's name in the model (`fc1`, `features.0`); its class's name for the model itself."""
    for name, candidate in model.named_modules():
        if candidate is module:
            return name or type(module).__name__
    return type(module).__name__


def _expr(size: Any) -> Any:
    import sympy

    return size.node.expr if isinstance(size, torch.SymInt) else sympy.Integer(int(size))


def _hook(model: nn.Module, found: Pass) -> Callable[[nn.Module, tuple[Any, ...]], Any]:
    """The checks recording.py makes, on symbolic sizes: an equation (or a proven mismatch) per layer, then a
    right-sized stand-in so the layers after it are reached too."""

    def note(module: nn.Module, attr: str, declared: int, size: Any) -> bool:
        expr = _expr(size)
        label = f"{layer_name(model, module)} ({type(module).__name__}.{attr})"
        if expr.free_symbols:
            found.equations.append(Equation(expr, int(declared), label))
            return True
        if int(expr) != int(declared):
            found.proven.append(Proven(label, declared, int(expr)))
            return True
        return False

    def hook(module: nn.Module, args: tuple[Any, ...]) -> Any:
        if not args or not isinstance(args[0], torch.Tensor) or args[0].dim() == 0:
            return None
        x = args[0]
        shape = list(x.shape)
        if isinstance(module, nn.Linear) and not isinstance(module, nn.LazyLinear):
            declared = int(module.weight.shape[1])
            if note(module, "in_features", declared, shape[-1]):
                return (x.new_zeros((*shape[:-1], declared)), *args[1:])
        elif isinstance(module, nn.RNNBase):
            if note(module, "input_size", module.input_size, shape[-1]):
                return (x.new_zeros((*shape[:-1], module.input_size)), *args[1:])
        elif isinstance(module, nn.modules.conv._ConvNd | nn.modules.batchnorm._BatchNorm | nn.GroupNorm):
            attr = "in_channels" if isinstance(module, nn.modules.conv._ConvNd) else (
                "num_channels" if isinstance(module, nn.GroupNorm) else "num_features")  # fmt: skip
            declared = getattr(module, attr)
            spatial = len(module.kernel_size) if isinstance(module, nn.modules.conv._ConvNd) else None
            dim = 0 if spatial is not None and x.dim() == spatial + 1 else 1
            if declared and x.dim() > dim and note(module, attr, declared, shape[dim]):
                shape[dim] = declared
                return (x.new_zeros(shape), *args[1:])
        elif isinstance(module, nn.LayerNorm):
            declared_shape = list(module.normalized_shape)
            tail = shape[len(shape) - len(declared_shape) :]
            changed = [note(module, "normalized_shape", d, s) for d, s in zip(declared_shape, tail, strict=False)]
            if any(changed):
                return (x.new_zeros((*shape[: len(shape) - len(declared_shape)], *declared_shape)), *args[1:])
        return None

    return hook


def symbolic_pass(build: Callable[[], nn.Module | None], guesses: list[Guess], limit: float) -> Pass:
    """Build the model (on meta) and run its forward once on inputs whose batch and free sizes are symbols."""
    from torch._dispatch.python import enable_python_dispatcher
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv, StatelessSymbolicContext

    found = Pass()
    with torch.device("meta"):
        model = build()
    if model is None:
        return found
    early_sibling.needs_fake_tensors()
    mode = FakeTensorMode(
        shape_env=ShapeEnv(duck_shape=False, allow_dynamic_output_shape_ops=True), allow_non_fake_inputs=True
    )
    handle = torch.nn.modules.module.register_module_forward_pre_hook(_hook(model, found))
    functional = torch.nn.functional
    pool1d = functional.max_pool1d
    functional.max_pool1d = _max_pool1d  # type: ignore[assignment]
    try:
        metas = []  # made outside the mode: a tensor made inside it is already fake, with static sizes
        for guess in guesses:
            hints = [max(d.size, 64) if d.kind == "free" and d.size >= 16 else d.size for d in guess.dims]
            metas.append(torch.empty(hints, dtype=getattr(torch, guess.dtype), device="meta"))
        with mode, enable_python_dispatcher():
            inputs = []
            for index, (guess, meta) in enumerate(zip(guesses, metas, strict=True)):
                dynamic = [DimDynamic.DYNAMIC if d.kind != "fixed" else DimDynamic.STATIC for d in guess.dims]
                context: Any = StatelessSymbolicContext(dynamic_sizes=dynamic)
                tensor = mode.from_tensor(meta, source=input_source(f"input{index}"), symbolic_context=context)
                for position, size in enumerate(tensor.shape):
                    if isinstance(size, torch.SymInt):
                        for symbol in size.node.expr.free_symbols:
                            found.symbols[symbol] = (index, position)
                inputs.append(tensor)
            model(*inputs)
    except Exception as err:  # what the model raises on symbolic sizes: the equations met so far still count
        found.error = err
    finally:
        handle.remove()
        functional.max_pool1d = pool1d
    return found


def input_source(name: str) -> Any:
    """The ShapeEnv's name for an input's sizes: dynamo's ConstantSource, without importing torch._dynamo
    (a second or more on a cold start, which trace/lazy_dynamo.py keeps every trace from paying)."""
    return _source_class()(name)


@functools.cache
def _source_class() -> type:
    from torch._guards import GuardSource, Source

    @dataclass(frozen=True)
    class InputSource(Source):
        source_name: str

        @property
        def guard_source(self) -> GuardSource:
            return GuardSource.CONSTANT

        @property
        def _name_template(self) -> str:
            return self.source_name

    return InputSource


def _max_pool1d(x: torch.Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                ceil_mode: bool = False, return_indices: bool = False) -> Any:  # fmt: skip
    """max_pool1d as the 2-D pool of a height-1 image: torch's own 1-D pool fixes a symbolic length to its
    example value (which would hide the equation a later layer gives)."""
    one = lambda v: (1, v[0] if isinstance(v, tuple | list) else v)  # noqa: E731
    pool2d: Any = torch.nn.functional.max_pool2d  # the overloads cannot see return_indices as a bool
    out = pool2d(
        x.unsqueeze(-2), one(kernel_size), one(stride if stride else kernel_size), (0, one(padding)[1]),
        one(dilation), ceil_mode=ceil_mode, return_indices=return_indices,
    )  # fmt: skip
    if return_indices:
        return out[0].squeeze(-2), out[1].squeeze(-2)
    return out.squeeze(-2)


_FUNCTIONS: dict[str, Any] = {
    "FloorDiv": lambda a, b: a // b, "CeilDiv": lambda a, b: -(-a // b), "Mod": lambda a, b: a % b,
    "PythonMod": lambda a, b: a % b, "Max": max, "Min": min, "floor": math.floor, "ceiling": math.ceil,
    "FloorToInt": math.floor, "CeilToInt": math.ceil, "IntTrueDiv": lambda a, b: a / b,
    "FloatTrueDiv": lambda a, b: a / b, "TruncToInt": int, "Abs": abs, "sqrt": math.sqrt,
}  # fmt: skip


def _compiled(expr: Any, names: list[str]) -> Callable[..., Any]:
    """`expr` as a Python function of the symbols (sympy prints floor division as `//`); sympy's own
    substitution where the text is not Python."""
    text = str(expr)
    try:
        function = eval(f"lambda {', '.join(names)}: {text}", dict(_FUNCTIONS))  # our own printed expression
        function(*[7] * len(names))
        return function  # type: ignore[no-any-return]
    except Exception:
        import sympy

        symbols = [sympy.Symbol(n, integer=True, positive=True) for n in names]
        return lambda *values: expr.xreplace(dict(zip(symbols, [sympy.Integer(v) for v in values], strict=True)))


def _order() -> list[int]:
    return PREFERRED + [v for v in range(1, SEARCH + 1) if v not in PREFERRED]


@dataclass
class Solved:
    guesses: list[Guess]
    notes: list[str]


def solve(found: Pass, guesses: list[Guess]) -> Solved | None:
    """Sizes for the free dims that meet every equation; None when there are none to meet or no size does."""
    if not found.equations:
        return None
    batch = {s for s, (i, d) in found.symbols.items() if guesses[i].dims[d].kind == "batch"}
    equations = [(e.expr.xreplace(dict.fromkeys(batch, 2)), e.declared, e.layer) for e in found.equations]
    free = sorted({s for e, _, _ in equations for s in e.free_symbols}, key=str)
    if not free:
        return None
    groups: dict[tuple[int, str], list[Any]] = {}
    for symbol in free:
        index, position = found.symbols.get(symbol, (-1, -1))
        group = guesses[index].dims[position].group if index >= 0 else str(symbol)
        groups.setdefault((index, group), []).append(symbol)
    names = [str(s) for s in free]
    checks = [(_compiled(e, names), declared) for e, declared, _ in equations]

    def meets(values: dict[Any, int]) -> bool:
        args = [values[s] for s in free]
        try:
            return all(check(*args) == declared for check, declared in checks)
        except Exception:  # a division by zero at a size too small
            return False

    order = _order()
    for layout in (list(groups.values()), [[s] for s in free]):  # tied first, then each size on its own
        # the search is bounded (each value tried costs microseconds): the first values are the likely ones
        width = max(2, int(MAX_COMBINATIONS ** (1 / len(layout))))
        combos = itertools.product(order[:width], repeat=len(layout))
        for combo in combos:
            values = {s: v for group, v in zip(layout, combo, strict=True) for s in group}
            if meets(values):
                return _apply(values, found, guesses, equations)
    return None


def _apply(values: dict[Any, int], found: Pass, guesses: list[Guess], equations: list[Any]) -> Solved:
    out = _copied(guesses)
    for symbol, value in values.items():
        index, position = found.symbols[symbol]
        out[index].dims[position].size = value
    layers = " and ".join(sorted({layer.split(" ")[0] for _, _, layer in equations}))
    notes = []
    for index, guess in enumerate(out):
        solved = sorted(p for s, (i, p) in found.symbols.items() if i == index and s in values)
        if not solved:
            continue
        names = _dim_names(guess, solved)
        sizes = {guess.dims[p].size for p in solved}
        if len(sizes) == 1:
            where = f"{' = '.join(names)} = {sizes.pop()}"
        else:
            where = ", ".join(f"{n} = {guess.dims[p].size}" for n, p in zip(names, solved, strict=True))
        notes.append(f"{guess.name}: {where}, the size {layers} accepts")
    return Solved(out, notes)


COMMON = PREFERRED[:4]  # 32, 28, 64, 224: the image sizes most models are written for


def common_sizes(guesses: list[Guess], layers: set[str]) -> list[Solved]:
    """Before the symbolic pass (FakeTensorMode: ≈0.8 s cold, then ≈0.5 s of sympy for a LeNet), the guesses
    with their one group of free dims (an image's H and W) at each of the most common sizes, noted as `solve`
    notes its answer (`layers`: the layers that refused the first guess). The caller traces each plainly (a
    few ms on meta) and keeps the first that every layer accepts. Nothing where the free dims are not one
    group or no layer refused."""
    groups = {(i, d.group) for i, g in enumerate(guesses) for d in g.dims if d.kind == "free"}
    if len(groups) != 1 or not layers:
        return []
    ((index, group),) = groups
    positions = [p for p, d in enumerate(guesses[index].dims) if d.kind == "free" and d.group == group]
    tried = {guesses[index].dims[p].size for p in positions}
    out = []
    for size in (size for size in COMMON if {size} != tried):
        sized = _copied(guesses)
        for position in positions:
            sized[index].dims[position].size = size
        names = " = ".join(_dim_names(sized[index], positions))
        note = f"{sized[index].name}: {names} = {size}, the size {' and '.join(sorted(layers))} accepts"
        out.append(Solved(sized, [note]))
    return out


def _copied(guesses: list[Guess]) -> list[Guess]:
    """The guesses with dims of their own, to size without touching the originals."""
    return [Guess(g.name, [Dim(d.size, d.kind, d.group) for d in g.dims], g.dtype, g.note) for g in guesses]


def _dim_names(guess: Guess, positions: list[int]) -> list[str]:
    """What a user calls those dims: an image's H and W (L for a signal, D H W for a volume) after the batch and
    the channels a convolution fixed; else "dim 2"."""
    spatial = {3: ["L"], 4: ["H", "W"], 5: ["D", "H", "W"]}.get(len(guess.dims))
    conv_like = spatial is not None and [d.kind for d in guess.dims[:2]] == ["batch", "fixed"]
    return [spatial[p - 2] if conv_like and spatial and p >= 2 else f"dim {p}" for p in positions]


def warm_up(others: bool = True) -> None:
    """One symbolic pass and solve on a tiny conv net, in the warm worker before it forks: the first pass in a
    process pays for lazily made kernels, sympy printers and guards (seconds), which every child then shares.
    `others`: the registered warm-ups of the other symbolic passes too."""

    def build() -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 3 * 3, 2))

    guesses = [Guess("x", [Dim(2, "batch"), Dim(1, "fixed"), Dim(32, "free", "x"), Dim(32, "free", "x")])]
    solve(symbolic_pass(build, guesses, 10.0), guesses)
    for more in WARM_UPS if others else []:  # the symbolic forms' pass after every trace (#13, symbolic.py), ...
        more()


WARM_UPS: list[Callable[[], None]] = []  # warm-ups of other symbolic passes, registered by their modules
