"""Layer sizes: SL101-SL105, a layer's declared size against what it received in the trace (the trace
records the mismatch, `layer_mismatch` turns it into a finding at the size argument with the traced size
as its fix). SL204 (`layer_resize.py`) is their static counterpart: a size assigned after construction.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from shapelens.analysis.rules.base import Rule
from shapelens.analysis.rules.sources import Sources
from shapelens.core.findings import Edit, Finding, Fix, Related, Severity, hint_label
from shapelens.core.source import Source, span_of
from shapelens.core.torch_facts import SIZE_POSITION
from shapelens.core.wire import Mismatch

SL101 = Rule(
    code="SL101",
    name="linear-in-features",
    severity=Severity.ERROR,
    summary=(
        "`nn.Linear(in_features, ...)` does not match the last dimension of the tensor it receives. The fix writes "
        "the traced size (as the product that produced it, e.g. `16 * 6 * 6`), or swaps in "
        "`nn.LazyLinear(out_features)`, which infers it on the first call."
    ),
    bad="""\
import torch.nn as nn


# shapelens: x=(4, 16, 6, 6)
class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16 * 5 * 5, 120)  # receives [4, 576]

    def forward(self, x):
        return self.fc(x.flatten(1))
""",
    good="""\
import torch.nn as nn


# shapelens: x=(4, 16, 6, 6)
class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16 * 6 * 6, 120)

    def forward(self, x):
        return self.fc(x.flatten(1))
""",
    fix="Replace `in_features` with the traced size",
    fix_safe=True,
    complete=True,
)
SL102 = Rule(
    code="SL102",
    name="conv-in-channels",
    severity=Severity.ERROR,
    summary=("`nn.Conv1d/2d/3d(in_channels, ...)` does not match the channel dimension (dim 1) of its input."),
    bad="""\
import torch.nn as nn


# shapelens: x=(8, 3, 32, 32)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)  # receives [8, 16, 30, 30]

    def forward(self, x):
        return self.conv2(self.conv1(x))
""",
    good="""\
import torch.nn as nn


# shapelens: x=(8, 3, 32, 32)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3)
        self.conv2 = nn.Conv2d(16, 64, 3)

    def forward(self, x):
        return self.conv2(self.conv1(x))
""",
    fix="Replace `in_channels` with the traced channel count",
    fix_safe=True,
    complete=True,
)
SL103 = Rule(
    code="SL103",
    name="norm-features",
    severity=Severity.ERROR,
    summary=(
        "`nn.BatchNorm*(num_features)` does not match the channel dimension of its input, or "
        "`nn.LayerNorm(normalized_shape)` does not match its trailing dimensions."
    ),
    bad="""\
import torch.nn as nn


# shapelens: x=(8, 3, 32, 32)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3)
        self.bn = nn.BatchNorm2d(32)  # receives [8, 16, 30, 30]

    def forward(self, x):
        return self.bn(self.conv(x))
""",
    good="""\
import torch.nn as nn


# shapelens: x=(8, 3, 32, 32)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3)
        self.bn = nn.BatchNorm2d(16)

    def forward(self, x):
        return self.bn(self.conv(x))
""",
    fix="Replace the size with the traced one",
    fix_safe=True,
    complete=True,
)
SL104 = Rule(
    code="SL104",
    name="rnn-input-size",
    severity=Severity.ERROR,
    summary=(
        "`nn.RNN/LSTM/GRU(input_size, ...)` does not match the feature dimension (the last) of its input. A common "
        "cause: feeding the whole `(output, (h_n, c_n))` tuple, or the wrong element of it."
    ),
    bad="""\
import torch.nn as nn


# shapelens: x=(5, 20, 32)
class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm1 = nn.LSTM(32, 64, bidirectional=True)
        self.lstm2 = nn.LSTM(64, 32)  # receives [5, 20, 128] from the bidirectional LSTM

    def forward(self, x):
        out, _ = self.lstm1(x)
        out, _ = self.lstm2(out)
        return out
""",
    good="""\
import torch.nn as nn


# shapelens: x=(5, 20, 32)
class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm1 = nn.LSTM(32, 64, bidirectional=True)
        self.lstm2 = nn.LSTM(128, 32)

    def forward(self, x):
        out, _ = self.lstm1(x)
        out, _ = self.lstm2(out)
        return out
""",
    fix="Replace `input_size` with the traced feature size",
    fix_safe=True,
    complete=True,
)
SL105 = Rule(
    code="SL105",
    name="embedding-indices",
    severity=Severity.ERROR,
    summary=("`nn.Embedding` received a floating-point tensor; it needs integer (int64/int32) indices."),
    bad="""\
import torch.nn as nn


# shapelens: ids=(2, 16)
class Embed(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(1000, 64)

    def forward(self, ids):
        return self.embed(ids)  # ids: float32
""",
    good="""\
import torch.nn as nn


# shapelens: ids=int64(2, 16)
class Embed(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(1000, 64)

    def forward(self, ids):
        return self.embed(ids)
""",
    complete=True,
)

# what the registry (`rules/__init__.py`) collects from this family
RULES = (SL101, SL102, SL103, SL104, SL105)
MISMATCH_RULES = {r.code: r for r in (SL101, SL102, SL103, SL104, SL105)}

DESCRIBE: dict[str, Callable[[Mismatch], str]] = {
    "SL101": lambda m: f"its input's last dimension is {m.actual}",
    "SL102": lambda m: f"its input has {m.actual} channels",
    "SL103": lambda m: f"its input has {m.actual} there",
    "SL104": lambda m: f"its input's feature size (last dimension) is {m.actual}",
    "SL105": lambda m: f"it received {m.actual} values, not integer indices",
}


def layer_mismatch(m: Mismatch, sources: Sources) -> Finding | None:
    """SL101-SL105 from a mismatch the trace recorded: at the size argument, with the traced size as fix."""
    site = m.site
    if site is None:
        return None
    call = sources.call_at(site, m.layer)
    source = sources.get(site.path)
    if call is None or source is None:
        return None
    arg = _argument(call, m.attr) if m.code != "SL105" else None
    span = span_of(site.path, arg if arg is not None else call)
    shape = hint_label(tuple(m.input_shape), "float32")
    declared = m.declared
    message = f"{m.layer}({m.attr}={declared}) receives {shape}: {DESCRIBE[m.code](m)}" + (
        f", so {m.attr} should be {_product(m.factors, m.actual)}" if arg is not None else ""
    )
    layout = _layout(m)
    if layout:  # the layer is right and its input is laid out wrong: changing the size would be a wrong fix
        message += f" — {layout}"
    if m.symbolic:  # the symbolic pass's account (#13): which input sizes the declared one fits
        message += f" — {m.symbolic}"
    related: tuple[Related, ...] = ()
    if m.where:
        path, line = m.where
        related = (Related(sources.line_span(path, line), f"{m.layer} meets its input here: {shape}"),)
    fixes: list[Fix] = []
    if arg is not None:
        actual = m.actual
        if isinstance(actual, list):  # LayerNorm: keep an int where one was written
            actual = actual[0] if len(actual) == 1 and not isinstance(arg, ast.Tuple | ast.List) else tuple(actual)
        new_text = _product(m.factors, actual) if isinstance(actual, int) else str(actual)
        safe = MISMATCH_RULES[m.code].fix_safe and not layout
        fixes.append(Fix(f"Set {m.attr} to {new_text}", (Edit(span, new_text),), safe))
        if m.code == "SL101" and isinstance(call.func, ast.Attribute | ast.Name):
            fixes.append(_lazy_linear(call, source))
    return MISMATCH_RULES[m.code].finding(span, message, tuple(fixes), related)


def _layout(m: Mismatch) -> str | None:
    """The two input layouts users most often get wrong, where the layer's own size is right: images kept
    channels-last (`torch.from_numpy` of [N, H, W, C]) and a single sample without its batch dimension
    (`flatten(x, 1)` of [C, H, W] keeps C apart: [C, H·W] where the layer wants C·H·W features)."""
    shape = [d for d in m.input_shape if isinstance(d, int)]
    if len(shape) != len(m.input_shape) or not isinstance(m.declared, int):
        return None
    if m.code == "SL102" and len(shape) >= 3 and shape[-1] == m.declared != shape[1]:
        order = ", ".join(map(str, (0, len(shape) - 1, *range(1, len(shape) - 1))))
        return f"its last dimension is {m.declared}: channels-last data? `.permute({order})` puts the channels first"
    if m.code == "SL101" and len(shape) == 2 and shape[0] > 1 and shape[0] * shape[1] == m.declared:
        return f"{shape[0]}·{shape[1]} = {m.declared}: one sample without its batch dimension? `.unsqueeze(0)` adds it"
    return None


def _lazy_linear(call: ast.Call, source: Source) -> Fix:
    """`nn.Linear(400, 120, bias=False)` → `nn.LazyLinear(120, bias=False)`: the size is inferred on first use."""
    func = source.segment(call.func)
    head = func.rpartition(".")[0]
    rest = [source.segment(a) for a in call.args[1:]] + [
        source.segment(k) for k in call.keywords if k.arg != "in_features"
    ]
    text = f"{head + '.' if head else ''}LazyLinear({', '.join(rest)})"
    return Fix(f"Use {text}", (Edit(span_of(source.path, call), text),), safe=False)


def _product(factors: list[int] | None, value: int) -> str:
    return " * ".join(str(f) for f in factors) if factors and len(factors) > 1 else str(value)


def _argument(call: ast.Call, attr: str) -> ast.expr | None:
    """The constructor argument that holds the size `attr`, by keyword or by its position."""
    index = SIZE_POSITION.get(attr, 0)
    for kw in call.keywords:
        if kw.arg == attr:
            return kw.value
    return call.args[index] if len(call.args) > index else None
