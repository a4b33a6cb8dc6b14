"""Inputs made from the built model itself (InputSource.INFER): each parameter of `forward` without a default is
followed through `forward`'s statements, in evaluation order (`F.relu(self.conv1(x))` meets `conv1` first),
through reassignments and size-preserving ops, into submodules' own `forward`s, to the first layer or op that
fixes its rank and sizes: Conv/ConvTranspose (channels), the norms, Linear, Embedding (int64), RNNs, attention and
the Transformer modules, a reshape or view with literal sizes. `B, T, C = x.shape` says the rank.

The result is a list of candidates (a full set of inputs each), the likeliest first: a Linear-first model gets
[2, in] then [2, 8, in]. Each dim says whether it is the batch, fixed by a layer, or free (an image's H and W,
a sequence length), which `trace/solve.py` may choose so that a later layer's declared size is met.

Nothing here runs user code: the forward's source is read (inspect) and the model's attributes looked up.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

RREF_CALLS = ("rpc_sync", "rpc_async", "remote", "to_here", "local_value")  # an RRef's ways to its module
BATCH = 2  # DESIGN: example sizes >= 2, so no size-1 broadcasting hides a bug
SEQUENCE = 8
SPATIAL = {1: 32, 2: 32, 3: 16}  # default free sizes of Conv1d/2d/3d inputs
MAX_DEPTH = 6  # submodule forwards followed


@dataclass
class Dim:
    size: int
    kind: str  # "batch" | "fixed" | "free"
    group: str = ""  # free dims of one group are tied in the solve (an image's H and W)


@dataclass
class Guess:
    """One input: its dims, dtype, and why."""

    name: str
    dims: list[Dim]
    dtype: str = "float32"
    note: str = ""
    rref: bool = False  # forward reads it with `.to_here()`: passed as an RRef holding the tensor

    @property
    def shape(self) -> list[int]:
        return [d.size for d in self.dims]

    def free(self) -> list[int]:
        return [i for i, d in enumerate(self.dims) if d.kind == "free"]


class NoInput(Exception):
    pass


# -- what each layer fixes ------------------------------------------------------------------------------

ELEMENTWISE_MODULES: tuple[type, ...] = (
    nn.modules.dropout._DropoutNd,
    nn.Identity,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Softsign, nn.Tanhshrink,
    nn.Softmax, nn.LogSoftmax, nn.Softmin, nn.Threshold, nn.GLU,
    nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd, nn.modules.padding._ReflectionPadNd,
    nn.modules.padding._ReplicationPadNd, nn.modules.padding._ConstantPadNd, nn.Upsample,
    nn.modules.pooling._LPPoolNd,
)  # fmt: skip
SIZE_KEEPING_FUNCTIONS = {
    "relu", "relu6", "gelu", "silu", "elu", "selu", "celu", "leaky_relu", "mish", "sigmoid", "tanh", "softplus",
    "hardtanh", "hardswish", "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "softmax",
    "log_softmax", "normalize", "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d",
    "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "pad", "interpolate",
    "abs", "exp", "log", "sqrt", "rsqrt", "neg", "square", "clamp", "clip", "contiguous", "float", "double",
    "half", "to", "clone", "detach", "type", "type_as", "masked_fill", "mul", "add", "sub", "div", "pow",
    "requires_grad_", "cpu", "cuda", "bfloat16", "relu_", "sigmoid_", "tanh_", "mul_", "add_", "div_",
    "sub_", "clamp_", "masked_fill_", "cumsum", "sign", "sin", "cos", "erf", "softsign", "logsigmoid",
}  # fmt: skip
INT_OPS: dict[type, Any] = {ast.Add: int.__add__, ast.Sub: int.__sub__, ast.Mult: int.__mul__,
                            ast.FloorDiv: int.__floordiv__}  # fmt: skip


def _fixed(size: int) -> Dim:
    return Dim(int(size), "fixed")


def _free(size: int, group: str) -> Dim:
    return Dim(size, "free", group)


def _batch() -> Dim:
    return Dim(BATCH, "batch")


def _ranked(rank: int | None, tail: list[Dim], default_ranks: list[int], group: str) -> list[list[Dim]]:
    """[batch, free..., *tail] for the given rank, or for each default rank."""
    out = []
    for r in [rank] if rank is not None else default_ranks:
        extra = r - 1 - len(tail)
        if extra < 0:
            if r == len(tail):  # unbatched, only when the code says the rank
                out.append(list(tail))
            continue
        out.append([_batch(), *[_free(SEQUENCE, group) for _ in range(extra)], *tail])
    return out


def layer_inputs(layer: nn.Module, rank: int | None, group: str) -> tuple[list[list[Dim]], str, str] | None:
    """The input dims candidates a layer accepts (first argument), the dtype, and a note; None when the layer
    fixes nothing (the flow goes on through it or stops)."""
    name = type(layer).__name__
    if isinstance(layer, nn.modules.conv._ConvNd) and not isinstance(layer, nn.modules.lazy.LazyModuleMixin):
        spatial = len(layer.kernel_size)
        size = SPATIAL.get(spatial, 16)
        dims = [_batch(), _fixed(layer.in_channels), *[_free(size, group) for _ in range(spatial)]]
        return [dims], "float32", f"{name}: {layer.in_channels} channels"
    if isinstance(layer, nn.Linear) and not isinstance(layer, nn.LazyLinear):
        return (_ranked(rank, [_fixed(layer.in_features)], [2, 3], group), "float32",
                f"{name}: {layer.in_features} features")  # fmt: skip
    if isinstance(layer, nn.Bilinear):
        return _ranked(rank, [_fixed(layer.in1_features)], [2], group), "float32", f"{name}: in1_features"
    if isinstance(layer, nn.Embedding | nn.EmbeddingBag):
        if rank is None:  # token ids [B, T] first; else one id per sample (a conditional GAN's class labels)
            options = [[_batch(), _free(SEQUENCE, group)], [_batch()]]
        else:
            options = [[_batch(), _free(SEQUENCE, group)]] if rank == 2 else _ranked(rank, [], [2], group)[:1]
        return options, "int64", f"{name}: indices below {layer.num_embeddings}"
    if isinstance(layer, nn.RNNBase):
        seq = _free(SEQUENCE, group)
        dims = [_batch(), seq] if layer.batch_first else [seq, _batch()]
        return [[*dims, _fixed(layer.input_size)]], "float32", f"{name}: input_size {layer.input_size}"
    if isinstance(layer, nn.RNNCellBase):
        return [[_batch(), _fixed(layer.input_size)]], "float32", f"{name}: input_size {layer.input_size}"
    if isinstance(layer, nn.modules.batchnorm._BatchNorm | nn.modules.instancenorm._InstanceNorm):
        features = layer.num_features
        if features == 0:
            return None
        spatial = {"1d": 1, "2d": 2, "3d": 3}.get(name[-2:], 2)
        if spatial == 1:
            ranks = [rank] if rank is not None else [2, 3]
            options = [[_batch(), _fixed(features), *([_free(SPATIAL[1], group)] if r == 3 else [])] for r in ranks]
        else:
            options = [[_batch(), _fixed(features), *[_free(SPATIAL[spatial], group) for _ in range(spatial)]]]
        return options, "float32", f"{name}: {features} channels"
    if isinstance(layer, nn.GroupNorm):
        ranks = [rank] if rank is not None else [4, 3, 2]
        options = [[_batch(), _fixed(layer.num_channels), *[_free(SPATIAL[2], group) for _ in range(r - 2)]]
                   for r in ranks if r >= 2]  # fmt: skip
        return options, "float32", f"{name}: {layer.num_channels} channels"
    if isinstance(layer, nn.LayerNorm | nn.RMSNorm) and layer.normalized_shape:
        tail = [_fixed(s) for s in layer.normalized_shape]
        note = f"{name}: {tuple(layer.normalized_shape)}"
        return _ranked(rank, tail, [len(tail) + 2, len(tail) + 1], group), "float32", note
    if isinstance(layer, nn.MultiheadAttention):
        return _sequence(layer.embed_dim, layer.batch_first, rank, group), "float32", f"{name}: {layer.embed_dim}"
    if isinstance(layer, nn.TransformerEncoderLayer | nn.TransformerDecoderLayer):
        attn = layer.self_attn
        return _sequence(attn.embed_dim, attn.batch_first, rank, group), "float32", f"{name}: d_model {attn.embed_dim}"
    if isinstance(layer, nn.TransformerEncoder | nn.TransformerDecoder) and len(layer.layers):
        return layer_inputs(layer.layers[0], rank, group)
    if isinstance(layer, nn.Transformer):
        return layer_inputs(layer.encoder, rank, group)
    return None


def _sequence(width: int, batch_first: bool, rank: int | None, group: str) -> list[list[Dim]]:
    if rank == 2:
        return [[_free(SEQUENCE, group), _fixed(width)]]
    seq = _free(SEQUENCE, group)
    return [[_batch(), seq, _fixed(width)] if batch_first else [seq, _batch(), _fixed(width)]]


# -- the flow through forward ---------------------------------------------------------------------------


@dataclass
class Track:
    """A value whose shape follows parameter `param`: the same, or after `ops` (transposes) or a flatten."""

    param: str
    ops: list[tuple[int, ...]] = field(default_factory=list)  # permutations applied since the parameter
    flat: bool = False  # flattened after the batch dim (a later Linear fixes the product)


@dataclass
class ModuleRef:
    module: Any  # an nn.Module, or a bound method of one


@dataclass
class Pieces:
    """`x.split(n)` / `x.chunk(n)` along the batch dim: each piece has x's shape but for the batch size."""

    track: Track


BATCH_MARK = object()  # `x.size(0)`: the batch size, in a reshape's sizes


@dataclass
class Found:
    options: list[list[Dim]]
    dtype: str
    note: str


def _source_tree(fn: Any) -> ast.FunctionDef | None:
    try:
        fn = inspect.unwrap(fn)
        text = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(text)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    node = tree.body[0] if tree.body else None
    return node if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else None  # type: ignore[return-value]


def _required_params(fn: Any) -> list[str]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in signature.parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]


class Flow:
    """One function's statements, walked once in order; `found` gets each parameter's first fixing use."""

    def __init__(self, owner: nn.Module, fn: Any, tree: ast.FunctionDef | None, depth: int) -> None:
        self.owner = owner
        self.globals = getattr(inspect.unwrap(fn), "__globals__", {}) if fn is not None else {}
        self.depth = depth
        self.env: dict[str, Any] = {}
        self.rank: dict[str, int] = {}
        self.found: dict[str, Found] = {}
        self.fields: set[str] = set()  # `batch.premise`, `tensor_list.mask`: fields read of an input object
        self.bools: set[str] = set()  # inputs inverted with `~`: masks
        self.least_rank: dict[str, int] = {}  # `mask.cumsum(2)`: at least 3 dims
        self.rrefs: set[str] = set()  # inputs read with `x_rref.to_here()`: RRefs of a tensor
        self.self_name: str | None = None
        code = getattr(inspect.unwrap(fn), "__code__", None) if fn is not None else None
        self.first_line = code.co_firstlineno if code is not None else 1
        if tree is None:
            return
        self.tree = tree
        args = tree.args
        names = [a.arg for a in [*args.posonlyargs, *args.args]]
        self.self_name = names[0] if names else None
        for name in names[1:] + [a.arg for a in args.kwonlyargs]:
            self.env[name] = Track(name)

    def run(self) -> dict[str, Found]:
        self.block(self.tree.body)
        # an object's fields nothing fixes, and masks: a guess still, of the rank and dtype the code uses
        for name in sorted(self.fields | self.bools | set(self.least_rank)):
            if name in self.found or (name not in self.fields and name not in self.bools and self.least_rank[name] < 3):
                continue
            rank = max(self.least_rank.get(name, 2), 2)
            dims = [_batch(), *[_free(SEQUENCE, name) for _ in range(rank - 1)]]
            dtype = "bool" if name in self.bools else "float32"
            self.found[name] = Found(
                [dims], dtype, "no layer fixes its size: a guess" + (", a mask" if dtype == "bool" else "")
            )
        return self.found

    # -- statements --

    def block(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.statement(stmt)

    def statement(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, ast.Assign):
            value = self.expr(stmt.value)
            for target in stmt.targets:
                self.bind(target, value, stmt.value)
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            self.bind(stmt.target, self.expr(stmt.value), stmt.value)
        elif isinstance(stmt, ast.AugAssign) or (isinstance(stmt, ast.Expr | ast.Return) and stmt.value is not None):
            self.expr(stmt.value)
        elif isinstance(stmt, ast.If | ast.While):
            self.expr(stmt.test)
            self.block(stmt.body)
            self.block(stmt.orelse)
        elif isinstance(stmt, ast.For):
            iterated = self.expr(stmt.iter)
            if isinstance(iterated, Pieces):  # `for x in xs.split(n)`: a micro-batch of xs (a pipeline)
                self.bind(stmt.target, iterated.track, None)
            elif isinstance(iterated, ModuleRef) and isinstance(iterated.module, nn.ModuleList | nn.Sequential):
                first = iterated.module[0] if len(iterated.module) else None
                self.bind(stmt.target, ModuleRef(first) if first is not None else None, None)
            else:
                self.bind(stmt.target, None, None)
            self.block(stmt.body)
        elif isinstance(stmt, ast.With | ast.Try):
            self.block(stmt.body)

    def bind(self, target: ast.expr, value: Any, source: ast.expr | None) -> None:
        if isinstance(target, ast.Name):
            self.env[target.id] = value
        elif isinstance(target, ast.Tuple | ast.List):
            shaped = self._shape_of(source)
            if shaped is not None and not any(isinstance(e, ast.Starred) for e in target.elts):
                self.rank.setdefault(shaped.param, len(target.elts))  # `B, T, C = x.shape`
            for element in target.elts:
                self.bind(element, None, None)

    def _shape_of(self, node: ast.expr | None) -> Track | None:
        """`x.shape` / `x.size()` of a tracked value."""
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "size":
            node = node.func.value if not node.args else None
        elif isinstance(node, ast.Attribute) and node.attr == "shape":
            node = node.value
        else:
            return None
        value = self.env.get(node.id) if isinstance(node, ast.Name) else None
        return value if isinstance(value, Track) and not value.ops and not value.flat else None

    # -- expressions, in evaluation order --

    def expr(self, node: ast.expr | None) -> Any:
        if node is None:
            return None
        if isinstance(node, ast.Name):
            if node.id in self.env:
                return self.env[node.id]
            return None
        if isinstance(node, ast.Attribute):
            base = self.expr(node.value) if not self._is_self(node.value) else None
            if self._is_self(node.value):
                value: Any = getattr(self.owner, node.attr, None)
                if hasattr(value, "local_value") and hasattr(value, "to_here"):  # an RRef: the module it holds
                    value = value.local_value()
                return ModuleRef(value) if isinstance(value, nn.Module) or inspect.ismethod(value) else None
            if isinstance(base, ModuleRef) and isinstance(base.module, nn.Module):
                value = getattr(base.module, node.attr, None)
                return ModuleRef(value) if isinstance(value, nn.Module) else None
            tensor_attribute = node.attr in TENSOR_ATTRIBUTES or hasattr(torch.Tensor, node.attr)  # `x.is_xpu`
            if isinstance(base, Track) and not base.ops and not base.flat and not tensor_attribute:
                field = f"{base.param}.{node.attr}"  # `batch.premise`: an input that is an object of tensors
                if self.depth == 0 and "." not in base.param:
                    self.fields.add(field)
                return Track(field)
            return None
        if isinstance(node, ast.Subscript):
            base = self.expr(node.value)
            self.expr(node.slice)
            if isinstance(base, ModuleRef) and isinstance(base.module, nn.ModuleList | nn.Sequential):
                index = self.const(node.slice)
                if isinstance(index, int) and -len(base.module) <= index < len(base.module):
                    return ModuleRef(base.module[index])
            if isinstance(base, ModuleRef) and isinstance(base.module, nn.ModuleDict):
                key = self.const(node.slice)
                if isinstance(key, str) and key in base.module:
                    return ModuleRef(base.module[key])
            return None
        if isinstance(node, ast.BinOp):
            left, right = self.expr(node.left), self.expr(node.right)
            if isinstance(node.op, ast.MatMult):
                return self._matmul(left, node.right)
            return left if isinstance(left, Track) else right if isinstance(right, Track) else None
        if isinstance(node, ast.UnaryOp):
            operand = self.expr(node.operand)
            if isinstance(node.op, ast.Invert) and isinstance(operand, Track) and not operand.ops:
                self.bools.add(operand.param)
            return operand
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.IfExp):
            self.expr(node.test)
            body = self.expr(node.body)
            other = self.expr(node.orelse)
            return body if body is not None else other
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expr(child)
        return None

    def _is_self(self, node: ast.expr) -> bool:
        return isinstance(node, ast.Name) and node.id == self.self_name

    def call(self, node: ast.Call) -> Any:
        func = node.func
        method_of: Any = None
        if isinstance(func, ast.Attribute) and not self._is_self(func.value):
            method_of = self.expr(func.value)  # `x.view(...)`: x first, as Python does
            callee: Any = method_of if isinstance(method_of, ModuleRef) else None
            if isinstance(method_of, ModuleRef) and func.attr in RREF_CALLS and not node.args:
                return method_of  # `rref.rpc_sync().forward(x)`: the held module's own methods
            if isinstance(method_of, ModuleRef) and isinstance(method_of.module, nn.Module) and func.attr == "forward":
                callee, method_of = method_of, None  # `self.table.forward(ids, offsets)`: as `self.table(...)`
            elif isinstance(method_of, ModuleRef) and isinstance(method_of.module, nn.Module):
                attr = getattr(method_of.module, func.attr, None)
                callee = ModuleRef(attr) if isinstance(attr, nn.Module) or inspect.ismethod(attr) else None
                method_of = None
        else:
            callee = self.expr(func)
        args = [self.expr(a.value if isinstance(a, ast.Starred) else a) for a in node.args]
        kwargs = {k.arg: self.expr(k.value) for k in node.keywords if k.arg}
        if isinstance(callee, ModuleRef):
            return self.apply(callee.module, args, kwargs)
        if callee is None and method_of is None:
            self._method_handed_over(node, args)
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if isinstance(method_of, Track):
            return self.method(method_of, name, node)
        first = args[0] if args else None
        if name == "iter" and isinstance(first, Pieces):
            return first
        if not isinstance(first, Track):
            return None
        if name in SIZE_KEEPING_FUNCTIONS or name == "RRef":  # `RRef(x)`: x, held
            return first
        if name == "flatten":
            return Track(first.param, first.ops, flat=True)
        if name in ("transpose", "swapaxes") and len(node.args) == 3:
            return self._transposed(first, node.args[1], node.args[2])
        if name in ("linear", "conv1d", "conv2d", "conv3d", "embedding", "layer_norm") and len(node.args) >= 2:
            self._functional(first, name, node)
        if name in ("reshape", "view") and len(node.args) == 2:
            self._reshape(first, node.args[1:], node)
        if name in ("rearrange", "reduce", "repeat") and len(node.args) >= 2:
            pattern = self.const(node.args[1])
            lengths = {k.arg: self.const(k.value) for k in node.keywords if k.arg}
            if isinstance(pattern, str):
                self._einops(first, pattern, lengths, f"{name}('{pattern}')")
        if name in ("mm", "matmul") and len(node.args) == 2:
            self._matmul(first, node.args[1])
        return None

    def _method_handed_over(self, node: ast.Call, args: list[Any]) -> None:
        """`remote_method(Table.forward, self.table_rref, x)`: a helper handed a module class's method and a
        module of that class (or its RRef) calls the method on it with the other arguments (RPC examples)."""
        for index, arg in enumerate(node.args):
            cls = (
                self.globals.get(arg.value.id)
                if isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name)
                else None
            )
            if not (isinstance(cls, type) and issubclass(cls, nn.Module) and isinstance(arg, ast.Attribute)):
                continue
            owner = next((a for a in args if isinstance(a, ModuleRef) and isinstance(a.module, cls)), None)
            method = getattr(owner.module, arg.attr, None) if owner is not None else None
            if inspect.ismethod(method):
                self.apply(method, [a for i, a in enumerate(args) if i != index and a is not owner], {})
                return

    def method(self, value: Track, name: str, node: ast.Call) -> Any:
        dim = self.const(node.args[0]) if node.args else None
        dim = next((self.const(k.value) for k in node.keywords if k.arg == "dim"), dim)
        along = [self.const(k.value) for k in node.keywords if k.arg == "dim"] or [
            self.const(a) for a in node.args[1:2]
        ]
        if name in ("split", "chunk") and along in ([], [0]) and not value.ops and not value.flat:
            return Pieces(value)  # along the batch dim: pieces of value's shape
        if name in RREF_CALLS and not node.args:  # `x_rref.to_here()`: the tensor the input holds
            if self.depth == 0 and not value.ops and not value.flat:
                self.rrefs.add(value.param)
            return value
        if name in DIM_METHODS and isinstance(dim, int) and dim >= 0 and not value.ops and not value.flat:
            self.least_rank[value.param] = max(self.least_rank.get(value.param, 0), dim + 1)
        if name in SIZE_KEEPING_FUNCTIONS:
            return value
        if name in ("view", "reshape"):
            return self._reshape(value, node.args, node)
        if name == "flatten":
            return Track(value.param, value.ops, flat=True)
        if name in ("transpose", "swapaxes") and len(node.args) == 2:
            return self._transposed(value, node.args[0], node.args[1])
        if name == "permute":
            order = [self.const(a) for a in node.args]
            if len(order) == 1 and isinstance(order[0], tuple | list):
                order = list(order[0])
            if all(isinstance(o, int) and o >= 0 for o in order):
                return Track(value.param, [*value.ops, tuple(order)], value.flat)
        return None

    def _transposed(self, value: Track, a: ast.expr, b: ast.expr) -> Track | None:
        first, second = self.const(a), self.const(b)
        if not (isinstance(first, int) and isinstance(second, int) and first >= 0 and second >= 0):
            return None
        order = list(range(max(first, second) + 1))
        order[first], order[second] = second, first
        return Track(value.param, [*value.ops, tuple(order)], value.flat)

    def _reshape(self, value: Track, args: list[ast.expr], node: ast.Call) -> Any:
        sizes = [self.const(a) for a in args]
        if len(sizes) == 1 and isinstance(sizes[0], tuple | list):
            sizes = list(sizes[0])
        if value.ops or value.param in self.found or not sizes:
            return None
        known = [s for s in sizes if isinstance(s, int) and s > 0]
        unknown = [s for s in sizes if not (isinstance(s, int) and s > 0)]
        if len(known) == len(sizes) - 1 and len(unknown) == 1 and unknown[0] in (-1, BATCH_MARK):
            # `input.reshape(-1, 28, 28)`: the input is the reshape's own shape, with a batch for the -1
            dims = [_batch() if not (isinstance(s, int) and s > 0) else _fixed(s) for s in sizes]
            self.found[value.param] = Found([dims], "float32", f"the reshape at line {self._line(node)}")
            return None
        if len(sizes) == 2 and sizes[0] in (-1, BATCH_MARK) and sizes[1] == -1:
            return Track(value.param, [], flat=True)  # `x.view(x.size(0), -1)`
        return None

    def _einops(self, value: Track, pattern: str, lengths: dict[str, Any], what: str) -> None:
        """An einops pattern's left side says the input's rank, and the sizes its lengths fix: `b c (h p1) (w p2)`
        with p1=p2=8 is [batch, c, 8·h, 8·w], each unknown axis free (a channel axis 3, a spatial one 4)."""
        groups = _einops_groups(pattern.split("->")[0])
        if groups is None or value.param in self.found:
            return
        dims: list[Dim] = []
        for index, names in enumerate(groups):
            if index == 0 and names in (["b"], ["batch"], ["B"]):
                dims.append(_batch())
                continue
            known = [lengths[n] for n in names if isinstance(lengths.get(n), int)]
            product = 1
            for size in known:
                product *= int(size)
            unknown = [n for n in names if not isinstance(lengths.get(n), int)]
            if not unknown:
                dims.append(_fixed(product))
            elif index == 0:
                dims.append(_batch())
            else:
                guess = 3 if unknown == ["c"] and len(names) == 1 else (4 if known else SEQUENCE)
                dims.append(_free(product * guess, f"{value.param}:{' '.join(unknown)}"))
        self._fix(value, Found([dims], "float32", f"{what}: its left side"))

    def _line(self, node: ast.AST) -> int:
        return self.first_line + node.lineno - 1  # type: ignore[attr-defined]

    def _matmul(self, left: Any, right: ast.expr) -> None:
        weight = self.const(right)
        if isinstance(left, Track) and isinstance(weight, torch.Tensor) and weight.dim() == 2:
            self._fix(left, Found(_ranked(self.rank.get(left.param), [_fixed(weight.shape[0])], [2, 3], left.param),
                                  "float32", f"x @ W: {int(weight.shape[0])} features"))  # fmt: skip
        return None

    def _functional(self, value: Track, name: str, node: ast.Call) -> None:
        weight = self.const(node.args[1])
        rank = self.rank.get(value.param)
        if name == "layer_norm":
            shape = weight if isinstance(weight, tuple | list | torch.Size) else None
            if shape and all(isinstance(s, int) for s in shape):
                tail = [_fixed(s) for s in shape]
                self._fix(value, Found(_ranked(rank, tail, [len(tail) + 2, len(tail) + 1], value.param),
                                       "float32", f"layer_norm: {tuple(shape)}"))  # fmt: skip
            return
        if not isinstance(weight, torch.Tensor):
            if name.startswith("conv"):  # a weight made in forward (`self.filt.expand(c, ...)`): the rank, still
                spatial = int(name[-2])
                dims = [_batch(), _free(3, value.param + ":c"), *[_free(SPATIAL[spatial], value.param)
                                                                   for _ in range(spatial)]]  # fmt: skip
                self._fix(value, Found([dims], "float32", f"{name}: a {spatial + 2}-D input"))
            return
        if name == "linear" and weight.dim() == 2:
            found = Found(_ranked(rank, [_fixed(weight.shape[1])], [2, 3], value.param), "float32",
                          f"linear: {int(weight.shape[1])} features")  # fmt: skip
        elif name == "embedding":
            found = Found([[_batch(), _free(SEQUENCE, value.param)]], "int64", "embedding: indices")
        else:
            spatial = int(name[-2])
            groups = next((self.const(k.value) for k in node.keywords if k.arg == "groups"), 1)
            channels = int(weight.shape[1]) * (groups if isinstance(groups, int) else 1)
            dims = [_batch(), _fixed(channels), *[_free(SPATIAL[spatial], value.param) for _ in range(spatial)]]
            found = Found([dims], "float32", f"{name}: {channels} channels")
        self._fix(value, found)

    # -- modules --

    def apply(self, module: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if inspect.ismethod(module):  # a helper method of the model: its body, with these arguments
            return self._enter(module.__self__, module, args, kwargs)  # type: ignore[arg-type]
        if not isinstance(module, nn.Module):
            return None
        first = args[0] if args else next(iter(kwargs.values()), None)
        if isinstance(module, nn.MultiheadAttention | nn.Transformer | nn.TransformerDecoderLayer):
            for value in [*args, *kwargs.values()][:3]:
                if isinstance(value, Track):
                    self._layer(module, value)
            return None
        if isinstance(module, ELEMENTWISE_MODULES):
            return first if isinstance(first, Track) else None
        held = getattr(module, "module", None)
        if type(module).__name__ == "RemoteModule" and isinstance(held, nn.Module):
            return self.apply(held, args, kwargs)  # a RemoteModule's forward is its held module's
        offsets = args[1] if len(args) > 1 else kwargs.get("offsets")
        if isinstance(module, nn.EmbeddingBag) and isinstance(first, Track) and isinstance(offsets, Track):
            # with offsets the indices are one flat run of every bag's ids, and the offsets one start per bag
            note = f"EmbeddingBag: indices below {module.num_embeddings}, one offset per bag"
            self._fix(first, Found([[_free(SEQUENCE, first.param)]], "int64", note))
            self._fix(offsets, Found([[_batch()]], "int64", note))
            return None
        if isinstance(module, nn.Flatten):
            return Track(first.param, first.ops, flat=True) if isinstance(first, Track) else None
        if isinstance(module, nn.Sequential):
            value = first
            for entry in module:
                if not isinstance(value, Track):
                    return None
                value = self.apply(entry, [value], {})
            return value
        if isinstance(first, Track) and layer_inputs(module, None, "") is not None:
            self._layer(module, first)
            return None
        pattern = getattr(module, "pattern", None)
        if isinstance(first, Track) and type(module).__module__.startswith("einops") and isinstance(pattern, str):
            lengths = getattr(module, "axes_lengths", None) or {}
            self._einops(first, pattern, dict(lengths), f"{type(module).__name__}('{pattern}')")
            return None
        forward = getattr(module, "forward", None)
        if type(module).__module__.startswith("torch.nn") or forward is None:
            return None  # a torch layer that fixes nothing we know
        return self._enter(module, forward, args, kwargs)

    def _layer(self, module: nn.Module, value: Track) -> None:
        rank = None if value.ops or value.flat else self.rank.get(value.param)
        fixed = layer_inputs(module, rank, value.param)
        if fixed is not None:
            options, dtype, note = fixed
            self._fix(value, Found(options, dtype, note))

    def _fix(self, value: Track, found: Found) -> None:
        if value.param in self.found:
            return
        if value.flat:  # what the layer fixes is the product of everything after the batch: [2, n]
            widths = [o for o in found.options if len(o) == 2]
            if not widths or found.dtype != "float32":
                return
            found = Found([widths[0]], found.dtype, f"{found.note}, flattened")
        if value.ops:
            options = [_undo(o, value.ops) for o in found.options]
            found = Found([o for o in options if o is not None], found.dtype, found.note)
            if not found.options:
                return
        self.found[value.param] = found

    def _enter(self, owner: nn.Module, fn: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if self.depth >= MAX_DEPTH or not any(isinstance(v, Track) for v in [*args, *kwargs.values()]):
            return None
        tree = _source_tree(fn)
        if tree is None:
            return None
        inner = Flow(owner, fn, tree, self.depth + 1)
        names = [a.arg for a in [*tree.args.posonlyargs, *tree.args.args]][1:]
        mapping: dict[str, Track] = {}
        for name, value in [*zip(names, args, strict=False), *kwargs.items()]:
            if isinstance(value, Track) and not value.flat:
                mapping[name] = value
        inner.env = {k: v for k, v in inner.env.items() if k in mapping}
        for name in mapping:
            inner.env[name] = Track(name)
            if mapping[name].param in self.rank and not mapping[name].ops:
                inner.rank[name] = self.rank[mapping[name].param]
        found = inner.run()
        for name, outer in mapping.items():
            if name in found:
                self._fix(outer, found[name])
            elif name in inner.rank and not outer.ops:
                self.rank.setdefault(outer.param, inner.rank[name])
        return None

    # -- constants --

    def const(self, node: ast.expr) -> Any:
        """The value of a literal size, a `self.` attribute chain or a module constant; `x.size(0)` of a
        tracked value is the batch. Anything else: None."""
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            value = self.const(node.operand)
            return -value if isinstance(value, int) else None
        if isinstance(node, ast.BinOp):
            left, right = self.const(node.left), self.const(node.right)
            if isinstance(left, int) and isinstance(right, int):
                op = INT_OPS.get(type(node.op))
                return op(left, right) if op and not (right == 0 and isinstance(node.op, ast.FloorDiv)) else None
            return None
        if isinstance(node, ast.Tuple | ast.List):
            return tuple(self.const(e) for e in node.elts)
        if isinstance(node, ast.Name):
            if node.id == self.self_name:
                return self.owner
            value = self.globals.get(node.id)
            return value if isinstance(value, int | float | tuple) else None
        if isinstance(node, ast.Attribute):
            base = self.const(node.value)
            value = getattr(base, node.attr, None) if isinstance(base, nn.Module | torch.Tensor | torch.Size) else None
            return tuple(value) if isinstance(value, torch.Size) else value
        if isinstance(node, ast.Subscript):
            if self._shape_of(node.value) is not None and self.const(node.slice) == 0:
                return BATCH_MARK  # x.shape[0]
            base, index = self.const(node.value), self.const(node.slice)
            if isinstance(base, tuple) and isinstance(index, int) and -len(base) <= index < len(base):
                return base[index]
            return None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "size":
            value = self.env.get(node.func.value.id) if isinstance(node.func.value, ast.Name) else None
            if isinstance(value, Track) and len(node.args) == 1 and self.const(node.args[0]) == 0:
                return BATCH_MARK
            base = self.const(node.func.value)
            if isinstance(base, torch.Tensor) and len(node.args) == 1:
                index = self.const(node.args[0])
                return int(base.shape[index]) if isinstance(index, int) else None
        return None


def _einops_groups(side: str) -> list[list[str]] | None:
    """`b c (h p1) (w p2)` → [["b"], ["c"], ["h", "p1"], ["w", "p2"]]; None for what a rank cannot be read from
    (an ellipsis, anonymous axes)."""
    groups: list[list[str]] = []
    current: list[str] | None = None
    for token in side.replace("(", " ( ").replace(")", " ) ").split():
        if token == "(":
            current = []
        elif token == ")":
            if current is None:
                return None
            groups.append(current)
            current = None
        elif token == "..." or not token.isidentifier():
            return None
        elif current is not None:
            current.append(token)
        else:
            groups.append([token])
    return groups if groups and current is None else None


def _undo(dims: list[Dim], ops: list[tuple[Any, ...]]) -> list[Dim] | None:
    """The dims before the transposes/permutes that turned the parameter into what the layer received."""
    out = list(dims)
    for op in reversed(ops):
        order = [int(o) for o in op]
        if len(order) > len(out):
            return None
        order += list(range(len(order), len(out)))
        before: list[Dim | None] = [None] * len(out)
        for position, source in enumerate(order):
            before[source] = out[position]
        if any(d is None for d in before):
            return None
        out = [d for d in before if d is not None]
    return out


# -- the entry point ------------------------------------------------------------------------------------


DIM_METHODS = frozenset(("cumsum", "cumprod", "sum", "mean", "softmax", "log_softmax", "argmax", "amax", "amin",
                         "logsumexp", "norm", "std", "var"))  # `x.cumsum(2)`: x has at least 3 dims  # fmt: skip
# attributes a tensor has: `x.shape` is no field of an input object (`batch.premise` is)
TENSOR_ATTRIBUTES = frozenset(("shape", "dtype", "device", "T", "mT", "H", "mH", "data", "grad", "real", "imag", "ndim",
                               "is_cuda", "is_sparse", "layout", "requires_grad", "names", "is_leaf"))  # fmt: skip
ADJACENCY = re.compile(r"^(adj|adjacency|adj_mat|adj_matrix|adj_t|a_hat|graph|laplacian)$|^adj_|_adj$")
IMAGE_SIZE_NAMES = ("img_size", "image_size", "input_size", "resolution", "img_dim")
FRAME_NAMES = ("num_frames", "frames", "n_frames", "video_frames")


def declared_image_size(
    model: nn.Module, code: str | None = None, names: tuple[str, ...] = IMAGE_SIZE_NAMES
) -> int | None:
    """The image size a model's constructor says (`CCT(img_size=224)`, a ViT's `image_size`, timm's patch
    embedding `self.img_size = (224, 224)`): what its position embeddings are sized for. From the constructor
    call the trace made (`code`), else its default, else the attribute the built model keeps. With `names`
    FRAME_NAMES: a video model's frame count (`num_frames=8`)."""
    if code:
        try:
            call = ast.parse(code, mode="eval").body
        except SyntaxError:
            call = None
        for keyword in call.keywords if isinstance(call, ast.Call) else []:
            value = keyword.value.value if isinstance(keyword.value, ast.Constant) else None
            if keyword.arg in names and isinstance(value, int) and not isinstance(value, bool):
                return value
    try:
        parameters = inspect.signature(type(model).__init__).parameters
    except (TypeError, ValueError):
        parameters = {}  # type: ignore[assignment]
    for name in names:
        default = parameters[name].default if name in parameters else None
        if isinstance(default, int) and not isinstance(default, bool) and default > 0:
            return default
    for name in names:
        value = getattr(model, name, None)
        if isinstance(value, tuple | list) and len(value) == 2 and value[0] == value[1]:
            value = value[0]
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def at_image_size(candidates: list[list[Guess]], size: int, frames: int | None = None) -> list[list[Guess]]:
    """The first candidate with its image-like inputs ([batch, channels, free, free]) at the declared size,
    and with a declared frame count its video-like ones ([batch, channels, free, free, free]: frames, then
    H = W), put first; the others as they were."""
    if not candidates:
        return candidates
    changed = False
    sized = []
    for guess in candidates[0]:
        dims = guess.dims
        image = len(dims) == 4 or (len(dims) == 5 and frames is not None)
        if image and dims[1].kind == "fixed" and all(d.kind == "free" for d in dims[2:]):
            depth = [Dim(frames, "fixed", dims[2].group)] if len(dims) == 5 and frames is not None else []
            dims = [*dims[:2], *depth, *(Dim(size, "fixed", d.group) for d in dims[-2:])]
            changed = True
            said = f"{frames} frames, " if depth else ""
            note = (
                f"{guess.note}; {said}H = W = {size}, the {'video' if depth else 'image'} size its constructor declares"
            )
            sized.append(Guess(guess.name, dims, guess.dtype, note))
        else:
            sized.append(guess)
    return [sized, *candidates] if changed else candidates


def infer(model: nn.Module) -> list[list[Guess]]:
    """Candidate input sets for `model`'s forward, the likeliest first (at most three). Raises NoInput."""
    forward = model.forward
    params = _required_params(forward)
    model_name = type(model).__name__
    if not params:
        return [[]]
    per_param: dict[str, Found] = {}
    rrefs: set[str] = set()
    if isinstance(model, nn.Sequential) or type(model).__module__.startswith("torch.nn"):
        flow = Flow(model, None, None, 0)  # a torch layer or a Sequential: the layers themselves say
        flow.apply(model, [Track(params[0])], {})
        per_param.update(flow.found)
    else:
        tree = _source_tree(forward)
        if tree is None:
            raise NoInput(f"the source of {model_name}.forward cannot be read")
        flow = Flow(model, forward, tree, 0)
        per_param.update(flow.run())
        rrefs = flow.rrefs
    nodes = [p for p in params if p in per_param and any(len(o) == 2 for o in per_param[p].options)]
    for param in params:
        if param not in per_param and nodes and ADJACENCY.search(param):
            # a graph model's adjacency matrix: nodes × nodes, the node count being the features' first dim
            dims = [_batch(), _batch()]
            per_param[param] = Found([dims], "float32", f"an adjacency matrix: nodes × nodes, as {nodes[0]} has rows")
    expanded = []
    for param in params:  # an input read only through its fields (`batch.premise`, `batch.hypothesis`): each field
        fields = sorted(k for k in per_param if k.startswith(param + ".")) if param not in per_param else []
        expanded += fields or [param]
    params = expanded
    for param in params:
        if param not in per_param:  # nothing in forward fixes it: any shape is a guess, said as such
            dims = [_batch(), _free(SEQUENCE, param)]
            per_param[param] = Found([dims], "float32", "no layer fixes its size: a guess")
    count = max(len(per_param[p].options) for p in params)
    candidates = []
    for index in range(min(count, 3)):
        guesses = []
        for param in params:
            found = per_param[param]
            dims = found.options[min(index, len(found.options) - 1)]
            note = f"{found.note}; an RRef holding it" if param in rrefs else found.note
            dims_of = [Dim(d.size, d.kind, d.group) for d in dims]
            guesses.append(Guess(param, dims_of, found.dtype, note, rref=param in rrefs))
        candidates.append(guesses)
    return candidates
