"""The rules that need no trace: dropout placement and train/eval handling (SL201, SL202, the static half of
SL203) and run-time "resizing" of layers (SL204).

They read the AST only: nothing is imported or executed, so they are safe on untrusted code and run on
every keystroke. Each finding takes its code, name and default severity from the catalogue (`rules.py`);
what the rules know about PyTorch (which activations, which dropouts, which layers and their weights) is
in the tables below, not in the logic.

One walk over the tree carries the context the rules need (enclosing class and its `self`, whether an `if`
tests `training`, isinstance narrowing) and feeds every rule from the same visit.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

from shapelens.analysis.edits import line_starts, offset
from shapelens.analysis.names import Names, names_for, statements, target_names
from shapelens.analysis.rules import rule
from shapelens.core.findings import Edit, Finding, Fix, Related, Severity, Span
from shapelens.core.source import Source
from shapelens.core.torch_facts import (
    ACTIVATION_CLASSES as _ACTIVATION_CLASSES,
)
from shapelens.core.torch_facts import (
    ACTIVATION_FUNCTIONS as _ACTIVATION_FUNCTIONS,
)
from shapelens.core.torch_facts import (
    ACTIVATION_METHODS as _ACTIVATION_METHODS,
)
from shapelens.core.torch_facts import (
    DROPOUTS,
    LAYERS,
    Activation,
    Dropout,
    Layer,
)
from shapelens.core.torch_facts import (
    MODULE_BASE as _MODULE_BASE,
)
from shapelens.core.torch_facts import (
    OTHER_MODULE_BASES as _OTHER_MODULE_BASES,
)
from shapelens.core.torch_facts import (
    SELU as _SELU,
)
from shapelens.core.torch_facts import (
    SELU_LAST as _SELU_LAST,
)

# -- what the rules know about PyTorch -------------------------------------------------------------------


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


# the last parts of every name the tables use: only these are worth a jedi look-up
_JEDI_FOR = frozenset(
    name.rpartition(".")[2]
    for name in (
        *DROPOUTS, *_ACTIVATION_CLASSES, *_ACTIVATION_FUNCTIONS, *_SELU, *LAYERS, *_OTHER_MODULE_BASES,
        "torch.nn.Module", "torch.nn.Sequential", "collections.OrderedDict",
    )
)  # fmt: skip


# -- the context the walk carries ------------------------------------------------------------------------

_Function = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
# nodes with nothing below them that a rule reads
_LEAVES = frozenset({ast.Constant, ast.Load, ast.Store, ast.Del, ast.Pass, ast.Break, ast.Continue})
# nodes that hold statement lists (where consecutive statements are looked at; `if`/`while` elsewhere)
_WITH_BODY: frozenset[type[ast.AST]] = frozenset({
    ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.For, ast.AsyncFor, ast.With, ast.AsyncWith, ast.Try,
    ast.ExceptHandler, ast.match_case, *([ast.TryStar] if hasattr(ast, "TryStar") else []),
})  # fmt: skip
_Def = ast.FunctionDef | ast.AsyncFunctionDef
_FILE = ast.Module(body=[], type_ignores=[])  # SL203's scope key for module-level code


@dataclass(frozen=True)
class _Scope:
    cls: ast.ClassDef | None = None  # the class whose method we are in (for `self.x`)
    self_name: str | None = None
    method: _Def | None = None  # that method
    function: _Function | None = None  # the innermost function (for local names)
    top_function: _Def | None = None  # the outermost def, when not in a class (SL203's scope)
    inner_class: ast.ClassDef | None = None  # the innermost class around us (SL203's scope)
    sequential: ast.Call | None = None  # the outermost nn.Sequential(...) around us (SL203's scope)
    guarded: bool = False  # inside `if ... training ...:` (the dropout already follows the mode)
    narrowed: tuple[tuple[str, str], ...] = ()  # `isinstance(name, Class)` tests around us


@dataclass(frozen=True)
class _Op:
    """A call that applies a dropout or an activation to one tensor."""

    call: ast.Call
    input: ast.expr  # the tensor it is applied to
    receiver: bool  # the input is the method's receiver (`x.relu()`), not the first argument
    dropout: Dropout | None = None
    activation: Activation | None = None


# expressions that need no parentheses as a method's receiver
_ATOMIC = (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant, ast.List, ast.Tuple, ast.Dict)


class _Checker:
    """One file's static rules: `run()` walks the tree once and returns the findings."""

    def __init__(self, source: Source) -> None:
        self.source = source
        # jedi only where the AST cannot tell (a star import of a library, an unreadable project file)
        self.names: Names = names_for(source.tree, source.path, source.text, True, _JEDI_FOR)
        self.findings: list[Finding] = []
        self._starts = line_starts(source.text)
        self._classes = {n.name: n for n in source.tree.body if isinstance(n, ast.ClassDef)}
        self._module_class: dict[ast.ClassDef, bool] = {}
        self._self_attrs: dict[ast.ClassDef, dict[str, list[ast.expr]]] = {}
        self._locals: dict[ast.AST, dict[str, list[ast.expr]]] = {}
        self._alpha: list[tuple[ast.Call, str, ast.AST, str]] = []  # call, label, SL203 scope, its name
        self._selu_scopes: set[ast.AST] = set()
        self._ops: dict[ast.Call, _Op | None] = {}
        self._weights: dict[ast.AST, set[str]] = {}

    # -- text ---------------------------------------------------------------------------------------------

    def _offsets(self, node: ast.AST) -> tuple[int, int]:
        span = self.source.span(node)
        text, starts = self.source.text, self._starts
        return offset(text, starts, span.line, span.column), offset(text, starts, span.end_line, span.end_column)

    def text(self, node: ast.AST) -> str:
        """The node's source text, by character columns (`ast.get_source_segment` wants byte columns,
        which `parse` has already converted)."""
        begin, end = self._offsets(node)
        return self.source.text[begin:end]

    def with_input(self, op: _Op, new_input: str, atomic: bool) -> str:
        """The op's call text with its tensor replaced by `new_input` (the other arguments kept)."""
        begin, end = self._offsets(op.call)
        in_begin, in_end = self._offsets(op.input)
        if op.receiver and not atomic:
            new_input = f"({new_input})"
        whole = self.source.text
        return whole[begin:in_begin] + new_input + whole[in_end:end]

    # -- what names and values are ------------------------------------------------------------------------

    def resolve(self, node: ast.AST) -> str | None:
        return self.names.resolve(node)

    def is_module_class(self, cls: ast.ClassDef, seen: frozenset[str] = frozenset()) -> bool:
        """Whether `cls` subclasses nn.Module (directly, through a torch.nn class or a class of this file)."""
        if cls in self._module_class:
            return self._module_class[cls]
        result = False
        unknown_base = False
        for base in cls.bases:
            name = self.resolve(base)
            if name is not None and (_MODULE_BASE.match(name) or name in _OTHER_MODULE_BASES):
                result = True
            elif isinstance(base, ast.Name) and base.id in self._classes and base.id not in seen:
                result = self.is_module_class(self._classes[base.id], seen | {cls.name})
            elif name is None or not name.startswith("torch."):
                unknown_base = True
            if result:
                break
        if not result and unknown_base:
            # a base we cannot read (a project base class, another framework's module): a class with a
            # `forward` is a module in all but name
            result = any(isinstance(s, _Def) and s.name == "forward" for s in cls.body)
        self._module_class[cls] = result
        return result

    def _self_attr_values(self, cls: ast.ClassDef) -> dict[str, list[ast.expr]]:
        """`self.<name> = <value>` anywhere in the class's methods, and class-level `name = <value>`."""
        found = self._self_attrs.get(cls)
        if found is not None:
            return found
        found = {}
        for stmt in cls.body:
            if isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    if isinstance(target, ast.Name):
                        found.setdefault(target.id, []).append(stmt.value)
            elif isinstance(stmt, _Def) and stmt.args.args:
                me = stmt.args.args[0].arg
                for node in statements(stmt):
                    if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
                        continue
                    for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                        if _is_attribute_of(target, me):
                            assert isinstance(target, ast.Attribute)
                            found.setdefault(target.attr, []).append(node.value)
        self._self_attrs[cls] = found
        return found

    def _attr_values(self, cls: ast.ClassDef, attr: str, seen: frozenset[str]) -> list[ast.expr] | None:
        values = self._self_attr_values(cls).get(attr)
        if values is not None:
            return values
        for base in cls.bases:  # inherited from a base class in this file
            if isinstance(base, ast.Name) and base.id in self._classes and base.id not in seen:
                values = self._attr_values(self._classes[base.id], attr, seen | {cls.name})
                if values is not None:
                    return values
        return None

    def _local_values(self, owner: ast.AST) -> dict[str, list[ast.expr]]:
        """`name = <value>` in a function's own body (not nested functions), or at module level. A name
        bound any other way (loop, import, def, tuple target) gets a `None` constant: not a layer. Only
        statements are read (a walrus inside an expression is not: reading every expression would cost
        more than that rare case is worth)."""
        found = self._locals.get(owner)
        if found is not None:
            return found
        found = {}
        stack: list[ast.AST] = list(getattr(owner, "body", []))
        unknown = ast.Constant(None)
        while stack:
            node = stack.pop()
            if isinstance(node, _Def | ast.ClassDef):
                found.setdefault(node.name, []).append(unknown)
                continue
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    value = node.value if isinstance(target, ast.Name) else unknown
                    for name in target_names(target):
                        found.setdefault(name, []).append(value)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                found.setdefault(node.target.id, []).append(node.value or unknown)
            elif isinstance(node, ast.AugAssign | ast.For | ast.AsyncFor):
                for name in target_names(node.target):
                    found.setdefault(name, []).append(unknown)
            elif isinstance(node, ast.With | ast.AsyncWith):
                for name in (n for item in node.items for n in target_names(item.optional_vars)):
                    found.setdefault(name, []).append(unknown)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                for alias in node.names:
                    found.setdefault((alias.asname or alias.name).split(".")[0], []).append(unknown)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                found.setdefault(node.name, []).append(unknown)
            for name in ("body", "orelse", "finalbody", "handlers", "cases"):
                stack.extend(getattr(node, name, ()))
        self._locals[owner] = found
        return found

    def values_of(self, node: ast.expr, scope: _Scope) -> list[ast.expr] | None:
        """The expressions `node` (a name or `self.x`) may have been bound to, when the file says."""
        if isinstance(node, ast.Name):
            owner = scope.function
            if isinstance(owner, _Def):
                values = self._local_values(owner).get(node.id)
                if values is not None or node.id in _parameters(owner):
                    return values
            return self._local_values(self.source.tree).get(node.id)
        if _is_attribute_of(node, scope.self_name) and scope.cls is not None:
            assert isinstance(node, ast.Attribute)
            return self._attr_values(scope.cls, node.attr, frozenset())
        return None

    def instance_of(self, node: ast.expr, scope: _Scope, depth: int = 0) -> str | None:
        """The canonical class of the object `node` evaluates to, if the file says: `nn.Dropout(0.1)`,
        `self.drop` built in `__init__`, a local `drop = nn.Dropout()`, an isinstance-narrowed name."""
        if isinstance(node, ast.Call):
            return self.resolve(node.func)
        if isinstance(node, ast.Name):
            for name, cls_name in reversed(scope.narrowed):
                if name == node.id:
                    return cls_name
        values = self.values_of(node, scope) if depth < 4 else None
        if not values:
            return None
        kinds = {self.instance_of(v, scope, depth + 1) for v in values}
        return kinds.pop() if len(kinds) == 1 else None

    def constructor(self, node: ast.expr, scope: _Scope) -> ast.Call | None:
        """The one constructor call that built the object `node` names, if there is exactly one."""
        values = self.values_of(node, scope)
        return values[0] if values and len(values) == 1 and isinstance(values[0], ast.Call) else None

    def op_of(self, call: ast.Call, scope: _Scope) -> _Op | None:
        """The dropout or activation `call` applies, if it is one: a function (`F.gelu(x)`), a Tensor method
        (`x.relu()`) or a module (`self.act(x)`, `nn.GELU()(x)`). Asked twice for most calls (as a
        statement's value, then as a call): remembered per node."""
        if call not in self._ops:
            self._ops[call] = self._op_of(call, scope)
        return self._ops[call]

    def _op_of(self, call: ast.Call, scope: _Scope) -> _Op | None:
        func = call.func
        name = self.resolve(func)
        first = call.args[0] if call.args and not isinstance(call.args[0], ast.Starred) else None
        if name is not None:
            if first is None:
                return None
            drop = DROPOUTS.get(name)
            if drop is not None and drop.functional:
                return _Op(call, first, False, dropout=drop) if self._drops(call, drop) else None
            if name in _ACTIVATION_FUNCTIONS:
                return _Op(call, first, False, activation=_ACTIVATION_FUNCTIONS[name])
            return None
        if (
            isinstance(func, ast.Attribute)
            and func.attr in _ACTIVATION_METHODS
            and not call.args
            and not call.keywords
            and self.resolve(func.value) is None  # `x.relu()`, not `torch.relu()`
        ):
            return _Op(call, func.value, True, activation=_ACTIVATION_METHODS[func.attr])
        if first is None or len(call.args) != 1 or call.keywords:
            return None
        cls = self.instance_of(func, scope)
        drop = DROPOUTS.get(cls) if cls is not None else None
        if drop is not None and not drop.functional:
            return _Op(call, first, False, dropout=drop)
        if cls in _ACTIVATION_CLASSES:
            return _Op(call, first, False, activation=_ACTIVATION_CLASSES[cls])
        return None

    def _drops(self, call: ast.Call, drop: Dropout) -> bool:
        """Whether a functional dropout can drop at all (not `training=False`, not alpha's default)."""
        value = _training_arg(call, drop)
        if value is None:
            return drop.default is not False
        return not (isinstance(value, ast.Constant) and value.value is False)

    # -- the walk -----------------------------------------------------------------------------------------

    def run(self) -> list[Finding]:
        self._visit(self.source.tree, _Scope())
        self._alpha_without_selu()
        return sorted(self.findings, key=lambda f: (f.span.line, f.span.column, f.code))

    def _visit(self, node: ast.AST, scope: _Scope) -> None:
        kind = type(node)
        # names and constants are most of a tree: handle them first and do not descend into their contexts
        if kind is ast.Name or kind is ast.Attribute:
            last = node.attr if kind is ast.Attribute else node.id  # type: ignore[attr-defined]
            if last in _SELU_LAST and self.resolve(node) in _SELU:  # compare before resolving anything
                self._selu_scopes.add(_sl203_scope(scope)[0])
            if kind is ast.Attribute:
                self._visit(node.value, scope)  # type: ignore[attr-defined]
            return
        if kind in _LEAVES:
            return
        if isinstance(node, ast.ClassDef):
            self._visit_class(node, scope)
            return
        if isinstance(node, _Function):
            top = scope.top_function
            if top is None and isinstance(node, _Def) and scope.inner_class is None:
                top = node
            scope = replace(scope, function=node, top_function=top)
        elif isinstance(node, ast.If | ast.IfExp | ast.While):
            self._visit_conditional(node, scope)
            return
        elif isinstance(node, ast.Call):
            scope = self._call(node, scope)
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            self._assignment(node, scope)
        if kind in _WITH_BODY:
            for block in _blocks(node):
                self._statement_pairs(block, scope)
        for child in ast.iter_child_nodes(node):
            self._visit(child, scope)

    def _visit_class(self, node: ast.ClassDef, scope: _Scope) -> None:
        for header in (*node.bases, *node.decorator_list, *(k.value for k in node.keywords)):
            self._visit(header, scope)
        inner = replace(scope, inner_class=node, cls=None, self_name=None, method=None)
        for child in node.body:
            if isinstance(child, _Def):
                static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in child.decorator_list)
                params = [*child.args.posonlyargs, *child.args.args]
                me = params[0].arg if params and not static else None
                self._visit(child, replace(inner, cls=node, self_name=me, method=child))
            else:
                self._visit(child, inner)

    def _visit_conditional(self, node: ast.If | ast.IfExp | ast.While, scope: _Scope) -> None:
        self._visit(node.test, scope)
        taken = replace(
            scope,
            guarded=scope.guarded or _mentions_training(node.test),
            narrowed=scope.narrowed + self._isinstance_tests(node.test),
        )
        for branch, branch_scope in ((node.body, taken), (node.orelse, scope)):
            children = branch if isinstance(branch, list) else [branch]
            if children and isinstance(children[0], ast.stmt):
                self._statement_pairs(children, branch_scope)  # type: ignore[arg-type]
            for child in children:
                self._visit(child, branch_scope)

    def _isinstance_tests(self, test: ast.expr) -> tuple[tuple[str, str], ...]:
        tests = test.values if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) else [test]
        found: list[tuple[str, str]] = []
        for t in tests:
            if (
                isinstance(t, ast.Call)
                and isinstance(t.func, ast.Name)
                and t.func.id == "isinstance"
                and len(t.args) == 2
                and isinstance(t.args[0], ast.Name)
            ):
                cls_name = self.resolve(t.args[1])
                if cls_name is not None:
                    found.append((t.args[0].id, cls_name))
        return tuple(found)

    # -- calls: SL201 (nested calls and nn.Sequential), SL202, SL203 ---------------------------------------

    def _call(self, call: ast.Call, scope: _Scope) -> _Scope:
        name = self.resolve(call.func)
        drop = DROPOUTS.get(name) if name is not None else None
        if name == "torch.nn.Sequential":
            self._sequential(call, scope)
            if scope.sequential is None:
                scope = replace(scope, sequential=call)
        elif drop is not None:
            if drop.alpha and not drop.functional:  # the layers; F.alpha_dropout is how they are made
                where, what = _sl203_scope(scope)
                self._alpha.append((call, drop.label, where, what))
            if drop.functional:
                self._functional_dropout(call, drop, scope)
        outer = self.op_of(call, scope)
        if outer is not None and outer.activation is not None and isinstance(outer.input, ast.Call):
            inner = self.op_of(outer.input, scope)
            if inner is not None and inner.dropout is not None:
                # act(drop(x)) -> drop(act(x))
                applied = self.with_input(outer, self.text(inner.input), isinstance(inner.input, _ATOMIC))
                edit = Edit(self.source.span(call), self.with_input(inner, applied, True))
                self._dropout_before(inner.call, inner.dropout, outer.activation, [edit])
        return scope

    def _sequential(self, call: ast.Call, scope: _Scope) -> None:
        """nn.Sequential(..., nn.Dropout(p), nn.GELU(), ...), also with an OrderedDict of named entries."""
        entries: list[tuple[ast.AST, ast.expr | None]] = [
            (a, None if isinstance(a, ast.Starred) else a) for a in call.args
        ]
        inner = call.args[0] if len(call.args) == 1 else None
        if isinstance(inner, ast.Call) and self.resolve(inner.func) in (
            "collections.OrderedDict",
            "typing.OrderedDict",
        ):
            entries = _ordered_dict_entries(inner)
        for (first_node, first), (second_node, second) in itertools.pairwise(entries):
            if first is None or second is None:
                continue  # `*layers` between them: not adjacent as far as we can tell
            drop_cls = self.instance_of(first, scope)
            drop = DROPOUTS.get(drop_cls) if drop_cls is not None else None
            act_cls = self.instance_of(second, scope)
            if drop is None or drop.functional or act_cls not in _ACTIVATION_CLASSES:
                continue
            edits = [
                Edit(self.source.span(first_node), self.text(second_node)),
                Edit(self.source.span(second_node), self.text(first_node)),
            ]
            self._dropout_before(first_node, drop, _ACTIVATION_CLASSES[act_cls], edits)

    def _statement_pairs(self, block: list[ast.stmt], scope: _Scope) -> None:
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
                        Edit(self.source.span(first.value), self.with_input(act, self.text(drop.input), atomic)),
                        Edit(self.source.span(act.call), self.with_input(drop, target, True)),
                    ]
                self._dropout_before(first.value, drop.dropout, act.activation, edits)
                break

    def _dropout_before(self, node: ast.AST, drop: Dropout, act: Activation, edits: list[Edit]) -> None:
        """SL201, with the message that says which case applies: identical (information) or not."""
        sl201 = rule("SL201")
        severity = sl201.severity
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
        self.findings.append(Finding(sl201.code, severity, self.source.span(node), message, fixes))

    def _functional_dropout(self, call: ast.Call, drop: Dropout, scope: _Scope) -> None:
        """SL202: a functional dropout in a module's method that does not follow the module's mode."""
        if scope.cls is None or scope.self_name is None or scope.method is None or scope.guarded:
            return
        if not call.args or not self.is_module_class(scope.cls):
            return
        if any(k.arg is None for k in call.keywords) or any(
            isinstance(a, ast.Starred) for a in call.args[: drop.position + 1]
        ):
            return  # `**kwargs` / `*args` may carry the flag
        value = _training_arg(call, drop)
        where = f"{scope.cls.name}.{scope.method.name}"
        callee = self.text(call.func)
        flag = f"{drop.training}={scope.self_name}.training"
        if value is None:
            if drop.default is None:
                return  # a required argument is missing: a TypeError, not ours
            last = self.source.span(max((*call.args, *(k.value for k in call.keywords)), key=_end))
            at = Span(last.path, last.end_line, last.end_column, last.end_line, last.end_column)
            if drop.default:
                message = (
                    f"`{callee}` in `{where}` keeps dropping after `model.eval()`: the functional form "
                    f"defaults to training=True, unlike nn.Dropout; pass `{flag}`"
                )
            else:
                message = (
                    f"`{callee}` in `{where}` never drops, in training either: it defaults to "
                    f"training=False; pass `{flag}`"
                )
            # adding the flag to F.dropout only changes eval mode (what was meant); switching a silently
            # inactive alpha dropout on changes training, so that one is the user's call
            fix = Fix(f"Pass `{flag}`", (Edit(at, f", {flag}"),), safe=bool(drop.default))
        elif isinstance(value, ast.Constant) and value.value is True:
            message = (
                f"`{callee}` in `{where}` is called with {drop.training}=True, so it keeps dropping after "
                f"`model.eval()`; pass `{flag}` (for Monte Carlo dropout on purpose, suppress this with "
                f"`# shapelens: ignore[SL202]`)"
            )
            # an explicit True may be deliberate (Monte Carlo dropout): not safe to rewrite unasked
            edit = Edit(self.source.span(value), f"{scope.self_name}.training")
            fix = Fix(f"Pass `{flag}`", (edit,), safe=False)
        else:
            return
        sl202 = rule("SL202")
        self.findings.append(Finding(sl202.code, sl202.severity, self.source.span(call), message, (fix,)))

    def _alpha_without_selu(self) -> None:
        """SL203 (static half): alpha dropout with no SELU in its class (or Sequential, function, file)."""
        sl203 = rule("SL203")
        for call, label, where, what in self._alpha:
            if where in self._selu_scopes:
                continue
            fixes: tuple[Fix, ...] = ()
            if isinstance(call.func, ast.Attribute) and call.func.attr == "AlphaDropout":
                func = self.source.span(call.func)
                # the attribute only (`nn.AlphaDropout` -> `nn.Dropout`): the module prefix stays valid
                start = func.end_column - len("AlphaDropout")
                at = Span(func.path, func.end_line, start, func.end_line, func.end_column)
                fixes = (Fix("Use `nn.Dropout`", (Edit(at, "Dropout"),), safe=False),)
            channels = " (or nn.Dropout1d/2d/3d to drop whole channels)" if "eature" in label else ""
            message = (
                f"{label} keeps the self-normalising property of SELU networks only, and there is no SELU in "
                f"{what}; without SELU use nn.Dropout{channels}"
            )
            self.findings.append(Finding(sl203.code, sl203.severity, self.source.span(call), message, fixes))

    # -- assignments: SL204 -------------------------------------------------------------------------------

    def _assignment(self, node: ast.Assign | ast.AugAssign | ast.AnnAssign, scope: _Scope) -> None:
        if isinstance(node, ast.AnnAssign) and node.value is None:
            return
        for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
            for attribute in _attributes_in_target(target):
                if attribute.attr in SIZE_ATTRIBUTES:
                    self._resize(attribute, scope)

    def _resize(self, target: ast.Attribute, scope: _Scope) -> None:
        owner = target.value
        if isinstance(owner, ast.Name) and owner.id in {"self", "cls", scope.self_name}:
            return  # a module keeping its own configuration (`self.in_features = in_features`)
        if ast.dump(owner) in self._weights_replaced(scope):
            return  # the weight is replaced too (`emb.weight = new.weight`): the attribute is kept in sync
        sl204 = rule("SL204")
        cls_name = self.instance_of(owner, scope)
        layer = LAYERS.get(cls_name) if cls_name is not None else None
        if layer is not None and cls_name is not None:
            if target.attr in layer.params:
                self._resize_layer(target, cls_name, layer, self.constructor(owner, scope))
            return
        if cls_name is not None or target.attr not in _LAYER_ONLY:
            return  # a known object that is not a layer (a config, a project class)
        chain = _chain(owner)
        if chain is None or len(chain) < 2 or any(_CONFIG_LIKE.match(part) for part in chain):
            return
        if chain[0] in {"self", scope.self_name} and len(chain) < 3:
            return  # `self.head.in_features`: flagged above when `self.head` is known to be a layer
        message = (
            f"Assigning `{self.text(target)}` only changes an attribute: a layer's weight keeps the shape it "
            f"was built with, so the layer is not resized; assign a new layer instead "
            f"(`{self.text(owner)} = nn.Linear(...)`)"
        )
        self.findings.append(Finding(sl204.code, sl204.severity, self.source.span(target), message))

    def _weights_replaced(self, scope: _Scope) -> set[str]:
        """The objects (as `ast.dump`s) whose `.weight` the enclosing function (or module) assigns."""
        owner: ast.AST = scope.function if isinstance(scope.function, _Def) else self.source.tree
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
            f"Assigning `{self.text(target)}` does not resize the {cls_name.removeprefix('torch.')}: its "
            f"{layer.weight} {verb} the shape [{', '.join(dims)}] it was built with, so it still "
            f"{_EFFECT[target.attr].format(values.get(target.attr, target.attr))}; {advice}"
        )
        related = (Related(self.source.span(built), "the layer is built here"),) if built is not None else ()
        sl204 = rule("SL204")
        self.findings.append(Finding(sl204.code, sl204.severity, self.source.span(target), message, related=related))


# -- small AST helpers ----------------------------------------------------------------------------------


def _blocks(node: ast.AST) -> Iterator[list[ast.stmt]]:
    for name in ("body", "orelse", "finalbody"):
        value = getattr(node, name, None)
        if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
            yield value


def _walk_no_functions(node: ast.AST) -> Iterator[ast.AST]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(c for c in ast.iter_child_nodes(current) if not isinstance(c, _Function | ast.ClassDef))


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


def _attributes_in_target(target: ast.AST) -> Iterator[ast.Attribute]:
    if isinstance(target, ast.Attribute):
        yield target
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _attributes_in_target(element)
    elif isinstance(target, ast.Starred):
        yield from _attributes_in_target(target.value)


def _is_attribute_of(node: ast.AST, name: str | None) -> bool:
    """`node` is `<name>.<attr>` (`self.drop` for name "self")."""
    return (
        name is not None
        and isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == name
    )


def _parameters(function: _Def) -> set[str]:
    args = function.args
    names = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
    return names | {a.arg for a in (args.vararg, args.kwarg) if a is not None}


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


def _mentions_training(test: ast.expr) -> bool:
    return any(
        (isinstance(n, ast.Name) and n.id == "training") or (isinstance(n, ast.Attribute) and n.attr == "training")
        for n in ast.walk(test)
    )


def _training_arg(call: ast.Call, drop: Dropout) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == drop.training:
            return keyword.value
    return call.args[drop.position] if len(call.args) > drop.position else None


def _end(node: ast.expr) -> tuple[int, int]:
    return (node.end_lineno or 0, node.end_col_offset or 0)


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


def _sl203_scope(scope: _Scope) -> tuple[ast.AST, str]:
    """Where an alpha dropout looks for its SELU: its class, else its nn.Sequential, function, the file."""
    if scope.inner_class is not None:
        return scope.inner_class, f"class `{scope.inner_class.name}`"
    if scope.sequential is not None:
        return scope.sequential, "this nn.Sequential"
    if scope.top_function is not None:
        return scope.top_function, f"function `{scope.top_function.name}`"
    return _FILE, "this file"


CODES = ("SL201", "SL202", "SL203", "SL204")  # what static_findings reports (SL203: its alpha-dropout half)


def static_findings(source: Source) -> list[Finding]:
    """SL201, SL202, SL203 (alpha dropout without SELU) and SL204 for one parsed file, in source order."""
    return _Checker(source).run()
