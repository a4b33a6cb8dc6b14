"""How each model gets its constructor arguments and its inputs. First match wins:

1. a directive comment on or above the class (above or below its decorators), its `forward`, or the
   Sequential's assignment: `# shapelens: x=(8, 3, 32, 32), ids=int64(2, 40)`, `hidden=((2, 4, 64), (2, 4,
   64))` (a tuple of tensors), `mask=None`, and `# shapelens: init(10, hidden=20)`;
2. an example call in the file — module level, under `if __name__ == "__main__":` or inside a function —
   such as `model = Net(10); out = model(torch.randn(4, 3, 32, 32))`, of which only the backward slice runs
   (the constants, the constructor call, the tensor factories), never anything else;
3. inferred in the trace child from the built model along `forward`'s data flow, the constructor built by
   `analysis.constructors` when it needs arguments (a real call in the workspace, a config class's defaults,
   small values chosen by name: each named in `Inputs.synthesized`);
4. otherwise nothing runs and SL003 says why (no `forward`; a constructor argument nothing could supply).

Items are positions of nodes in the file (so that code runs with its real line numbers) or generated code.
"""

from __future__ import annotations

import ast
import builtins
import os
import re
import weakref
from dataclasses import dataclass, field
from typing import Any

from shapelens.analysis.constructors import constructors_for
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
Item = dict[str, Any]  # {"node": [...]} | {"code": "..."} | {"tensor": [dims], "dtype": "int64"} | {"tuple": [...]}


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
    alternatives: list[Item] = field(default_factory=list)  # more constructors, tried when `model` fails
    synthesized: list[str] = field(default_factory=list)  # what was made up for the constructor, for the hover
    guessed: bool = False  # the constructor's arguments were made up: a failure is no proof against the code


def _node(node: ast.AST) -> Item:
    """A node by its full range (start alone is ambiguous: `Net(10)(x)`, `Net(10)` and `Net` share it)."""
    return {"node": [node.lineno, node.col_offset, node.end_lineno, node.end_col_offset]}  # type: ignore[attr-defined]


# -- 1. directives --------------------------------------------------------------------------------------


def _directive_lines(source: Source, node: ast.AST) -> list[tuple[int, str]]:
    """Directive comments on the node's first line, among its decorators (`@auto_docstring`, the directive,
    then `class`), or in the comment block right above them."""
    lines = source.lines
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])  # type: ignore[attr-defined]
    found = []
    number = node.lineno  # type: ignore[attr-defined]
    if number <= len(lines) and (m := DIRECTIVE.search(lines[number - 1])):
        found.append((number, m.group(1)))
    for number in range(node.lineno - 1, first - 1, -1):  # type: ignore[attr-defined]
        if lines[number - 1].strip().startswith("#") and (m := DIRECTIVE.search(lines[number - 1])):
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
    return init, _sized(inputs)


# a named dim's size when the directive gives none (`x=(B, 3, H, W)`): the trace's usual example sizes
NAMED_SIZES = {"B": 2, "N": 2, "T": 8, "S": 8, "L": 32, "H": 32, "W": 32, "D": 16}


def _named_size(name: str) -> int:
    lower = name.lower()
    if "batch" in lower:
        return 2
    if any(word in lower for word in ("seq", "len", "time", "token")):
        return 8
    return NAMED_SIZES.get(name[0], 8)


def _sized(inputs: dict[str, Item]) -> dict[str, Item]:
    """Named dims (#13) get their sizes: a keyword naming one (`x=(B, 3, H, W), H=64`) is that size, not an
    input; else NAMED_SIZES. The tensor item keeps the names (`"names": ["B", None, "H", "W"]`)."""
    named = {n for item in inputs.values() for n in _names_in(item)}
    sizes = {k: int(v["code"]) for k, v in inputs.items() if k in named and v.get("code", "").isdigit()}
    for item in _tensor_items(list(inputs.values())):
        if "names" in item:
            pairs = zip(item["tensor"], item["names"], strict=True)
            item["tensor"] = [sizes.get(n, _named_size(n)) if n else d for d, n in pairs]
    return {k: v for k, v in inputs.items() if k not in sizes}


def _tensor_items(items: list[Item]) -> list[Item]:
    out = []
    for item in items:
        out += _tensor_items(item["tuple"]) if "tuple" in item else ([item] if "tensor" in item else [])
    return out


def _names_in(item: Item) -> set[str]:
    return {n for t in _tensor_items([item]) for n in t.get("names", []) if n}


def _dims(node: ast.expr) -> list[int]:
    value = ast.literal_eval(node)
    dims = [value] if isinstance(value, int) else list(value)
    if not all(isinstance(d, int) and d >= 0 for d in dims):
        raise DirectiveError(f"dimensions must be non-negative integers: `{ast.unparse(node)}`")
    return dims


def _named_dims(nodes: list[ast.expr]) -> tuple[list[int], list[str | None]] | None:
    """`(B, 3, H, W)`: sizes (0 where named, filled in by `_sized`) and names; None when no dim is named. A
    name is capitalised (`B`, `T`, `Height`) or has an underscore (`batch_size`): `(8, three)` is a typo."""
    names_ = [n.id for n in nodes if isinstance(n, ast.Name)]
    if not names_ or not all(n[0].isupper() or "_" in n for n in names_):
        return None
    dims: list[int] = []
    names: list[str | None] = []
    for node in nodes:
        if isinstance(node, ast.Name):
            dims.append(0)
            names.append(node.id)
        else:
            dims += _dims(node)
            names.append(None)
    return dims, names


def _directive_value(node: ast.expr) -> Item:
    """`(2, 3)` a tensor's dims; `((2, 4, 64), (2, 4, 64))` a tuple of tensors (nested as written);
    `int64(2, 40)` a tensor of that dtype; `None` or another literal as itself."""
    try:
        elements = node.elts if isinstance(node, ast.Tuple | ast.List) else None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in DTYPES:
            elements = node.args
        named = _named_dims(elements) if elements else None
        if named is not None:  # `(B, 3, H, W)`, `int64(B, T)`: named dims (#13)
            dtype = node.func.id if isinstance(node, ast.Call) else "float32"  # type: ignore[attr-defined]
            return {"tensor": named[0], "dtype": dtype, "names": named[1]}
        if isinstance(node, ast.Tuple | ast.List) and node.elts and not all(_is_int(e) for e in node.elts):
            if any(_is_int(e) for e in node.elts):
                raise DirectiveError(f"cannot read `{ast.unparse(node)}`: mix of sizes and tensors")
            return {"tuple": [_directive_value(e) for e in node.elts]}
        if isinstance(node, ast.Tuple | ast.List):
            return {"tensor": _dims(node), "dtype": "float32"}
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in DTYPES:
            dims = [d for arg in node.args for d in _dims(arg)]
            return {"tensor": dims, "dtype": node.func.id}
        return {"code": repr(ast.literal_eval(node))}
    except DirectiveError:
        raise
    except (ValueError, SyntaxError):
        raise DirectiveError(f"cannot read `{ast.unparse(node)}`: use (dims), int64(dims) or a literal") from None


def _is_int(node: ast.expr) -> bool:
    try:
        return isinstance(ast.literal_eval(node), int)
    except (ValueError, SyntaxError, TypeError):
        return False


def from_directive(source: Source, model: Model, root: str | None = None) -> Inputs | None:
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
    if init is None and _needs_init_args(model):  # the inputs are the user's, the constructor is ours
        built = _constructed(Inputs(InputSource.DIRECTIVE, line=line, kwargs=inputs), model, source, root)
        if built.source == InputSource.NONE:
            return built
        result = built
    else:
        init_args = ast.unparse(init).removeprefix("init") if init else "()"
        result.model = {"code": f"{model.name}{init_args}"}
        result.kwargs = inputs
    return result if inputs else _with_inference(result, model)


# -- 2. example calls -----------------------------------------------------------------------------------


_PARENTS: weakref.WeakKeyDictionary[ast.AST, dict[int, ast.AST]] = weakref.WeakKeyDictionary()


def _parents(tree: ast.AST) -> dict[int, ast.AST]:
    """Each node's parent, by the child's id: one walk per parsed file, shared by the file's models."""
    parents = _PARENTS.get(tree)
    if parents is None:
        parents = _PARENTS[tree] = {}
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


def _header_names(stmt: ast.stmt, parents: dict[int, ast.AST]) -> set[str]:
    """The names the blocks around `stmt` bind in their headers, in its own scope: a `for`'s target
    (`for imgs, _ in loader:`), a `with ... as f`, an `except ... as err`."""
    names: set[str] = set()
    node: ast.AST = stmt
    while (parent := parents.get(id(node))) is not None and not isinstance(
        parent, ast.FunctionDef | ast.AsyncFunctionDef | ast.Module
    ):
        if isinstance(parent, ast.For | ast.AsyncFor):
            names |= {n.id for n in ast.walk(parent.target) if isinstance(n, ast.Name)}
        elif isinstance(parent, ast.With | ast.AsyncWith):
            names |= {n.id for i in parent.items if i.optional_vars for n in ast.walk(i.optional_vars)
                      if isinstance(n, ast.Name)}  # fmt: skip
        elif isinstance(parent, ast.ExceptHandler) and parent.name:
            names.add(parent.name)
        node = parent
    return names


def _slice(
    call: ast.Call,
    stmt: ast.stmt,
    scope_body: list[ast.stmt],
    func: ast.AST | None,
    headers: frozenset[str] | set[str] = frozenset(),
) -> list[Item] | None:
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
    if needed & headers:
        return None  # a loop variable's value (a batch from a data loader) comes only from running the loop
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
        setup = _slice(
            node, stmt, before, None if isinstance(scope, ast.Module) else scope, _header_names(stmt, parents)
        )
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
    """The attribute `forward` applies first to its first input (`self.fc1(x)` → "fc1"), in source order:
    `x = F.max_pool2d(self.conv1(x), 2)` before a later `x = self.fc2(x)`."""
    forward = model.forward
    if forward is None or len(forward.args.args) < 2:
        return None
    param = forward.args.args[1].arg
    calls = [
        node
        for node in ast.walk(forward)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "self"
        and node.args
        and isinstance(node.args[0], ast.Name)
        and node.args[0].id == param
    ]
    first = min(calls, key=lambda n: (n.lineno, n.col_offset), default=None)
    return first.func.attr if first is not None else None  # type: ignore[attr-defined]


def _inherits_forward(model: Model) -> bool:
    """A class without its own `forward` may have one from a base (`nn.Sequential`, a class of the project);
    only a bare `nn.Module` base surely has none."""
    node = model.node
    bases = [ast.unparse(b) for b in node.bases] if isinstance(node, ast.ClassDef) else []
    return any(b not in ("nn.Module", "torch.nn.Module", "Module") for b in bases)


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
    if model.forward is None and not _inherits_forward(model):
        return Inputs(
            InputSource.NONE, line=result.line,
            reason=f"{model.name} has no `forward`: there is nothing to trace, and no input to give it",
        )  # fmt: skip
    result.infer_from = _first_layer(model) or ""  # the trace child follows forward's data flow from here
    result.source = InputSource.INFER if result.source == InputSource.NONE else result.source
    return result


def _constructed(result: Inputs, model: Model, source: Source, root: str | None) -> Inputs:
    """`result` with the constructor `analysis.constructors` found (the first candidate, the others as
    alternatives); NONE with the reason when there is none."""
    if f"{os.sep}site-packages{os.sep}transformers{os.sep}" in os.path.abspath(source.path):
        # transformers' own model files: the child builds each class from its config made small
        # (trace/library.py), in a fraction of a second, instead of the full-size defaults (h4, #9)
        result.model, result.guessed = {"build": model.name}, True
        result.synthesized = ["its config made small: 2 layers, width 64, 2 heads, vocabulary 1000"]
        return result
    found = constructors_for(source, model, root or os.path.dirname(os.path.abspath(source.path)))
    if not found.candidates:
        return Inputs(InputSource.NONE, reason=found.reason, line=result.line)
    first = found.candidates[0]
    result.model = {"code": first.code}
    result.alternatives = found.alternatives(model.name)
    result.synthesized = first.synthesized
    result.guessed = first.guessed
    if result.source == InputSource.NONE and first.source == InputSource.WORKSPACE:
        result.source = InputSource.WORKSPACE
    return result


def inputs_for(source: Source, model: Model, root: str | None = None) -> Inputs:
    found = from_directive(source, model, root) or from_example(source, model)
    if found is not None:
        return found
    if model.kind == "sequential":
        return _with_inference(Inputs(InputSource.INFER, setup=[_node(model.node)], model={"code": model.name}), model)
    if model.forward is None and not _inherits_forward(model):
        return _with_inference(Inputs(InputSource.NONE), model)  # says there is nothing to trace
    built = _constructed(Inputs(InputSource.NONE), model, source, root)
    if built.source == InputSource.NONE and built.reason:
        return built
    return _with_inference(built, model)
