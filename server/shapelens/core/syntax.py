"""Statement and name helpers over the AST, shared by the planner (which top-level statements a trace may
run) and the trace child (which runs them, and filters the project files it imports the same way).

A statement is addressed across the process boundary by its `node_key` (its four positions).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable


def node_key(node: ast.AST) -> tuple[int | None, ...]:
    return tuple(getattr(node, a, None) for a in ("lineno", "col_offset", "end_lineno", "end_col_offset"))


# -- which top-level statements run -------------------------------------------------------------------


def _is_main_guard(node: ast.stmt) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


def _definitional(node: ast.stmt) -> bool:
    """Imports, defs, classes, assignments and `try`/`if` blocks made only of those (`try: import x`; the
    handlers may also report and raise)."""
    if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return True
    if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.Pass):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return True  # a docstring
    if isinstance(node, ast.Try):
        bodies = [node.body, node.orelse, node.finalbody]
        handled = all(_definitional(s) or _reports(s) for h in node.handlers for s in h.body)
        return handled and all(_definitional(s) for body in bodies for s in body)
    if isinstance(node, ast.If) and not _is_main_guard(node):
        return all(_definitional(s) for s in [*node.body, *node.orelse])
    return False


def _reports(node: ast.stmt) -> bool:
    """What an `except ImportError:` does besides defining: says so and gives up (`print(e)`, `raise`)."""
    return isinstance(node, ast.Raise) or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call))


def bound_names(node: ast.AST) -> set[str]:
    """Names a statement binds at its own scope level (not inside nested defs)."""
    names: set[str] = set()
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    if isinstance(node, ast.Import | ast.ImportFrom):
        for alias in node.names:
            names.add((alias.asname or alias.name).split(".")[0])
        return names
    if isinstance(node, ast.Try | ast.If):  # `try: import x` / `if cond: def f(): ...` bind what their blocks bind
        blocks = [node.body, node.orelse]
        if isinstance(node, ast.Try):
            blocks += [node.finalbody, *(h.body for h in node.handlers)]
        return {name for block in blocks for stmt in block for name in bound_names(stmt)}
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
            names.add(child.id)
    return names


# Method calls that change their object but need what a trace never has (a checkpoint, data, a device) or
# do what a trace never does (train, save, show): never pulled into a slice for the object they change.
NOT_SETUP_METHODS = frozenset(
    {"load_state_dict", "load", "backward", "step", "zero_grad", "fit", "save", "save_pretrained", "run",
     "start", "join", "close", "write", "flush", "show", "savefig", "plot", "cuda", "train", "download"}
)  # fmt: skip


def _root_name(node: ast.expr) -> str | None:
    """`cfg` for `cfg`, `cfg.model.width`, `d["k"]`, `parser.add_argument(...)` chains."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def mutated_names(node: ast.AST) -> set[str]:
    """Names a simple statement changes in place without binding them: a method call on the object
    (`parser.add_argument(...)`, `cfg.update(...)`), an attribute or item assignment (`cfg.width = 16`,
    `d["k"] = v`, `cfg.n += 1`). A slice that reads such a name includes these statements."""
    targets: list[ast.expr] = []
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Attribute):
        if node.value.func.attr in NOT_SETUP_METHODS:
            return set()
        targets = [node.value.func.value]
    elif isinstance(node, ast.Assign):
        targets = [t for t in node.targets if isinstance(t, ast.Attribute | ast.Subscript)]
    elif isinstance(node, ast.AugAssign | ast.AnnAssign) and isinstance(node.target, ast.Attribute | ast.Subscript):
        targets = [node.target]
    names = {_root_name(t) for t in targets}
    return {n for n in names if n is not None}


def _extends_path(node: ast.stmt) -> bool:
    """`sys.path.insert(0, ...)` / `sys.path.append(...)`: what the file's own imports need to run."""
    call = node.value if isinstance(node, ast.Expr) else None
    return (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and isinstance(call.func.value, ast.Attribute)
        and call.func.value.attr == "path"
        and isinstance(call.func.value.value, ast.Name)
        and call.func.value.value.id == "sys"
    )


def loaded_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


# Methods that run without their name appearing in the user's code: torch calls them (`eval()` calls
# `train(False)`, `load_state_dict` calls `_load_from_state_dict`, a subclass of `nn.Linear` has its
# `reset_parameters` called by the base `__init__`), or Python does (every dunder counts as reached too).
IMPLICIT_METHODS = frozenset(
    {"forward", "reset_parameters", "_reset_parameters", "extra_repr", "_init_weights", "init_weights",
     "train", "eval", "to", "cuda", "cpu", "float", "half", "double", "type", "apply", "_apply",
     "state_dict", "load_state_dict", "_save_to_state_dict", "_load_from_state_dict", "named_modules",
     "modules", "children", "named_children", "parameters", "named_parameters", "buffers", "named_buffers",
     "zero_grad", "register_buffer", "register_parameter", "add_module", "_get_name"}
)  # fmt: skip


def _attribute_names(node: ast.AST) -> set[str]:
    return {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def _signature_parts(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.AST]:
    """What Python evaluates when the `def` itself runs: decorators, defaults, annotations."""
    args = node.args
    parts: list[ast.AST] = [*node.decorator_list, *args.defaults, *(d for d in args.kw_defaults if d is not None)]
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, *(a for a in (args.vararg, args.kwarg) if a)]
    parts += [a.annotation for a in every if a.annotation is not None]
    return parts + ([node.returns] if node.returns is not None else [])


class _Reach:
    """What running one top-level statement needs: the names it reads now, and the bodies that may run later
    (a function's body when it is called, a method's when its name is reached as an attribute)."""

    def __init__(self, stmt: ast.stmt) -> None:
        self.now: list[ast.AST] = []
        self.later: list[tuple[str | None, ast.AST]] = []  # (method name or None for a plain def, body)
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            self.now += _signature_parts(stmt)
            self.later += [(None, s) for s in stmt.body]
        elif isinstance(stmt, ast.ClassDef):
            self.now += [*stmt.bases, *stmt.keywords, *stmt.decorator_list]
            for item in stmt.body:  # a class body runs when the class is defined; its methods' bodies do not
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    self.now += _signature_parts(item)
                    self.later += [(item.name, s) for s in item.body]
                else:
                    self.now.append(item)
        else:
            self.now.append(stmt)


def keep_top_level(tree: ast.Module, roots: Iterable[str] | None = None) -> list[ast.stmt]:
    """The top-level statements a trace may execute, in order.

    Only what the traced model reaches runs: starting from `roots` (the traced models' names and the names an
    example call's slice reads), a statement runs when it binds a needed name, and what it reads becomes
    needed, to a fixpoint. A function's body counts once the function is needed; a method's once its name is
    reached as an attribute (`self.block(x)`), or it is one Python or torch calls itself (`__init__`,
    `forward`). So `log = open("results.csv", "w")` read only by `train()` never runs. Bare calls
    (`train(model)`), loops and the `__main__` block never run at all.

    `roots=None` (a project file the trace imports, whose importer's needs are not known here) starts from
    every def and class of the file, as Python's import would define them all.
    """
    modules = {n for s in tree.body if isinstance(s, ast.Import | ast.ImportFrom) for n in bound_names(s)}
    # a statement that changes a needed object in place runs with it (`cfg.width = 16`); one that changes a
    # module (`torch.manual_seed(0)`, `os.environ[...] = ...`) is not the module's definition
    changes = {id(s): mutated_names(s) - modules for s in tree.body if not _definitional(s) or mutated_names(s)}
    candidates = [s for s in tree.body if _definitional(s) or changes.get(id(s)) or _extends_path(s)]
    if roots is None:
        roots = {n for s in candidates if isinstance(s, _DEFS) for n in bound_names(s)}
    needed = set(roots)
    attributes = set(IMPLICIT_METHODS)
    reaches = {id(s): _Reach(s) for s in candidates}
    # Imports always run, as before: an import only an unreached method uses would otherwise be a NameError
    # the day that method runs after all (getattr, a hook); so do `sys.path` changes the imports rely on.
    kept = {id(s) for s in candidates if isinstance(s, ast.Import | ast.ImportFrom) or _extends_path(s)}
    pending: list[tuple[str | None, ast.AST]] = []  # bodies of kept defs not yet reached
    changed = True
    while changed:
        changed = False
        for stmt in candidates:
            if id(stmt) in kept or not ((bound_names(stmt) | changes.get(id(stmt), set())) & needed):
                continue
            kept.add(id(stmt))
            reach = reaches[id(stmt)]
            for node in reach.now:
                needed |= loaded_names(node)
                attributes |= _attribute_names(node)
            pending += reach.later
            changed = True
        for entry in list(pending):
            method, body = entry
            if method is None or method in attributes or (method.startswith("__") and method.endswith("__")):
                pending.remove(entry)
                needed |= loaded_names(body)
                attributes |= _attribute_names(body)
                changed = True
    return [s for s in candidates if id(s) in kept]


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
