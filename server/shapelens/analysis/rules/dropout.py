"""SL201 dropout-before-activation and SL203 dropout-variant-misuse: where a dropout sits and which one.

SL201 and SL203's alpha-dropout half read the AST only (a `StaticCheck` each, fed by the one walk); SL203's
Dropout2d/3d half needs the shapes a trace recorded (`spatial_dropout`). What they know about PyTorch's
dropouts and activations is `core/torch_facts.py`.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from shapelens.analysis.rules.base import Rule, StaticCheck
from shapelens.analysis.rules.resolution import FileModel, Function, Scope
from shapelens.analysis.rules.sources import Sources
from shapelens.analysis.rules.train_eval import training_arg
from shapelens.core.findings import Edit, Finding, Fix, LayerInfo, Severity, Span, hint_label
from shapelens.core.torch_facts import (
    ACTIVATION_CLASSES,
    ACTIVATION_FUNCTIONS,
    ACTIVATION_METHODS,
    DROPOUT_LAYERS,
    DROPOUTS,
    SELU,
    SELU_LAST,
    Activation,
    Dropout,
)

SL201 = Rule(
    code="SL201",
    name="dropout-before-activation",
    severity=Severity.WARNING,
    summary=(
        "Dropout is applied right before an activation. Before GELU, Tanh, Sigmoid, SiLU, ELU and the like this "
        "changes the result (dropped pre-activations become act(0), which is not 0 for all of them, and survivors "
        "are scaled before a non-linear function). Before ReLU, LeakyReLU, PReLU and RReLU the outputs are identical "
        "(act(0) = 0 and positive scaling commutes with act, so the same mask gives the same result), so it is "
        "reported as information only: a matter of convention, never an error. ReLU6 and Hardtanh are not in that "
        "group (their clamp does not commute with the 1/(1-p) scaling), and neither is any activation after "
        "AlphaDropout (it does not zero units). Found in `nn.Sequential(...)`, in consecutive statements (`x = "
        "self.drop(x)` then `x = self.act(x)`) and in nested calls (`F.gelu(F.dropout(x, ...))`). Dropout never "
        "changes a shape."
    ),
    bad="nn.Sequential(nn.Linear(64, 64), nn.Dropout(0.1), nn.GELU())\n",
    good="nn.Sequential(nn.Linear(64, 64), nn.GELU(), nn.Dropout(0.1))\n",
    fix="Swap the dropout and the activation",
    needs_trace=False,
)

SL203 = Rule(
    code="SL203",
    name="dropout-variant-misuse",
    severity=Severity.WARNING,
    summary=(
        "`nn.Dropout2d/3d` zeroes whole channels of a `(N, C, H, W)`/`(N, C, D, H, W)` tensor; on a tensor without "
        "those spatial dimensions it does not do what it says. `nn.AlphaDropout` keeps the self-normalising property "
        "of SELU networks only; without SELU use `nn.Dropout`."
    ),
    bad="""\
import torch.nn as nn


# shapelens: x=(32, 128)
class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout2d(0.2)  # receives [32, 128]
        self.alpha = nn.AlphaDropout(0.2)  # no SELU in the model

    def forward(self, x):
        return self.alpha(self.drop(x))
""",
    good="""\
import torch.nn as nn


# shapelens: x=(32, 128)
class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.selu = nn.SELU()
        self.alpha = nn.AlphaDropout(0.2)  # in a SELU network
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        x = self.alpha(self.selu(x))
        return self.drop(x)
""",
    fix="Use `nn.Dropout`",
    complete=True,
)

# what the registry (`rules/__init__.py`) collects from this family
RULES = (SL201, SL203)

# the rank a channel-wise dropout is meant for (batched): Dropout2d 4, Dropout3d 5. Dropout1d is left out:
# a 2-D input is its valid unbatched (C, L) form
SPATIAL_RANK = {d.label: d.channel_dims + 2 for d in DROPOUT_LAYERS.values() if d.channel_dims >= 2}
_FILE = ast.Module(body=[], type_ignores=[])  # SL203's scope key for module-level code
# expressions that need no parentheses as a method's receiver
_ATOMIC = (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant, ast.List, ast.Tuple, ast.Dict)


@dataclass(frozen=True)
class Op:
    """A call that applies a dropout or an activation to one tensor."""

    call: ast.Call
    input: ast.expr  # the tensor it is applied to
    receiver: bool  # the input is the method's receiver (`x.relu()`), not the first argument
    dropout: Dropout | None = None
    activation: Activation | None = None


class DropoutOrderCheck(StaticCheck):
    """SL201: a dropout applied right before an activation, in nested calls (`F.gelu(F.dropout(x))`),
    in `nn.Sequential(...)` and in consecutive statements."""

    def __init__(self, model: FileModel) -> None:
        super().__init__(model)
        self._ops: dict[ast.Call, Op | None] = {}

    def with_input(self, op: Op, new_input: str, atomic: bool) -> str:
        """The op's call text with its tensor replaced by `new_input` (the other arguments kept)."""
        begin, end = self.model.offsets(op.call)
        in_begin, in_end = self.model.offsets(op.input)
        if op.receiver and not atomic:
            new_input = f"({new_input})"
        whole = self.model.source.text
        return whole[begin:in_begin] + new_input + whole[in_end:end]

    def op_of(self, call: ast.Call, scope: Scope) -> Op | None:
        """The dropout or activation `call` applies, if it is one: a function (`F.gelu(x)`), a Tensor method
        (`x.relu()`) or a module (`self.act(x)`, `nn.GELU()(x)`). Asked twice for most calls (as a
        statement's value, then as a call): remembered per node."""
        if call not in self._ops:
            self._ops[call] = self._op_of(call, scope)
        return self._ops[call]

    def _op_of(self, call: ast.Call, scope: Scope) -> Op | None:
        func = call.func
        name = self.model.resolve(func)
        first = call.args[0] if call.args and not isinstance(call.args[0], ast.Starred) else None
        if name is not None:
            if first is None:
                return None
            drop = DROPOUTS.get(name)
            if drop is not None and drop.functional:
                return Op(call, first, False, dropout=drop) if self._drops(call, drop) else None
            if name in ACTIVATION_FUNCTIONS:
                return Op(call, first, False, activation=ACTIVATION_FUNCTIONS[name])
            return None
        if (
            isinstance(func, ast.Attribute)
            and func.attr in ACTIVATION_METHODS
            and not call.args
            and not call.keywords
            and self.model.resolve(func.value) is None  # `x.relu()`, not `torch.relu()`
        ):
            return Op(call, func.value, True, activation=ACTIVATION_METHODS[func.attr])
        if first is None or len(call.args) != 1 or call.keywords:
            return None
        cls = self.model.instance_of(func, scope)
        drop = DROPOUTS.get(cls) if cls is not None else None
        if drop is not None and not drop.functional:
            return Op(call, first, False, dropout=drop)
        if cls in ACTIVATION_CLASSES:
            return Op(call, first, False, activation=ACTIVATION_CLASSES[cls])
        return None

    def _drops(self, call: ast.Call, drop: Dropout) -> bool:
        """Whether a functional dropout can drop at all (not `training=False`, not alpha's default)."""
        value = training_arg(call, drop)
        if value is None:
            return drop.default is not False
        return not (isinstance(value, ast.Constant) and value.value is False)

    def call(self, call: ast.Call, callee: str | None, scope: Scope) -> None:
        if callee == "torch.nn.Sequential":
            self._sequential(call, scope)
        outer = self.op_of(call, scope)
        if outer is not None and outer.activation is not None and isinstance(outer.input, ast.Call):
            inner = self.op_of(outer.input, scope)
            if inner is not None and inner.dropout is not None:
                # act(drop(x)) -> drop(act(x))
                applied = self.with_input(outer, self.model.text(inner.input), isinstance(inner.input, _ATOMIC))
                edit = Edit(self.model.source.span(call), self.with_input(inner, applied, True))
                self._dropout_before(inner.call, inner.dropout, outer.activation, [edit])

    def _sequential(self, call: ast.Call, scope: Scope) -> None:
        """nn.Sequential(..., nn.Dropout(p), nn.GELU(), ...), also with an OrderedDict of named entries."""
        entries: list[tuple[ast.AST, ast.expr | None]] = [
            (a, None if isinstance(a, ast.Starred) else a) for a in call.args
        ]
        inner = call.args[0] if len(call.args) == 1 else None
        if isinstance(inner, ast.Call) and self.model.resolve(inner.func) in (
            "collections.OrderedDict",
            "typing.OrderedDict",
        ):
            entries = _ordered_dict_entries(inner)
        for (first_node, first), (second_node, second) in itertools.pairwise(entries):
            if first is None or second is None:
                continue  # `*layers` between them: not adjacent as far as we can tell
            drop_cls = self.model.instance_of(first, scope)
            drop = DROPOUTS.get(drop_cls) if drop_cls is not None else None
            act_cls = self.model.instance_of(second, scope)
            if drop is None or drop.functional or act_cls not in ACTIVATION_CLASSES:
                continue
            edits = [
                Edit(self.model.source.span(first_node), self.model.text(second_node)),
                Edit(self.model.source.span(second_node), self.model.text(first_node)),
            ]
            self._dropout_before(first_node, drop, ACTIVATION_CLASSES[act_cls], edits)

    def block(self, block: list[ast.stmt], scope: Scope) -> None:
        """`h = drop(x)` directly followed by a statement that applies an activation to `h`."""
        for index, (first, second) in enumerate(itertools.pairwise(block)):
            if not isinstance(first, ast.Assign | ast.AnnAssign) or not isinstance(first.value, ast.Call):
                continue
            target = _single_name_target(first)
            drop = self.op_of(first.value, scope) if target is not None else None
            if target is None or drop is None or drop.dropout is None:
                continue
            for node in _walk_no_functions(second):
                act = self.op_of(node, scope) if isinstance(node, ast.Call) else None
                if act is None or act.activation is None:
                    continue
                if not (isinstance(act.input, ast.Name) and act.input.id == target):
                    continue
                edits: list[Edit] = []
                if _swappable(target, second, block[index + 2 :]):
                    atomic = isinstance(drop.input, _ATOMIC)
                    edits = [
                        Edit(
                            self.model.source.span(first.value),
                            self.with_input(act, self.model.text(drop.input), atomic),
                        ),
                        Edit(self.model.source.span(act.call), self.with_input(drop, target, True)),
                    ]
                self._dropout_before(first.value, drop.dropout, act.activation, edits)
                break

    def _dropout_before(self, node: ast.AST, drop: Dropout, act: Activation, edits: list[Edit]) -> None:
        """SL201, with the message that says which case applies: identical (information) or not."""
        severity = SL201.severity
        if drop.alpha:
            message = (
                f"{drop.label} is applied before {act.label}: alpha dropout does not zero units, it sets "
                f"them to SELU's negative saturation value (about -1.76) and applies an affine correction "
                f"meant for SELU's output, so before {act.label} it changes the result; put the dropout "
                f"after the activation"
            )
        elif act.identical:
            message = (
                f"{drop.label} is applied before {act.label}: the outputs are identical to dropout after it "
                f"({act.label}(0) = 0 and {act.label}(c·x) = c·{act.label}(x) for c > 0, so the same mask "
                f"gives the same result){act.note}; the order is a matter of convention (dropout after the "
                f"activation is the usual one)"
            )
            severity = Severity.INFORMATION
        elif act.at_zero == "0":
            why = act.why or f"{act.label} is not linear"
            message = (
                f"{drop.label} is applied before {act.label}: {act.label}(0) is 0 but {why}, so dropping "
                f"and scaling before it changes the result; put the dropout after the activation"
            )
        else:
            message = (
                f"{drop.label} is applied before {act.label}: dropped units become {act.label}(0) = "
                f"{act.at_zero} instead of 0, and the kept ones are scaled before a non-linear function, so "
                f"the result changes; put the dropout after the activation"
            )
        # never safe, even where the outputs are identical: an in-place activation (`ReLU(inplace=True)`)
        # moved in front of the dropout would overwrite the dropout's input, which may be read elsewhere
        fixes = (Fix(f"Swap {drop.label} and {act.label}", tuple(edits), safe=False),) if edits else ()
        self.findings.append(SL201.finding(self.model.source.span(node), message, fixes, severity=severity))


class AlphaDropoutCheck(StaticCheck):
    """SL203 (static half): alpha dropout with no SELU in its class (or Sequential, function, file)."""

    def __init__(self, model: FileModel) -> None:
        super().__init__(model)
        self._alpha: list[tuple[ast.Call, str, ast.AST, str]] = []  # call, label, SL203 scope, its name
        self._selu_scopes: set[ast.AST] = set()

    def name(self, node: ast.Name | ast.Attribute, scope: Scope) -> None:
        last = node.attr if isinstance(node, ast.Attribute) else node.id
        if last in SELU_LAST and self.model.resolve(node) in SELU:  # compare before resolving anything
            self._selu_scopes.add(_sl203_scope(scope)[0])

    def call(self, call: ast.Call, callee: str | None, scope: Scope) -> None:
        drop = DROPOUTS.get(callee) if callee is not None else None
        if drop is not None and drop.alpha and not drop.functional:  # F.alpha_dropout is how they are made
            where, what = _sl203_scope(scope)
            self._alpha.append((call, drop.label, where, what))

    def finish(self) -> None:
        """SL203 (static half): alpha dropout with no SELU in its class (or Sequential, function, file)."""
        for call, label, where, what in self._alpha:
            if where in self._selu_scopes:
                continue
            fixes: tuple[Fix, ...] = ()
            if isinstance(call.func, ast.Attribute) and call.func.attr == "AlphaDropout":
                func = self.model.source.span(call.func)
                # the attribute only (`nn.AlphaDropout` -> `nn.Dropout`): the module prefix stays valid
                start = func.end_column - len("AlphaDropout")
                at = Span(func.path, func.end_line, start, func.end_line, func.end_column)
                fixes = (Fix("Use `nn.Dropout`", (Edit(at, "Dropout"),), safe=False),)
            channels = " (or nn.Dropout1d/2d/3d to drop whole channels)" if "eature" in label else ""
            message = (
                f"{label} keeps the self-normalising property of SELU networks only, and there is no SELU in "
                f"{what}; without SELU use nn.Dropout{channels}"
            )
            self.findings.append(SL203.finding(self.model.source.span(call), message, fixes))

    # -- assignments: SL204 -------------------------------------------------------------------------------


def spatial_dropout(info: LayerInfo, sources: Sources) -> Finding | None:
    """SL203 (traced half): a Dropout2d/3d layer that received a tensor without its spatial dimensions."""
    rank = SPATIAL_RANK.get(info.type)
    if not rank or not any(len(s) < rank for call in info.calls for s in call.inputs):
        return None
    shapes = ", ".join(hint_label(s, "float32") for call in info.calls for s in call.inputs)
    source = sources.get(info.span.path)
    fixes: tuple[Fix, ...] = ()
    span = info.span
    if source is not None:
        text = source.lines[span.line - 1][span.column - 1 : span.end_column - 1] if span.line == span.end_line else ""
        if info.type in text:
            start = span.column + text.index(info.type)
            name_span = Span(span.path, span.line, start, span.line, start + len(info.type))
            fixes = (Fix("Use nn.Dropout", (Edit(name_span, "Dropout"),), safe=False),)
    message = (
        f"{info.type} zeroes whole channels of a {rank}-D input, but it receives {shapes}: "
        f"without spatial dimensions use nn.Dropout"
    )
    return SL203.finding(span, message, fixes)


# -- small AST helpers ----------------------------------------------------------------------------------


def _walk_no_functions(node: ast.AST) -> Iterator[ast.AST]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(c for c in ast.iter_child_nodes(current) if not isinstance(c, Function | ast.ClassDef))


def _swappable(target: str, second: ast.stmt, after: list[ast.stmt]) -> bool:
    """Whether swapping the two statements' calls changes nothing else: the dropout's result is read once
    (by the activation), and later code reads the second statement's rebinding of it or nothing."""
    reads = sum(isinstance(n, ast.Name) and n.id == target for n in ast.walk(second))
    if reads - (_single_name_target(second) == target) != 1:
        return False
    if _single_name_target(second) == target:
        return True
    return not any(isinstance(n, ast.Name) and n.id == target for stmt in after for n in ast.walk(stmt))


def _single_name_target(stmt: ast.stmt) -> str | None:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return stmt.target.id
    return None


def _ordered_dict_entries(call: ast.Call) -> list[tuple[ast.AST, ast.expr | None]]:
    """`OrderedDict([("fc", nn.Linear(...)), ...])` or `OrderedDict(fc=nn.Linear(...), ...)`: each entry
    (the whole pair, which a swap moves together with its name) and its module expression."""
    if call.keywords and not call.args:
        return [(k, k.value if k.arg is not None else None) for k in call.keywords]
    if len(call.args) == 1 and isinstance(call.args[0], ast.List | ast.Tuple):
        entries: list[tuple[ast.AST, ast.expr | None]] = []
        for element in call.args[0].elts:
            pair = isinstance(element, ast.Tuple) and len(element.elts) == 2
            entries.append((element, element.elts[1] if pair and isinstance(element, ast.Tuple) else None))
        return entries
    return []


def _sl203_scope(scope: Scope) -> tuple[ast.AST, str]:
    """Where an alpha dropout looks for its SELU: its class, else its nn.Sequential, function, the file."""
    if scope.inner_class is not None:
        return scope.inner_class, f"class `{scope.inner_class.name}`"
    if scope.sequential is not None:
        return scope.sequential, "this nn.Sequential"
    if scope.top_function is not None:
        return scope.top_function, f"function `{scope.top_function.name}`"
    return _FILE, "this file"


CHECKS: tuple[type[StaticCheck], ...] = (
    DropoutOrderCheck,
    AlphaDropoutCheck,
)  # fed by the one walk (`walk.py`)
