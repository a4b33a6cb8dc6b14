"""SL204 runtime-layer-resize: assigning a layer's size attribute after construction (`fc.in_features = n`)
changes an attribute, not the weight built from it. Static: it reads the file only.

It sits beside `layer_sizes.py` (SL101-SL105) rather than in the dropout module its code number is next
to: it checks the same thing, a layer's size parameters and the weight built from them
(`core/torch_facts.LAYERS`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from shapelens.analysis.names import statements
from shapelens.analysis.rules.base import Rule, StaticCheck
from shapelens.analysis.rules.resolution import Def, FileModel, Scope
from shapelens.core.findings import Related, Severity
from shapelens.core.torch_facts import LAYERS, Layer

SL204 = Rule(
    code="SL204",
    name="runtime-layer-resize",
    severity=Severity.WARNING,
    summary=(
        "Assigning `layer.in_features`/`out_features` (or `in_channels`, ...) after construction only changes an "
        "attribute: the weight keeps its shape, so the layer still expects the old size."
    ),
    bad="self.fc.in_features = x.shape[1]\n",
    good="self.fc = nn.LazyLinear(120)  # or compute the size once in __init__\n",
    needs_trace=False,
)

RULES = (SL204,)  # what the registry (`rules/__init__.py`) collects from this family

# what a layer keeps doing after its size attribute is reassigned ({} is the value it was built with)
_EFFECT = {
    "in_features": "expects inputs whose last dimension is {}",
    "out_features": "produces {} output features",
    "in_channels": "expects inputs with {} channels (dimension 1)",
    "out_channels": "produces {} output channels",
    "num_features": "normalises {} channels",
    "normalized_shape": "normalises trailing dimensions of size {}",
    "num_embeddings": "holds {} embeddings (indices must stay below that)",
    "embedding_dim": "returns vectors of size {}",
    "input_size": "expects {} input features",
    "hidden_size": "has hidden size {}",
}
SIZE_ATTRIBUTES = frozenset(_EFFECT)
# On an object we cannot identify, only these names are flagged: in practice they are layer sizes, while
# `hidden_size`, `input_size`, `num_features` are config fields (a HF config's `hidden_size`) as often.
_LAYER_ONLY = frozenset({"in_features", "out_features", "in_channels", "out_channels", "num_embeddings"})
_CONFIG_LIKE = re.compile(r"(?i)^(.*conf.*|.*cfg.*|args|opts?|options|h?params|hp|settings|kwargs|spec)$")


class LayerResizeCheck(StaticCheck):
    """SL204, at each assignment to a size attribute (`fc.in_features = ...`)."""

    def __init__(self, model: FileModel) -> None:
        super().__init__(model)
        self._weights: dict[ast.AST, set[str]] = {}

    def assignment(self, node: ast.Assign | ast.AugAssign | ast.AnnAssign, scope: Scope) -> None:
        if isinstance(node, ast.AnnAssign) and node.value is None:
            return
        for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
            for attribute in _attributes_in_target(target):
                if attribute.attr in SIZE_ATTRIBUTES:
                    self._resize(attribute, scope)

    def _resize(self, target: ast.Attribute, scope: Scope) -> None:
        owner = target.value
        if isinstance(owner, ast.Name) and owner.id in {"self", "cls", scope.self_name}:
            return  # a module keeping its own configuration (`self.in_features = in_features`)
        if ast.dump(owner) in self._weights_replaced(scope):
            return  # the weight is replaced too (`emb.weight = new.weight`): the attribute is kept in sync
        cls_name = self.model.instance_of(owner, scope)
        layer = LAYERS.get(cls_name) if cls_name is not None else None
        if layer is not None and cls_name is not None:
            if target.attr in layer.params:
                self._resize_layer(target, cls_name, layer, self.model.constructor(owner, scope))
            return
        if cls_name is not None or target.attr not in _LAYER_ONLY:
            return  # a known object that is not a layer (a config, a project class)
        chain = _chain(owner)
        if chain is None or len(chain) < 2 or any(_CONFIG_LIKE.match(part) for part in chain):
            return
        if chain[0] in {"self", scope.self_name} and len(chain) < 3:
            return  # `self.head.in_features`: flagged above when `self.head` is known to be a layer
        message = (
            f"Assigning `{self.model.text(target)}` only changes an attribute: a layer's weight keeps the shape it "
            f"was built with, so the layer is not resized; assign a new layer instead "
            f"(`{self.model.text(owner)} = nn.Linear(...)`)"
        )
        self.findings.append(SL204.finding(self.model.source.span(target), message))

    def _weights_replaced(self, scope: Scope) -> set[str]:
        """The objects (as `ast.dump`s) whose `.weight` the enclosing function (or module) assigns."""
        owner: ast.AST = scope.function if isinstance(scope.function, Def) else self.model.source.tree
        found = self._weights.get(owner)
        if found is None:
            found = set()
            for stmt in statements(owner):
                if isinstance(stmt, ast.Assign):
                    for target in stmt.targets:
                        if isinstance(target, ast.Attribute) and target.attr == "weight":
                            found.add(ast.dump(target.value))
            self._weights[owner] = found
        return found

    def _resize_layer(self, target: ast.Attribute, cls_name: str, layer: Layer, built: ast.Call | None) -> None:
        values = _arguments(built, layer.params) if built is not None else {}
        groups = next((ast.unparse(k.value) for k in built.keywords if k.arg == "groups"), None) if built else None
        dims = [_render_dim(dim, values, groups) for dim in layer.shape]
        if layer.kernel:
            kernel = values.get("kernel_size", "kernel_size")
            dims.append(_kernel_dims(kernel, layer.kernel))
        lazy = layer.lazy.get(target.attr)
        advice = "build it with the right size in `__init__`" + (
            f", or use `{lazy}`, which infers it on the first call" if lazy else ""
        )
        verb = "keeps" if layer.weight.startswith("weight") else "keep"
        message = (
            f"Assigning `{self.model.text(target)}` does not resize the {cls_name.removeprefix('torch.')}: its "
            f"{layer.weight} {verb} the shape [{', '.join(dims)}] it was built with, so it still "
            f"{_EFFECT[target.attr].format(values.get(target.attr, target.attr))}; {advice}"
        )
        related = (Related(self.model.source.span(built), "the layer is built here"),) if built is not None else ()
        self.findings.append(SL204.finding(self.model.source.span(target), message, related=related))


# -- small AST helpers ----------------------------------------------------------------------------------


# -- small AST helpers ----------------------------------------------------------------------------------


def _attributes_in_target(target: ast.AST) -> Iterator[ast.Attribute]:
    if isinstance(target, ast.Attribute):
        yield target
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _attributes_in_target(element)
    elif isinstance(target, ast.Starred):
        yield from _attributes_in_target(target.value)


def _chain(node: ast.expr) -> list[str] | None:
    """`model.fc` -> ["model", "fc"]; `net.classifier[6]` -> ["net", "classifier"]; None otherwise."""
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Name):
            parts.append(node.id)
            return parts[::-1]
        else:
            return None


def _arguments(call: ast.Call, params: tuple[str, ...]) -> dict[str, str]:
    """The constructor's arguments as written (`nn.Linear(16 * 5 * 5, 120)` -> in_features: `16 * 5 * 5`)."""
    found: dict[str, str] = {}
    for param, arg in zip(params, call.args, strict=False):
        if isinstance(arg, ast.Starred):
            break
        found[param] = ast.unparse(arg)
    for keyword in call.keywords:
        if keyword.arg in params:
            found[keyword.arg] = ast.unparse(keyword.value)
    return found


def _render_dim(dim: str, values: dict[str, str], groups: str | None) -> str:
    """One weight dimension with the built value (`4 * hidden_size` -> `4 * 32`, `in_channels/groups`)."""
    name, _, per_group = dim.partition("/")
    prefix, _, param = name.rpartition(" ")
    text = values.get(param, param)
    if per_group and groups is not None:
        text = f"{text} / {groups}"
    return f"{prefix} {text}" if prefix else text


def _kernel_dims(kernel: str, n: int) -> str:
    """The kernel's dimensions: `3` for a 2-d conv is `3, 3`; `(3, 5)` is `3, 5`; else `*kernel_size`."""
    try:
        value = ast.literal_eval(kernel)
    except (ValueError, SyntaxError):
        return f"*{kernel}"
    if isinstance(value, int):
        return ", ".join([str(value)] * n)
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value)
    return f"*{kernel}"


CHECKS: tuple[type[StaticCheck], ...] = (LayerResizeCheck,)  # fed by the one walk (`walk.py`)
