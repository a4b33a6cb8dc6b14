"""Shapes that hold for every batch (#13): after a model's plain trace, its forward runs once more under
FakeTensorMode with a ShapeEnv (DESIGN.md's "Facts measured"), on inputs whose free sizes are symbols: the batch
always, the sequence lengths and image sizes no layer fixes. The same instrumentation records it (the
Recorder's per-statement stores, seen through `Recorder.on_store`), so each hint gets its symbolic form:
`[B, 12, T, 64]` through a head split, `[B, 16, H/2 - 2, W/2 - 2]` in a CNN.

A size a layer fixes becomes a number (torch's guard `Eq(s1, 3)` replaces the symbol); a size that stays free
keeps its name (`B`, `T`, `H`, `W`, `D`, `L`, or the directive's own). The guards that remain say which inputs
the model accepts ("x: [B, 3, H, W] with H, W ≡ 0 mod 4 and 16·(H/4 - 3)·(W/4 - 3) = 400"). Labels follow
the grammar `core/symbolic.py` reads; a label longer than `MAX_LABEL` characters is given as its number.

The pass is an addition: it is capped in time, and any failure of it leaves the plain result as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from shapelens.core.wire import SymDims, TargetResult, TargetSpec
from shapelens.trace import early_sibling, solve
from shapelens.trace.context import time_limit
from shapelens.trace.inference import Guess, infer
from shapelens.trace.recording import Recorder

CAP = 0.5  # of the trace's timeout, in CPU time (5 s by default; the pass runs after the plain hints are out): past
# it the hints keep their numbers
MAX_LABEL = 40  # a longer expression is shown as its number, which holds for the example's sizes only: so only
# past what an inlay hint can hold (a LeNet flatten's `16·((H//2 - 3)//2)·((W//2 - 3)//2)` is kept)
DOT = "·"
SUPERSCRIPT = {2: "²", 3: "³"}


class _Unprintable(Exception):
    """An expression the label grammar has no form for (a float, a bitwise op): its number is shown."""


@dataclass
class InputDims:
    """One tensor input: which of its dims are symbols, and their names."""

    name: str
    tensor: torch.Tensor
    names: list[str | None]  # None: the size stays the example's number
    sizes: list[int] = field(default_factory=list)  # the sizes the pass runs at (a batch of 1 runs at 2)


@dataclass
class Pass:
    """What one symbolic run saw."""

    env: Any = None  # the ShapeEnv
    names: dict[Any, str] = field(default_factory=dict)  # sympy symbol -> its name
    values: dict[str, int] = field(default_factory=dict)  # name -> the example's value
    stores: dict[tuple[int, int, str], list[tuple[tuple[int | None, ...], tuple[Any, ...]]]] = field(
        default_factory=dict
    )  # (file id, sid, target) -> [(example shape, sizes as sympy expressions or ints)]
    inputs: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # input name -> its sizes (expressions)
    linear_in: dict[int, Any] = field(default_factory=dict)  # id(Linear) -> the size its input's last dim had
    divisible: dict[Any, int] = field(default_factory=dict)  # symbol -> a divisor a guard proved
    error: BaseException | None = None


# -- which dims are symbols, and their names ----------------------------------------------------------------


def _kinds(tensor: torch.Tensor, guess: Guess | None) -> list[str]:
    """'batch', 'free' or 'fixed' for each dim: the inference's word where it has one for this input, else
    the batch (dim 0) and, for indices, every dim."""
    rank = tensor.dim()
    if guess is not None and len(guess.dims) == rank:
        return [d.kind for d in guess.dims]
    if rank == 0:
        return []
    if not tensor.is_floating_point():
        return ["batch", *["free"] * (rank - 1)]
    return ["batch", *["fixed"] * (rank - 1)] if rank >= 2 else ["fixed"]


def _standard_names(kinds: list[str]) -> list[str | None]:
    """B for the batch; H, W (D, H, W; L for a signal) for the sizes after a fixed channel dim; T for a
    sequence; None for a size the model fixes."""
    out: list[str | None] = [None] * len(kinds)
    free = [i for i, k in enumerate(kinds) if k == "free"]
    spatial = {1: ["L"], 2: ["H", "W"], 3: ["D", "H", "W"]}.get(len(free))
    image = kinds[:2] == ["batch", "fixed"] and free == list(range(2, len(kinds))) and spatial is not None
    for i, kind in enumerate(kinds):
        if kind == "batch":
            out[i] = "B"
    for n, i in enumerate(free):
        out[i] = spatial[n] if image and spatial else ("T" if n == 0 else f"T{n + 1}")
    return out


def input_dims(
    model: nn.Module, inputs: list[tuple[str, Any]], guesses: list[Guess] | None, named: dict[str, list[Any]]
) -> list[InputDims]:
    """The symbolic dims of each tensor input: the directive's names (`x=(B, 3, H, W)`), else the inference's
    kinds (the guesses the trace used, or what it infers for the user's own input) with standard names."""
    # the last trace's sizes, taken again (`model_run.prior_guesses`), say nothing of which dims are free
    by_name = {g.name: g for g in guesses or [] if any(d.kind != "fixed" for d in g.dims)}
    if not by_name:
        try:
            candidates = infer(model)
        except Exception:  # the inference reads forward's source: without it, the batch alone is a symbol
            candidates = []
        ranks = {n: t.dim() for n, t in inputs if isinstance(t, torch.Tensor)}
        for candidate in candidates:
            for guess in candidate:
                if ranks.get(guess.name) == len(guess.dims) and guess.name not in by_name:
                    by_name[guess.name] = guess
    out, used = [], set()
    for name, tensor in inputs:
        if not isinstance(tensor, torch.Tensor):
            continue
        given = named.get(name)
        if given is not None and len(given) == tensor.dim():
            names = [d if isinstance(d, str) else None for d in given]
        else:
            names = _standard_names(_kinds(tensor, by_name.get(name)))
        for i, label in enumerate(names):
            if label is None:
                continue
            if given is not None:  # the user's names: the same name is the same size, on every input
                used.add(label)
                continue
            if int(tensor.shape[i]) < 2 and not (label.startswith("B") and int(tensor.shape[i]) == 1):
                names[i] = None  # torch fixes sizes 0 and 1 (broadcasting): no symbol for them, but a batch of
                continue  # 1 runs at 2 (its forms are checked against the plain trace's at 1)
            unique, n = label, 2
            while unique in used:
                unique, n = f"{label}{n}", n + 1
            names[i] = unique
            used.add(unique)
        sizes = [max(2, int(d)) if n is not None else int(d) for d, n in zip(tensor.shape, names, strict=True)]
        out.append(InputDims(name, tensor, names, sizes))
    return out


# -- the run -------------------------------------------------------------------------------------------------


def run_pass(model: nn.Module, args: list[Any], kwargs: dict[str, Any], dims: list[InputDims],
             recorder: Recorder, seconds: float, cpu_seconds: float | None = None) -> Pass:  # fmt: skip
    """Run forward once on symbolic inputs, recording through `recorder` (whose tables are set aside and put
    back: the plain trace's stay as they were)."""
    from torch._dispatch.python import enable_python_dispatcher
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv, StatelessSymbolicContext

    early_sibling.needs_fake_tensors()
    found = Pass()
    env = ShapeEnv(duck_shape=False, allow_dynamic_output_shape_ops=True)
    found.env = env
    mode = FakeTensorMode(shape_env=env, allow_non_fake_inputs=True)
    mode.cache_enabled = False  # entries for symbolic sizes rarely hit in one pass, and making them costs ≈40 %
    saved = {name: getattr(recorder, name) for name in _TABLES}
    for name, value in saved.items():
        setattr(recorder, name, type(value)())

    def store(key: tuple[int, int], target: str, tensor: torch.Tensor) -> None:
        example = tuple(int(d.node.hint) if isinstance(d, torch.SymInt) else int(d) for d in tensor.shape)
        sizes = tuple(d.node.expr if isinstance(d, torch.SymInt) else int(d) for d in tensor.shape)
        seen = found.stores.setdefault((*key, target), [])
        if all(e != example for e, _ in seen):
            seen.append((example, sizes))

    def linear_input(module: nn.Module, args: tuple[Any, ...]) -> None:
        if isinstance(module, nn.Linear) and args and isinstance(args[0], torch.Tensor) and args[0].dim():
            size = args[0].shape[-1]
            found.linear_in.setdefault(id(module), size.node.expr if isinstance(size, torch.SymInt) else int(size))

    handle = nn.modules.module.register_module_forward_pre_hook(linear_input)
    hooks: Any = nn.modules.module._global_forward_pre_hooks  # an OrderedDict
    hooks.move_to_end(handle.id, last=False)  # before the recorder's, which swaps a wrong-sized input
    recorder.on_store = store
    functional = torch.nn.functional
    pool1d = functional.max_pool1d
    functional.max_pool1d = solve._max_pool1d  # type: ignore[assignment]  # torch's fixes the length
    originals = [(owner, name, getattr(owner, name)) for owner, name in ELEMENTWISE if hasattr(owner, name)]
    for owner, name, original in originals:
        setattr(owner, name, _same_shape(original))
    attention, linear = functional.scaled_dot_product_attention, functional.linear
    functional.scaled_dot_product_attention = _attention_shape(attention)
    functional.linear = _linear_shape(linear)  # type: ignore[assignment]
    by_tensor = {id(d.tensor): d for d in dims}
    # made outside the mode (a tensor made inside it is already fake, with static sizes)
    bases = {id(d): torch.empty(d.sizes, dtype=d.tensor.dtype, device=d.tensor.device) for d in dims}
    try:
        device = next((d.tensor.device for d in dims), torch.device("meta"))
        # factory calls in forward (`torch.ones(T, T)`) are made where the plain trace made them
        with time_limit(seconds, recorder, cpu_seconds), torch.device(device), mode, enable_python_dispatcher():

            def symbolic(value: Any, label: str) -> Any:
                d = by_tensor.get(id(value)) if isinstance(value, torch.Tensor) else None
                if d is None:
                    return value
                dynamic = [DimDynamic.STATIC if n is None else DimDynamic.DYNAMIC for n in d.names]
                context: Any = StatelessSymbolicContext(dynamic_sizes=dynamic)
                base = bases[id(d)]
                fake = mode.from_tensor(base, source=solve.input_source(label), symbolic_context=context)
                for size, n, plain in zip(fake.shape, d.names, d.tensor.shape, strict=True):
                    if n is not None and isinstance(size, torch.SymInt):
                        found.names[size.node.expr] = n
                        found.values[n] = int(plain)
                found.inputs[d.name] = tuple(fake.shape)
                return fake

            fake_args = [symbolic(a, f"arg{i}") for i, a in enumerate(args)]
            fake_kwargs = {k: symbolic(v, k) for k, v in kwargs.items()}
            found.inputs = {k: tuple(_expr(s) for s in v) for k, v in found.inputs.items()}
            recorder.active = True
            model(*fake_args, **fake_kwargs)
    except BaseException as err:  # the pass is an addition: its failure (or the cap) leaves the plain result
        found.error = err
    finally:
        recorder.active = False
        recorder.on_store = None
        functional.max_pool1d = pool1d
        for owner, name, original in originals:
            setattr(owner, name, original)
        functional.scaled_dot_product_attention, functional.linear = attention, linear
        handle.remove()
        for name, value in saved.items():
            setattr(recorder, name, value)
    return found


# activations and dropout keep their input's shape, and their decompositions cost most of a symbolic pass
# (ReLU: where(le(x, 0), 0, x), each op's guards evaluated again): the pass gives them an empty tensor alike
# (the plain trace already ran torch's own checks of these ops; the recorder's layer checks still run)
ELEMENTWISE = [(torch.nn.functional, n) for n in ("relu", "gelu", "silu", "leaky_relu", "elu", "dropout", "mish",
               "hardswish", "relu6", "layer_norm", "group_norm", "batch_norm", "instance_norm", "softmax",
               "log_softmax", "rms_norm")] + [(torch, n) for n in ("relu", "sigmoid", "tanh", "softmax")]  # fmt: skip


def _same_shape(original: Callable[..., Any]) -> Callable[..., Any]:
    def shaped(x: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or kwargs.get("dtype") is not None:
            return original(x, *args, **kwargs)
        inplace = kwargs.get("inplace", False) is True or any(a is True for a in args[-1:])
        return x if inplace else torch.empty_like(x)

    return shaped


def _attention_shape(original: Callable[..., Any]) -> Callable[..., Any]:
    """scaled_dot_product_attention's output is q's shape with v's last dim (its decomposition costs half of
    a transformer's symbolic pass)."""

    def shaped(q: Any, k: Any, v: Any, *args: Any, **kwargs: Any) -> Any:
        if not all(isinstance(t, torch.Tensor) for t in (q, k, v)) or q.dim() < 2 or kwargs.get("enable_gqa"):
            return original(q, k, v, *args, **kwargs)
        return q.new_empty((*q.shape[:-1], v.shape[-1]))

    return shaped


def _linear_shape(original: Callable[..., Any]) -> Callable[..., Any]:
    """linear's output: the input's shape with the weight's rows last (its decomposition reshapes a 3-D input
    to 2-D and back, a third of a transformer's pass). The sizes are compared as the kernel would (the guard
    that fixes a free size to the weight's)."""

    def shaped(x: Any, weight: Any, bias: Any = None) -> Any:
        if not (isinstance(x, torch.Tensor) and isinstance(weight, torch.Tensor)) or x.dim() < 1 or weight.dim() != 2:
            return original(x, weight, bias)
        if x.shape[-1] != weight.shape[1] or x.dtype != weight.dtype:
            return original(x, weight, bias)  # the kernel's own error
        return x.new_empty((*x.shape[:-1], weight.shape[0]))

    return shaped


_TABLES = ("records", "producers", "uses", "mismatches", "met", "log", "loop_notes")


def _expr(size: Any) -> Any:
    return size.node.expr if isinstance(size, torch.SymInt) else int(size)


# -- labels ----------------------------------------------------------------------------------------------------


class Printer:
    """sympy expressions over the input symbols as labels of core/symbolic.py's grammar."""

    def __init__(self, found: Pass, ours: frozenset[int] = frozenset()) -> None:
        """`ours`: sizes our own checks fixed to go on past a mismatch (no condition of the model's)."""
        import sympy

        self.sympy = sympy
        self.found = found
        self.env = found.env
        self.divisible = _divisors(found)
        # a size a guard proved divisible by d is written d·s' (s' = H/d): then 2·(H/4) simplifies to H/2
        self.scaled = {
            s: sympy.Symbol(f"{s}_over_{d}", integer=True, positive=True) for s, d in self.divisible.items() if d > 1
        }
        self.unscaled = {v: (found.names[s], self.divisible[s]) for s, v in self.scaled.items()}
        # sizes a guard pins to one value (a Linear's Eq(8·(H - 2)·(W - 2), 7200)): they come from the model
        self.pinned = [(g.lhs, int(g.rhs)) for g in _guards(found) if isinstance(g, sympy.Eq) and g.rhs.is_Integer
                       and g.lhs.free_symbols and int(g.rhs) not in ours]  # fmt: skip

    def simplify(self, expr: Any) -> Any:
        if isinstance(expr, int):
            return self.sympy.Integer(expr)
        try:
            expr = self.env.simplify(expr)
        except Exception:
            return expr
        if self.scaled:
            expr = expr.xreplace({s: self.divisible[s] * v for s, v in self.scaled.items()})
        if isinstance(expr, self.sympy.Add):  # 16·(a + 1)·(b + 1), not its four expanded terms
            with contextlib.suppress(Exception):
                expr = self.sympy.factor(expr)
        return expr

    def label(self, expr: Any, example: int | None) -> int | str:
        """The dim's label: an int where the model fixes it, else the expression (its number where the
        expression is longer than MAX_LABEL or has no form here)."""
        pinned = self.pinned_value(expr)
        if pinned is not None:
            return pinned
        expr = self.simplify(expr)
        if expr.is_Integer:
            return int(expr)
        try:
            text = self.text(expr)
        except _Unprintable:
            text = None
        if text is None or len(text) > MAX_LABEL:
            if example is None:
                raise _Unprintable(str(expr))
            return example
        return text

    def pinned_value(self, expr: Any) -> int | None:
        """The value a guard pins `expr` to, if one does: `[B, 7200]` after a flatten the next Linear fixes."""
        if isinstance(expr, int) or not self.pinned:
            return None
        for lhs, value in self.pinned:
            with contextlib.suppress(Exception):
                if self.sympy.expand(lhs - expr) == 0:
                    return value
        return None

    def text(self, expr: Any, context: str = "") -> str:
        """`context`: the operator this expression sits under ('sum', 'product', 'power'), for parentheses."""
        from torch.utils._sympy import functions as F

        sp = self.sympy
        if expr.is_Integer:
            value = int(expr)
            return f"({value})" if value < 0 and context in ("product", "power") else str(value)
        if expr.is_Symbol and expr in self.unscaled:
            name, d = self.unscaled[expr]
            return f"({name}/{d})" if context in ("product", "power") else f"{name}/{d}"
        if expr.is_Symbol:
            known = self.found.names.get(expr)
            if known is None:
                raise _Unprintable(str(expr))
            return known
        if isinstance(expr, sp.Add):
            floor = self._floor_sum(expr, context)
            text = self._sum(expr)
            text = f"({text})" if context in ("product", "power") else text
            return floor if floor is not None and len(floor) <= len(text) else text
        if isinstance(expr, sp.Mul):
            text = self._product(expr)
            return f"({text})" if context == "power" or (context == "product" and "/" in text) else text
        if isinstance(expr, sp.Pow | F.PowByNatural):
            base, exponent = expr.args
            if not exponent.is_Integer or int(exponent) < 1:
                raise _Unprintable(str(expr))
            power = SUPERSCRIPT.get(int(exponent), f"^{int(exponent)}")
            return f"{self.text(base, 'power')}{power}"
        if isinstance(expr, F.FloorDiv):
            a, b = expr.args
            if isinstance(a, F.FloorDiv) and a.args[1].is_Integer and b.is_Integer:  # (x//2)//2 is x//4
                a, b = a.args[0], self.sympy.Integer(int(a.args[1]) * int(b))
            return self._floor(a, b, context)
        if isinstance(expr, F.CleanDiv):
            a, b = expr.args
            text = f"{self.text(a, 'product')}/{self.text(b, 'power')}"
            return f"({text})" if context in ("product", "power") else text
        if isinstance(expr, F.CeilDiv):
            a, b = expr.args
            return f"ceil({self.text(a, 'product')}/{self.text(b, 'power')})"
        if isinstance(expr, F.Mod | F.PythonMod | sp.Mod):
            a, b = expr.args
            text = f"{self.text(a, 'product')} % {self.text(b, 'power')}"
            return f"({text})" if context else text
        if isinstance(expr, F.Max | F.Min | sp.Max | sp.Min):
            name = "max" if isinstance(expr, F.Max | sp.Max) else "min"
            return f"{name}({', '.join(self.text(a) for a in expr.args)})"
        raise _Unprintable(str(expr))

    def _sum(self, expr: Any) -> str:
        terms = sorted(expr.args, key=lambda t: (t.is_Number, t.could_extract_minus_sign(), self._order(t)))
        out = ""
        for term in terms:
            negative = term.could_extract_minus_sign()
            body = self.text(-term if negative else term, "sum")
            out += (" - " if negative else " + ") + body if out else ("-" + body if negative else body)
        return out

    def _order(self, expr: Any) -> tuple[int, str]:
        """Factors and terms in the inputs' order (B before T, H before W)."""
        order = list(self.found.names)
        back = {v: s for s, v in self.scaled.items()}
        symbols = [back.get(s, s) for s in expr.free_symbols]
        return min((order.index(s) for s in symbols if s in order), default=len(order)), str(expr)

    def _floor_sum(self, expr: Any, context: str) -> str | None:
        """`(x - 5)//2 + 1` as `(x - 3)//2`: a constant beside one floor division goes inside it."""
        from torch.utils._sympy import functions as F

        if len(expr.args) != 2:
            return None
        constant, other = sorted(expr.args, key=lambda t: not t.is_Integer)
        if not (constant.is_Integer and isinstance(other, F.FloorDiv) and other.args[1].is_Integer):
            return None
        inner, k = other.args
        return self._floor(self.sympy.Add(inner, int(constant) * int(k)), k, context)

    def _floor(self, a: Any, b: Any, context: str) -> str:
        """a // b: `a/b` where a guard proves b divides a, `ceil(x/b)` for `(x + b - 1)//b` when shorter."""
        op = "/" if self._divides(a, b) else "//"
        text = f"{self.text(a, 'product')}{op}{self.text(b, 'power')}"
        text = f"({text})" if context in ("product", "power") else text
        if op == "//" and b.is_Integer and int(b) > 1:
            x = self.sympy.Add(a, -(int(b) - 1))
            ceil = f"ceil({self.text(x, 'product')}/{int(b)})"
            if len(ceil) < len(text):
                return ceil
        return text

    def _product(self, expr: Any) -> str:
        sp = self.sympy
        coefficient, factors = expr.as_coeff_mul()
        if coefficient.is_Rational and not coefficient.is_Integer:  # H/4: a Rational coefficient of ours
            numerator = sp.Mul(coefficient.p, *factors)
            return f"{self.text(numerator, 'product')}/{coefficient.q}"
        scaled = [f for f in factors if f in self.unscaled]
        if coefficient.is_Integer and coefficient > 1 and scaled:  # 2·(H/4) is H/2, 8·(H/4) is 2·H
            name, d = self.unscaled[scaled[0]]
            c, g = int(coefficient), math.gcd(int(coefficient), d)
            rest = [f for f in factors if f is not scaled[0]]
            head = name if d // g == 1 else f"{name}/{d // g}"
            if c // g != 1:
                head = f"{c // g}·{head}" if d // g == 1 else f"{c // g}·({head})"
            if rest:
                if "/" in head and not head.startswith("("):
                    head = f"({head})"
                return DOT.join([head, *(self.text(f, "product") for f in sorted(rest, key=self._order))])
            return head
        parts = [] if coefficient == 1 else [self.text(coefficient, "product")]
        for factor in sorted(factors, key=self._order):
            parts.append(self.text(factor, "product"))
        if coefficient == -1:
            parts = ["-" + parts[0] if len(parts) == 1 else "-" + DOT.join(parts)]
        return DOT.join(parts)

    def _divides(self, a: Any, b: Any) -> bool:
        """Whether the guards prove b divides a: each term of a is a multiple of b (a symbol whose guard said
        so, a product with such a factor or coefficient)."""
        if not b.is_Integer:
            return False
        k = int(b)
        for term in self.sympy.Add.make_args(a):
            coefficient, factors = term.as_coeff_mul()
            if not coefficient.is_Integer:
                return False
            if int(coefficient) % k == 0:
                continue
            if not any(f.is_Symbol and self.divisible.get(f, 1) % (k // math.gcd(int(coefficient), k)) == 0
                       for f in factors):  # fmt: skip
                return False
        return True


def _divisors(found: Pass) -> dict[Any, int]:
    """Divisors the guards prove for the named sizes: torch writes `H % 4 == 0` as `Eq(4*(H//4), H)` (a cat
    after pooling and upsampling) or `Eq(Mod(H, 4), 0)`; a second level (`Eq(2*((H//2)//2), H//2)`) shows once
    H is written 2·h, so the guards are read again with what was found, until nothing new is."""
    import sympy

    guards = [g for g in _guards(found) if isinstance(g, sympy.Eq)]
    out: dict[Any, int] = {}
    for _ in range(4):
        scaled = {s: sympy.Symbol(f"{s}_over_{d}", integer=True, positive=True) for s, d in out.items()}
        back = {v: s for s, v in scaled.items()}
        changed = False
        for guard in guards:
            rewritten = guard.xreplace({s: out[s] * v for s, v in scaled.items()}) if scaled else guard
            if not isinstance(rewritten, sympy.Eq):
                continue
            for symbol, k in _divisibility(rewritten):
                original = back.get(symbol, symbol)
                if original not in found.names:
                    continue
                divisor = math.lcm(out.get(original, 1), out.get(original, 1) * k if symbol in back else k)
                if divisor != out.get(original, 1):
                    out[original] = divisor
                    changed = True
        if not changed:
            break
    return out


def _divisibility(guard: Any) -> list[tuple[Any, int]]:
    """(symbol, k) where the guard says k divides the symbol."""
    import sympy
    from torch.utils._sympy import functions as F

    found = []
    lhs, rhs = guard.args
    for a, b in ((lhs, rhs), (rhs, lhs)):
        if b.is_Symbol:  # k*(s//k) == s
            coefficient, factors = a.as_coeff_mul()
            if (len(factors) == 1 and isinstance(factors[0], F.FloorDiv) and factors[0].args[0] == b
                    and factors[0].args[1] == coefficient):  # fmt: skip
                found.append((b, int(coefficient)))
        if isinstance(a, F.Mod | F.PythonMod | sympy.Mod) and b == 0 and a.args[0].is_Symbol and a.args[1].is_Integer:
            found.append((a.args[0], int(a.args[1])))
    return found


def _guards(found: Pass) -> list[Any]:
    out = []
    for guard in getattr(found.env, "guards", []):
        try:
            out.append(found.env.simplify(guard.expr))
        except Exception:
            out.append(guard.expr)
    return out


# -- what the model accepts --------------------------------------------------------------------------------------


def accepts(found: Pass, printer: Printer, shapes: dict[str, SymDims], ours: frozenset[int]) -> str | None:
    """ "x: [B, 3, H, W] with H, W ≡ 0 mod 4 and 16·(H/4 - 3)·(W/4 - 3) = 400": the inputs' symbolic shapes
    and the conditions the guards put on their sizes (equalities, divisors, bounds a size must stay within)."""
    import sympy

    if not shapes:
        return None
    inputs = ", ".join(f"{name}: [{', '.join(map(str, dims))}]" for name, dims in shapes.items())
    named = set(found.names)
    conditions: list[str] = []
    moduli: dict[int, list[str]] = {}
    for symbol, k in printer.divisible.items():
        if symbol in named and k > 1:
            moduli.setdefault(k, []).append(found.names[symbol])
    for k, names in sorted(moduli.items()):
        conditions.append(f"{', '.join(sorted(names))} ≡ 0 mod {k}")
    # the smallest sizes the guards allow (`H, W ≥ 16`: LeNet's two 5x5 convolutions and poolings need room)
    lowest: dict[int, list[str]] = {}
    for symbol, name in found.names.items():
        if printer.simplify(symbol) != symbol and symbol not in printer.scaled:
            continue  # a size a guard fixed (`features` = 20): a number, no condition
        bound = getattr(found.env, "var_to_range", {}).get(symbol)
        low = getattr(bound, "lower", None)
        if low is not None and low.is_Integer and int(low) > 2 and name not in lowest.get(int(low), []):
            lowest.setdefault(int(low), []).append(name)
    for low, names in sorted(lowest.items()):
        conditions.append(f"{', '.join(names)} ≥ {low}")
    for raw in _guards(found):
        guard = (
            raw.xreplace({s: printer.divisible[s] * v for s, v in printer.scaled.items()}) if printer.scaled else raw
        )
        if not isinstance(guard, sympy.Eq | sympy.Le | sympy.Lt | sympy.Ge | sympy.Gt):
            continue
        if not guard.free_symbols or not guard.free_symbols <= named | set(printer.unscaled):
            continue
        lhs, rhs = guard.args
        if isinstance(guard, sympy.Eq):
            if _is_divisibility(lhs, rhs) or _is_divisibility(rhs, lhs):
                continue
            if lhs.is_Integer:
                lhs, rhs = rhs, lhs
            if rhs.is_Integer and int(rhs) in ours:
                continue  # our own check fixed a wrong size at its value to go on: no condition of the model's
            try:
                text = f"{printer.text(printer.simplify(lhs))} = {printer.text(rhs)}"
            except _Unprintable:
                continue
        else:  # an upper bound on one size (`T ≤ 1024`, from `assert t <= block_size`)
            small, big = (lhs, rhs) if isinstance(guard, sympy.Le | sympy.Lt) else (rhs, lhs)
            if not (small.is_Symbol and big.is_Integer and small in found.names):
                continue
            bound = int(big) - (1 if isinstance(guard, sympy.Lt | sympy.Gt) else 0)
            text = f"{found.names[small]} ≤ {bound}"
        if text not in conditions:
            conditions.append(text)
    return f"{inputs} with {' and '.join(conditions)}" if conditions else inputs


def _is_divisibility(a: Any, b: Any) -> bool:
    from torch.utils._sympy import functions as F

    _, factors = a.as_coeff_mul()
    return b.is_Symbol and len(factors) == 1 and isinstance(factors[0], F.FloorDiv) and factors[0].args[0] == b


# -- a Linear that meets the wrong size ----------------------------------------------------------------------


def linear_story(found: Pass, printer: Printer, layer: str, declared: int, expr: Any) -> str | None:
    """ "fc1 expects 400 = 16·5·5 features; it gets 16·(H/4 - 3)·(W/4 - 3), which is 400 only for H = W = 32"."""
    import sympy

    from shapelens.trace import solve

    with contextlib.suppress(Exception):
        expr = found.env.simplify(expr)
    batch = {s for s, n in found.names.items() if n.startswith("B")}
    free = sorted(expr.free_symbols - batch, key=lambda s: list(found.names).index(s) if s in found.names else 99)
    if not free or not set(free) <= set(found.names):
        return None
    try:
        gets = printer.text(printer.simplify(expr))
    except _Unprintable:
        return None
    names = [str(s) for s in free]
    check: Callable[..., Any] = solve._compiled(expr, names)
    solutions: list[int] = []
    for value in range(1, solve.SEARCH + 1):  # the sizes tied (an image's H = W): one unknown
        try:
            if check(*[value] * len(free)) == declared:
                solutions.append(value)
        except Exception:  # a division by zero at a size too small
            continue
    who = " = ".join(found.names[s] for s in free)
    if not solutions:
        return f"{layer} expects {declared} features; it gets {gets}, which no input size makes {declared}"
    first = solutions[0]
    at = {s: sympy.Integer(first) for s in free}
    product = sympy.factor(expr)
    factors = [int(f.xreplace(at)) for f in sympy.Mul.make_args(product)] if isinstance(product, sympy.Mul) else []
    split = f" = {DOT.join(map(str, factors))}" if len(factors) > 1 and all(f > 0 for f in factors) else ""
    if len(solutions) == 1:
        where = f"only for {who} = {first}"
    elif solutions == list(range(first, solutions[-1] + 1)):
        where = f"for {who} from {first} to {solutions[-1]}"
    else:
        where = f"for {who} = {', '.join(map(str, solutions[:3]))}{', …' if len(solutions) > 3 else ''}"
    return f"{layer} expects {declared}{split} features; it gets {gets}, which is {declared} {where}"


# -- the whole of it, for one traced model ------------------------------------------------------------------------


def after_trace(result: TargetResult, model: nn.Module | None, outcome: dict[str, Any], guesses: list[Guess] | None,
                spec: TargetSpec, recorder: Recorder, timeout: float) -> TargetResult:  # fmt: skip
    """`result` with the symbolic forms filled in (records, inputs, dims, accepts, a Linear mismatch's story);
    `result` itself when the pass cannot run, fails or runs past its cap (CAP of `timeout`, in CPU time)."""
    if model is None or "args" not in outcome or result.error is not None or result.mode not in ("meta", "cpu"):
        return result
    try:
        named = annotation_names(model) | directive_names(model, spec.args, spec.kwargs, outcome.get("target"))
        return _annotate(result, model, outcome, guesses, named, recorder, timeout)
    except Exception:  # the pass is an addition: the plain result stands
        return result


def _annotate(result: TargetResult, model: nn.Module, outcome: dict[str, Any], guesses: list[Guess] | None,
              named: dict[str, list[Any]], recorder: Recorder, timeout: float) -> TargetResult:  # fmt: skip
    import inspect

    args, kwargs = list(outcome["args"]), dict(outcome["kwargs"])
    try:
        bound = inspect.signature(model.forward).bind_partial(*args, **kwargs).arguments
    except (TypeError, ValueError):
        bound = {f"arg{i}": a for i, a in enumerate(args)} | kwargs
    dims = input_dims(model, list(bound.items()), guesses, named)
    if not any(n is not None for d in dims for n in d.names):
        return result
    # the cap counts CPU time, so it cuts the same pass on a loaded machine as on an idle one (the JSON of two runs
    # agrees); the wall clock only keeps it within the target's own timeout: the worker's backstop kills a child
    # past that, and the plain result with it
    wall = timeout - (result.elapsed_ms or 0.0) / 1000 - 0.5
    if wall < 0.05:
        return result
    found = run_pass(model, args, kwargs, dims, recorder, wall, timeout * CAP)
    if found.error is not None or not found.stores:
        return result
    ours = frozenset(int(m.actual) for m in result.mismatches if isinstance(m.actual, int))  # sizes our checks fixed
    printer = Printer(found, ours)
    by_place: dict[tuple[str, int, str], list[tuple[tuple[int | None, ...], tuple[Any, ...]]]] = {}
    for (file_id, sid, target), seen in found.stores.items():
        path, table = recorder.files[file_id]
        by_place.setdefault((path, table[sid].line, target), []).extend(seen)

    def labels(sizes: tuple[Any, ...], example: tuple[int | None, ...]) -> SymDims | None:
        try:
            out = [printer.label(s, e) for s, e in zip(sizes, example, strict=True)]
        except _Unprintable:
            return None
        return out

    records = []
    for record in result.records:
        seen = by_place.get((record.path, record.line, record.target), [])
        forms: list[SymDims | None] = []
        for shape in record.shapes:
            forms.append(_matching(seen, shape, labels, found.values))
        records.append(dataclasses.replace(record, symbolic=forms) if any(forms) else record)
    inputs = []
    shapes: dict[str, SymDims] = {}
    for given in result.inputs:
        sizes = found.inputs.get(given.name)
        form = labels(sizes, tuple(given.shape)) if sizes is not None and given.shape is not None else None
        if form is not None:
            shapes[given.name] = form
        inputs.append(dataclasses.replace(given, symbolic=form) if form is not None else given)
    mismatches = []
    for mismatch in result.mismatches:
        story = None
        if mismatch.code == "SL101":
            story = _story_for(found, printer, model, recorder, mismatch)
        mismatches.append(dataclasses.replace(mismatch, symbolic=story) if story else mismatch)
    from shapelens.core.symbolic import names

    shown: list[SymDims] = [f for r in records for f in r.symbolic if f]
    shown += [i.symbolic for i in inputs if i.symbolic]
    used = {n for f in shown for label in f for n in names(label)}
    return dataclasses.replace(
        result,
        records=records,
        inputs=inputs,
        mismatches=mismatches,
        dims={n: v for n, v in found.values.items() if n in used},
        accepts=accepts(found, printer, shapes, ours),
    )


def _matching(seen: list[Any], shape: list[int | None], labels: Callable[..., SymDims | None],
              values: dict[str, int]) -> SymDims | None:  # fmt: skip
    """The symbolic form of a plain shape: the first the pass saw at this statement whose labels, at the plain
    trace's own values, give that shape (the pass may run at other sizes: a batch of 1 runs at 2)."""
    from shapelens.core.symbolic import LabelError, evaluate_shape

    for example, sizes in seen:
        form = labels(sizes, example)
        if form is None:
            continue
        try:
            if list(evaluate_shape(form, values)) == shape:
                return form
        except LabelError:
            continue
    return None


def _story_for(found: Pass, printer: Printer, model: nn.Module, recorder: Recorder, mismatch: Any) -> str | None:
    for name, module in model.named_modules():
        if id(module) in found.linear_in and recorder.sites.get(id(module)) == mismatch.site:
            return linear_story(found, printer, name or type(module).__name__, int(mismatch.declared),
                                found.linear_in[id(module)])  # fmt: skip
    return None


def directive_names(
    model: nn.Module, items: list[dict[str, Any]], kwargs: dict[str, dict[str, Any]], target: Any = None
) -> dict[str, list[Any]]:
    """The names the user gave the dims, by forward's parameter name: a directive's (`x=(B, 3, H, W)` → {"x":
    ["B", None, "H", "W"]}, the plan's tensor items carry them as `"names"`), or an example call's variables
    (`x = torch.randn(batch_size, seq_len, 16)` then `model(x)` → {"x": ["batch_size", "seq_len", None]})."""
    import inspect

    try:
        params = [p for p in inspect.signature(model.forward).parameters if p != "self"]
    except (TypeError, ValueError):
        params = []
    out: dict[str, list[Any]] = {}
    pairs = [(params[i], item) for i, item in enumerate(items) if i < len(params)] + list(kwargs.items())
    for name, item in pairs:
        if isinstance(item, dict) and "names" in item:
            out[name] = list(item["names"])
        elif isinstance(item, dict) and "node" in item and target is not None:
            found = _example_names(item, target)
            if found is not None:
                out[name] = found
    return out


def annotation_names(model: nn.Module) -> dict[str, list[Any]]:
    """Dims a jaxtyping annotation names (`x: Float[Tensor, "batch seq dim"]` → {"x": ["batch", "seq", "dim"]}),
    read from the annotation object's `dim_str` or, for a string annotation, its text; an int stays a size, a
    variadic (`*batch`, `...`) or broadcast dim gives no names for that parameter."""
    import inspect
    import re

    try:
        parameters = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return {}
    out: dict[str, list[Any]] = _docstring_names(model, [n for n in parameters if n != "self"])
    for name, parameter in parameters.items():
        annotation = parameter.annotation
        text = getattr(annotation, "dim_str", None)
        if text is None and isinstance(annotation, str):
            match = re.search(r"\[\s*[\w.]+\s*,\s*[\"']([^\"']*)[\"']\s*\]", annotation)
            text = match.group(1) if match else None
        if not isinstance(text, str) or not text.split():
            continue
        words = text.split()
        if any(not (w.isidentifier() or w.isdigit()) for w in words):
            continue  # `*batch`, `...`, `#dim`, `dim=3`: no fixed rank to name
        out[name] = [None if w.isdigit() else w for w in words]
    return out


def _docstring_names(model: nn.Module, params: list[str]) -> dict[str, list[Any]]:
    """Dims forward's docstring names for a parameter, on the parameter's own line: `x: (B, T, C)`,
    `x (Tensor): shape [batch, seq_len, d_model]`, `ids: LongTensor of shape (N, L)`."""
    import re

    doc = getattr(type(model).forward, "__doc__", None) or ""
    out: dict[str, list[Any]] = {}
    for name in params:
        pattern = rf"^\s*{re.escape(name)}\b[^\n]*?[\[(]\s*(\w+(?:\s*,\s*\w+)+)\s*[\])]"
        match = re.search(pattern, doc, re.MULTILINE)
        if match is None:
            continue
        words = [w.strip() for w in match.group(1).split(",")]
        if all(w.isidentifier() or w.isdigit() for w in words) and any(w.isidentifier() for w in words):
            out[name] = [None if w.isdigit() else w for w in words]
    return out


FACTORIES = {"randn", "rand", "zeros", "ones", "empty", "randint", "full", "normal"}


def _example_names(item: dict[str, Any], target: Any) -> list[str | None] | None:
    """The variables an example input's factory call sizes it with (`torch.randn(batch_size, 3, h, w)`), found
    at the argument itself or at the assignment of the name passed (in the example's set-up statements)."""
    import ast

    nodes = getattr(target, "nodes", None) or {}
    expr = next((n for n in nodes.get(tuple(item["node"]), []) if isinstance(n, ast.expr)), None)
    if isinstance(expr, ast.Name):
        value = None
        for step in getattr(target.spec, "setup", []):
            for stmt in nodes.get(tuple(step.get("node", ())), []):
                if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                        and isinstance(stmt.targets[0], ast.Name) and stmt.targets[0].id == expr.id):  # fmt: skip
                    value = stmt.value
        expr = value
    if not (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute | ast.Name)):
        return None
    function = expr.func.attr if isinstance(expr.func, ast.Attribute) else expr.func.id
    if function not in FACTORIES:
        return None
    args = expr.args[2:] if function == "randint" else expr.args
    if len(args) == 1 and isinstance(args[0], ast.Tuple | ast.List):
        args = args[0].elts
    size = next((k.value for k in expr.keywords if k.arg == "size"), None)
    if isinstance(size, ast.Tuple | ast.List):
        args = size.elts
    names: list[str | None] = [a.id if isinstance(a, ast.Name) else None for a in args]
    return names if any(names) else None


def warm_up() -> None:  # registered in solve.WARM_UPS below: the worker warms up through solve
    """One symbolic pass over the ops models use most (convolutions, pooling, views, attention, cat, norms,
    embeddings), in the warm worker before it forks: the first symbolic use of each op in a process costs
    tens of milliseconds (FakeTensorMode's kernels and guards are made lazily), which every child then shares."""
    import torch.nn.functional as F

    class Warm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
            self.norm = nn.BatchNorm2d(8)
            self.pool = nn.AdaptiveAvgPool2d((2, 2))
            self.embed = nn.Embedding(10, 8)
            self.ln = nn.LayerNorm(8)
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.fc = nn.Linear(8, 8)

        def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
            y = F.max_pool2d(F.relu(self.conv(x)), 2)
            y = torch.cat([F.interpolate(y, scale_factor=2), self.up(y)[:, :, : x.shape[2], : x.shape[3]]], 1)
            y = self.pool(self.norm(y)).flatten(1).view(y.size(0), 4, -1)[..., :8]
            h = self.ln(self.embed(ids))
            a, _ = self.attn(h, h, h)
            b, t, c = a.shape
            q = self.fc(a).view(b, t, 2, c // 2).transpose(1, 2)
            w = F.softmax(q @ q.transpose(-2, -1) / 2.0, dim=-1).masked_fill(torch.ones(t, t).bool(), 0.0)
            return F.gelu((w @ q).transpose(1, 2).reshape(b, t, c)).mean(1) + y.sum()

    with torch.device("meta"):
        model = Warm()
    x = torch.empty(2, 3, 8, 8, device="meta")
    ids = torch.zeros(2, 5, dtype=torch.long, device="meta")
    dims = [InputDims("x", x, ["B", None, "H", "W"], [2, 3, 8, 8]), InputDims("ids", ids, ["B2", "T"], [2, 5])]
    found = run_pass(model, [x, ids], {}, dims, Recorder(lambda path: False), 30.0)
    printer = Printer(found)
    for seen in found.stores.values():
        for example, sizes in seen:
            for size, value in zip(sizes, example, strict=True):
                with contextlib.suppress(_Unprintable):
                    printer.label(size, value)


solve.WARM_UPS.append(warm_up)
