"""How each model gets its constructor arguments and its inputs. First match wins:

1. a directive comment on or above the class (or its `forward`, or the Sequential's assignment):
   `# shapelens: x=(8, 3, 32, 32), ids=int64(2, 40)` and `# shapelens: init(10, hidden=20)`;
2. an example call in the file — module level, under `if __name__ == "__main__":` or inside a function —
   such as `model = Net(10); out = model(torch.randn(4, 3, 32, 32))`, of which only the backward slice runs
   (the constants, the constructor call, the tensor factories), never anything else;
3. inferred in the trace child from the first layer `forward` applies to its input, when that layer fixes
   the input (Linear, Embedding, RNN/LSTM/GRU);
4. otherwise nothing runs and SL003 says how to add an input.

Items are positions of nodes in the file (so that code runs with its real line numbers) or generated code.
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass, field
from typing import Any

from shapelens.analysis.discover import Model
from shapelens.core.source import Source
from shapelens.core.syntax import bound_names, loaded_names, mutated_names
from shapelens.core.wire import InputSource

DIRECTIVE = re.compile(r"#\s*shapelens:\s*(?!ignore\b)(.+)$")
DTYPES = {
    "float32", "float", "float16", "half", "bfloat16", "float64", "double",
    "int64", "long", "int32", "int", "int16", "int8", "uint8", "bool", "complex64",
}  # fmt: skip
BUILTINS = set(dir(builtins))

ALWAYS_LOADED = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
Item = dict[str, Any]  # {"node": [line, col]} | {"code": "..."} | {"tensor": [dims], "dtype": "int64"}


@dataclass
class Inputs:
    source: InputSource
    setup: list[Item] = field(default_factory=list)
    model: Item | None = None
    args: list[Item] = field(default_factory=list)
    kwargs: dict[str, Item] = field(default_factory=dict)
    infer_from: str | None = None  # the attribute forward applies first to its input ("fc1")
    reason: str = ""  # for InputSource.NONE: why, and how to add an input
    line: int = 0  # where the inputs came from (the directive's or the example call's line)


def _node(node: ast.AST) -> Item:
    """A node by its full range (start alone is ambiguous: `Net(10)(x)`, `Net(10)` and `Net` share it)."""
    return {"node": [node.lineno, node.col_offset, node.end_lineno, node.end_col_offset]}  # type: ignore[attr-defined]


# -- 1. directives --------------------------------------------------------------------------------------


def _directive_lines(source: Source, node: ast.AST) -> list[tuple[int, str]]:
    """Directive comments on the node's first line or in the comment block right above it (and above its
    decorators)."""
    lines = source.lines
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])  # type: ignore[attr-defined]
    found = []
    number = node.lineno  # type: ignore[attr-defined]
    if number <= len(lines) and (m := DIRECTIVE.search(lines[number - 1])):
        found.append((number, m.group(1)))
    number = first - 1
    while number >= 1 and lines[number - 1].strip().startswith("#"):
        if m := DIRECTIVE.search(lines[number - 1]):
            found.append((number, m.group(1)))
        number -= 1
    return found


class DirectiveError(ValueError):
    pass


def parse_directive(text: str) -> tuple[ast.Call | None, dict[str, Item]]:
    """`init(10, hidden=20), x=(8, 3, 32, 32), ids=int64(2, 40)` → the init call and the inputs."""
    try:
        call = ast.parse(f"_({text})", mode="eval").body
    except SyntaxError as err:
        raise DirectiveError(f"cannot read directive `{text}`: {err.msg}") from None
    assert isinstance(call, ast.Call)
    init = None
    for arg in call.args:
        if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and arg.func.id == "init":
            init = arg
        else:
            raise DirectiveError(f"unexpected `{ast.unparse(arg)}`: write inputs as name=(dims)")
    inputs = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            raise DirectiveError("`**` is not allowed in a directive")
        inputs[keyword.arg] = _directive_value(keyword.value)
    return init, inputs


def _dims(node: ast.expr) -> list[int]:
    value = ast.literal_eval(node)
    dims = [value] if isinstance(value, int) else list(value)
    if not all(isinstance(d, int) and d >= 0 for d in dims):
        raise DirectiveError(f"dimensions must be non-negative integers: `{ast.unparse(node)}`")
    return dims


def _directive_value(node: ast.expr) -> Item:
    try:
        if isinstance(node, ast.Tuple | ast.List):
            return {"tensor": _dims(node), "dtype": "float32"}
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in DTYPES:
            dims = [d for arg in node.args for d in _dims(arg)]
            return {"tensor": dims, "dtype": node.func.id}
        return {"code": repr(ast.literal_eval(node))}
    except (ValueError, SyntaxError):
        raise DirectiveError(f"cannot read `{ast.unparse(node)}`: use (dims), int64(dims) or a literal") from None


def from_directive(source: Source, model: Model) -> Inputs | None:
    anchors: list[ast.AST] = [model.node]
    if model.forward is not None:
        anchors.append(model.forward)
    init: ast.Call | None = None
    inputs: dict[str, Item] = {}
    line = 0
    for anchor in anchors:
        for number, text in _directive_lines(source, anchor):
            try:
                found_init, found_inputs = parse_directive(text)
            except DirectiveError as err:
                return Inputs(InputSource.NONE, reason=str(err), line=number)
            init = init or found_init
            inputs.update(found_inputs)
            line = line or number
    if init is None and not inputs:
        return None
    result = Inputs(InputSource.DIRECTIVE, line=line)
    if model.kind == "sequential":
        result.setup = [_node(model.node)]
        result.model = {"code": model.name}
        result.args = list(inputs.values())
        return result if inputs else _with_inference(result, model)
    init_args = ast.unparse(init).removeprefix("init") if init else "()"
    result.model = {"code": f"{model.name}{init_args}"}
    result.kwargs = inputs
    return result if inputs else _with_inference(result, model)


# -- 2. example calls -----------------------------------------------------------------------------------


def _parents(tree: ast.AST) -> dict[int, ast.AST]:
    parents: dict[int, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node
    return parents


def _is_constructor(value: ast.expr | None, model: Model, factories: dict[str, ast.FunctionDef] | None = None) -> bool:
    """`Net(...)`, a chain on it such as `Net(...).to(device).eval()`, or a call of a function of the file
    that returns one (`def build(): return Net(3)`)."""
    while isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
        if isinstance(value.func.value, ast.Call):
            value = value.func.value
        else:
            break
    if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)):
        return False
    if value.func.id == model.name:
        return True
    factory = (factories or {}).get(value.func.id)
    returns = [n.value for n in ast.walk(factory) if isinstance(n, ast.Return)] if factory else []
    return any(_is_constructor(r, model) for r in returns)


def _statements_before(stmt: ast.stmt, parents: dict[int, ast.AST], tree: ast.Module) -> list[ast.stmt]:
    """The statements that ran before `stmt` in its function (or module), outermost scope first, each
    body cut at the statement on the path to `stmt`."""
    chain: list[ast.stmt] = []
    node: ast.AST = stmt
    while True:
        parent = parents.get(id(node))
        if parent is None:
            break
        for field_name in ("body", "orelse", "finalbody"):
            body = getattr(parent, field_name, None)
            if isinstance(body, list) and node in body:
                chain = body[: body.index(node)] + chain
        if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef | ast.Module):
            break
        node = parent
    return chain


def _slice(call: ast.Call, stmt: ast.stmt, scope_body: list[ast.stmt], func: ast.AST | None) -> list[Item] | None:
    """The backward slice of `call` among the statements before it; None when a needed name cannot be
    computed without running something else (a loop variable, a parameter without a default)."""
    needed = loaded_names(call) - BUILTINS
    picked: list[ast.stmt] = []
    for previous in reversed(scope_body):
        binds = bound_names(previous)
        if not binds & needed:
            if mutated_names(previous) & needed:  # `parser.add_argument(...)`, `cfg.width = 16`: part of it
                picked.append(previous)
                needed |= loaded_names(previous) - BUILTINS
            continue
        if func is None and isinstance(previous, ALWAYS_LOADED):
            continue  # the module itself defines these (instrumented); running them again would undo that
        if isinstance(previous, ast.For | ast.While | ast.With | ast.AsyncFor | ast.AsyncWith | ast.Try):
            return None
        if isinstance(previous, ast.If):
            return None
        picked.append(previous)
        needed = (needed - binds) | (loaded_names(previous) - BUILTINS)
    items: list[Item] = []
    if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
        defaults = dict(zip(
            [a.arg for a in func.args.args][-len(func.args.defaults):] if func.args.defaults else [],
            func.args.defaults, strict=True,
        ))  # fmt: skip
        defaults.update({a.arg: d for a, d in zip(func.args.kwonlyargs, func.args.kw_defaults, strict=True) if d})
        params = {a.arg for a in [*func.args.args, *func.args.kwonlyargs]}
        for name in sorted(needed & params):
            if name not in defaults:
                return None
            items.append({"code": f"{name} = {ast.unparse(defaults[name])}"})
    return items + [_node(s) for s in reversed(picked)]


def from_example(source: Source, model: Model) -> Inputs | None:
    tree = source.tree
    parents = _parents(tree)
    factories = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        callee = node.func
        if isinstance(callee, ast.Attribute) and callee.attr == "forward":
            callee = callee.value
        stmt = node
        while not isinstance(stmt, ast.stmt):
            stmt = parents[id(stmt)]  # type: ignore[assignment]
        before = _statements_before(stmt, parents, tree)
        scope: ast.AST = stmt
        while not isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef | ast.Module):
            scope = parents[id(scope)]
        if isinstance(callee, ast.Name):
            binding = next(
                (s for s in reversed(before) if isinstance(s, ast.Assign) and callee.id in bound_names(s)),
                None,
            )
            if model.kind == "sequential":
                if callee.id != model.name or binding not in (None, model.node):
                    continue
            elif binding is None or not _is_constructor(binding.value, model, factories):  # type: ignore[attr-defined]
                continue
        elif not (model.kind == "class" and _is_constructor(callee, model, factories)):
            continue
        setup = _slice(node, stmt, before, None if isinstance(scope, ast.Module) else scope)
        if setup is None:
            continue
        if model.kind == "sequential" and _node(model.node) not in setup:
            setup.insert(0, _node(model.node))
        result = Inputs(InputSource.EXAMPLE, setup=setup, model=_node(callee), line=node.lineno)
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            continue
        result.args = [_node(a) for a in node.args]
        result.kwargs = {k.arg: _node(k.value) for k in node.keywords if k.arg}
        return result
    return None


# -- 3. inference from the first layer ------------------------------------------------------------------


def _first_layer(model: Model) -> str | None:
    """The attribute `forward` applies first to its first input (`self.fc1(x)` → "fc1")."""
    forward = model.forward
    if forward is None or len(forward.args.args) < 2:
        return None
    param = forward.args.args[1].arg
    for node in ast.walk(forward):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "self"
            and node.args
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id == param
        ):
            return node.func.attr
    return None


def _needs_init_args(model: Model) -> bool:
    init = model.init
    if init is None:
        return False
    args = init.args
    positional_without_default = len(args.args) - 1 - len(args.defaults)
    return positional_without_default > 0 or any(d is None for d in args.kw_defaults)


def _with_inference(result: Inputs, model: Model) -> Inputs:
    if model.kind == "sequential":
        result.infer_from = ""  # the Sequential's first entry
        return result
    if model.forward is None:
        return Inputs(
            InputSource.NONE, line=result.line,
            reason=f"{model.name} has no `forward` yet: there is nothing to trace",
        )  # fmt: skip
    result.infer_from = _first_layer(model) or ""  # the trace child follows forward's data flow from here
    result.source = InputSource.INFER if result.source == InputSource.NONE else result.source
    return result


def inputs_for(source: Source, model: Model) -> Inputs:
    found = from_directive(source, model) or from_example(source, model)
    if found is not None:
        return found
    how = "add `# shapelens: x=(8, 3, 32, 32)` (your input's shape) above the class or its forward"
    if model.kind == "class" and _needs_init_args(model):
        return Inputs(
            InputSource.NONE,
            reason=f"no input is known for {model.name} and its constructor needs arguments: "
            f"add `# shapelens: init(...), x=(...)` above the class, or an example call in the file",
        )
    if model.kind == "sequential":
        return _with_inference(Inputs(InputSource.INFER, setup=[_node(model.node)], model={"code": model.name}), model)
    inferred = _with_inference(Inputs(InputSource.NONE, model={"code": f"{model.name}()"}), model)
    if inferred.source == InputSource.NONE:
        inferred.reason = f"no input is known for {model.name}: {how}, or an example call in the file"
    return inferred
