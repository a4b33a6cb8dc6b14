"""What Shapelens knows about PyTorch, in one table: the layers and their size arguments, the activations,
the dropouts, and which base classes make a class an `nn.Module`.

Names are canonical (`torch.nn.Dropout`, `torch.nn.functional.gelu`: see `analysis/names.py`), so a table
never depends on how a file spells its imports. Plain data, no torch: the static rules (editor process),
the trace (worker process) and the LSP's hovers all read it from here, and a fact is written once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# -- activations ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Activation:
    """An element-wise activation, and whether dropout right before it gives the same output as after it.

    Inverted dropout multiplies by m / (1 - p) with a 0/1 mask m, so act(dropout(x)) == dropout(act(x))
    for every mask iff act(0) == 0 (dropped units agree) and act(c * x) == c * act(x) for c > 0 (kept units
    agree): ReLU, LeakyReLU, PReLU and RReLU, whose slopes only scale. A clamp (ReLU6, Hardtanh) or any
    curvature breaks the second condition; Sigmoid, Softplus, ... break the first as well.
    tests/rules/test_dropout.py checks each `identical` flag numerically with torch.
    """

    label: str  # the module class in torch.nn
    identical: bool
    at_zero: str  # act(0), as the message shows it
    functions: tuple[str, ...]  # canonical names of the functional forms
    methods: tuple[str, ...] = ()  # Tensor methods (`x.relu()`)
    why: str = ""  # why it is not identical when act(0) == 0 (default: "<label> is not linear")
    note: str = ""  # appended to the identical-case message


def _act(
    label: str,
    identical: bool,
    at_zero: str,
    functional: tuple[str, ...],
    torch_fns: tuple[str, ...] = (),
    methods: tuple[str, ...] = (),
    why: str = "",
    note: str = "",
) -> Activation:
    functions = (*(f"torch.nn.functional.{f}" for f in functional), *(f"torch.{f}" for f in torch_fns))
    return Activation(label, identical, at_zero, functions, methods, why, note)


ACTIVATIONS: tuple[Activation, ...] = (
    _act("ReLU", True, "0", ("relu", "relu_"), ("relu", "relu_"), ("relu", "relu_")),
    _act("LeakyReLU", True, "0", ("leaky_relu", "leaky_relu_")),
    _act("PReLU", True, "0", ("prelu",), ("prelu",)),
    _act(
        "RReLU",
        True,
        "0",
        ("rrelu", "rrelu_"),
        ("rrelu", "rrelu_"),
        note="; in training its random slopes scale the same way, so the outputs have the same distribution",
    ),
    _act("ReLU6", False, "0", ("relu6",), why="ReLU6 clips at 6"),
    _act("Hardtanh", False, "0", ("hardtanh", "hardtanh_"), why="Hardtanh clips at its bounds"),
    _act("GELU", False, "0", ("gelu",)),
    _act("Tanh", False, "0", ("tanh",), ("tanh", "tanh_"), ("tanh", "tanh_")),
    _act("SiLU", False, "0", ("silu",)),
    _act("Mish", False, "0", ("mish",)),
    _act("ELU", False, "0", ("elu", "elu_")),
    _act("SELU", False, "0", ("selu", "selu_"), ("selu", "selu_")),
    _act("CELU", False, "0", ("celu", "celu_"), ("celu", "celu_")),
    _act("Hardswish", False, "0", ("hardswish",)),
    _act("Softsign", False, "0", ("softsign",)),
    _act("Tanhshrink", False, "0", ("tanhshrink",)),
    _act("Hardshrink", False, "0", ("hardshrink",), why="Hardshrink zeroes inputs below a threshold"),
    _act("Softshrink", False, "0", ("softshrink",), why="Softshrink shifts by a threshold"),
    _act("Sigmoid", False, "0.5", ("sigmoid",), ("sigmoid", "sigmoid_"), ("sigmoid", "sigmoid_")),
    _act("Hardsigmoid", False, "0.5", ("hardsigmoid",)),
    _act("Softplus", False, "log 2 ≈ 0.69", ("softplus",)),
    _act("LogSigmoid", False, "-log 2 ≈ -0.69", ("logsigmoid",)),
)

ACTIVATION_CLASSES = {f"torch.nn.{a.label}": a for a in ACTIVATIONS}
ACTIVATION_FUNCTIONS = {name: a for a in ACTIVATIONS for name in a.functions}
ACTIVATION_METHODS = {method: a for a in ACTIVATIONS for method in a.methods}
SELU = {
    "torch.nn.SELU",
    "torch.nn.functional.selu",
    "torch.nn.functional.selu_",
    "torch.selu",
    "torch.selu_",
}
SELU_LAST = frozenset(name.rpartition(".")[2] for name in SELU)  # cheap pre-test before resolving


# -- dropouts ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dropout:
    """A dropout module class or function. `training` is the keyword (and its position) of the functional
    forms' train flag, `default` what they do without it (None: the argument is required). `channel_dims`:
    Dropout1d/2d/3d zero whole channels of an input with that many spatial dimensions after (N, C)."""

    label: str
    alpha: bool  # alpha dropout: dropped units become a negative constant, not 0 (no identity with ReLU)
    functional: bool
    training: str = ""
    position: int = 2
    default: bool | None = None
    channel_dims: int = 0


def _dropouts() -> dict[str, Dropout]:
    table: dict[str, Dropout] = {}
    for label in ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"):
        dims = int(label[-2]) if label[-1] == "d" else 0
        table[f"torch.nn.{label}"] = Dropout(label, "Alpha" in label, functional=False, channel_dims=dims)
    for fn in ("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"):
        alpha = "alpha" in fn
        # F.alpha_dropout and F.feature_alpha_dropout default to training=False, the others to True
        table[f"torch.nn.functional.{fn}"] = Dropout(f"F.{fn}", alpha, True, "training", 2, not alpha)
    for fn in ("dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout"):
        for name in (fn, f"{fn}_"):
            table[f"torch.{name}"] = Dropout(f"torch.{name}", "alpha" in fn, True, "train", 2, None)
    return table


DROPOUTS: dict[str, Dropout] = _dropouts()
# the dropout layers by class name (`Dropout2d`), as a trace reports a layer's type
DROPOUT_LAYERS: dict[str, Dropout] = {d.label: d for d in DROPOUTS.values() if not d.functional}


# -- layers and their size arguments ------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """A layer whose size attributes are read once, at construction, to build its `weight`.

    `shape` spells the weight's shape with the constructor's parameter names: `4 * hidden_size` is a
    product, `in_channels/groups` is divided by `groups` when that argument is given, and `kernel` adds
    the kernel's dimensions (`n` of them, for an `n`-d convolution).
    """

    params: tuple[str, ...]  # constructor parameters, in positional order
    weight: str
    shape: tuple[str, ...]
    kernel: int = 0
    lazy: dict[str, str] = field(default_factory=dict)  # attribute -> the Lazy* class that infers it


def _layers() -> dict[str, Layer]:
    table: dict[str, Layer] = {
        "torch.nn.Linear": Layer(
            ("in_features", "out_features"), "weight", ("out_features", "in_features"),
            lazy={"in_features": "nn.LazyLinear"},
        ),
        "torch.nn.LayerNorm": Layer(("normalized_shape",), "weight", ("normalized_shape",)),
        "torch.nn.GroupNorm": Layer(("num_groups", "num_channels"), "weight", ("num_channels",)),
    }  # fmt: skip
    for n in (1, 2, 3):
        conv = ("in_channels", "out_channels", "kernel_size")
        table[f"torch.nn.Conv{n}d"] = Layer(
            conv, "weight", ("out_channels", "in_channels/groups"), n, {"in_channels": f"nn.LazyConv{n}d"}
        )
        table[f"torch.nn.ConvTranspose{n}d"] = Layer(
            conv, "weight", ("in_channels", "out_channels/groups"), n,
            {"in_channels": f"nn.LazyConvTranspose{n}d"},
        )  # fmt: skip
        for norm in ("BatchNorm", "InstanceNorm"):
            table[f"torch.nn.{norm}{n}d"] = Layer(
                ("num_features",), "running statistics and affine weight", ("num_features",),
                lazy={"num_features": f"nn.Lazy{norm}{n}d"},
            )  # fmt: skip
    for name in ("Embedding", "EmbeddingBag"):
        table[f"torch.nn.{name}"] = Layer(
            ("num_embeddings", "embedding_dim"), "weight", ("num_embeddings", "embedding_dim")
        )
    for name, gates in (("RNN", ""), ("LSTM", "4 * "), ("GRU", "3 * ")):
        for suffix, weight in (("", "weight_ih_l0"), ("Cell", "weight_ih")):
            table[f"torch.nn.{name}{suffix}"] = Layer(
                ("input_size", "hidden_size"), weight, (f"{gates}hidden_size", "input_size")
            )
    return table


LAYERS: dict[str, Layer] = _layers()
# where each size parameter sits in its constructor's positional arguments (one place for all layers: a
# name has the same position in every layer that takes it, `num_channels` is GroupNorm's second)
SIZE_POSITION: dict[str, int] = {p: i for layer in LAYERS.values() for i, p in enumerate(layer.params)}

# base classes that make a class an nn.Module: any torch.nn class but the non-module ones
MODULE_BASE = re.compile(r"^torch\.nn\.(?!Parameter$|UninitializedParameter$|Buffer$)[A-Z]\w*$")
OTHER_MODULE_BASES = frozenset(
    {
        "pytorch_lightning.LightningModule",
        "lightning.LightningModule",
        "lightning.pytorch.LightningModule",
        "transformers.PreTrainedModel",
    }
)
