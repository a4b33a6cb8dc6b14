"""Whether a file's top level is a script worth tracing, and what of it may run.

A file that imports torch and does something at its top level beyond defining names (`a = torch.rand(10, 3)`,
`x = fc(a)`, a training loop, an `if __name__ == "__main__":` block) has its top level traced like a `forward`
(`trace/script_run.py`): statement by statement, in source order, the `__main__` block's statements as if
they stood at the top level. The plan sends them as `TracePlan.script` items, `{"node": key}` to run and
`{"node": key, "skip": why}` for a statement that cannot matter for shapes or would do harm (a `print`, a plot,
`input()`, `torch.save`, a file opened for writing, a sleep); the names a skipped statement binds are unknown
to the statements after it. `"inner": true` marks such a statement inside a block (a `print` in a loop):
it is replaced by `pass` where it stands.

Definitions the model trace already ran (`Plan.keep`: imports, classes, functions) are not run again.
"""

from __future__ import annotations

import ast
from typing import Any

from shapelens.core.syntax import node_key

Item = dict[str, Any]

# calls whose statement never runs in a trace: (how the call is written) -> why
_SKIPPED_CALLS = {
    "print": "prints", "input": "waits for input", "breakpoint": "stops in a debugger", "exit": "exits",
    "quit": "exits", "display": "displays", "pprint": "prints", "torch.save": "writes a file",
    "torch.jit.save": "writes a file", "time.sleep": "sleeps", "sleep": "sleeps", "os.system": "runs a command",
    "os.makedirs": "makes a folder", "os.mkdir": "makes a folder", "os.remove": "deletes a file",
    "shutil.rmtree": "deletes files", "urllib.request.urlretrieve": "downloads",
    "torch.hub.download_url_to_file": "downloads",
}  # fmt: skip
# calls on these objects: plotting, logging and progress reporting never change a shape
_SKIPPED_OWNERS = {
    "plt": "plots", "pyplot": "plots", "matplotlib": "plots", "sns": "plots", "seaborn": "plots",
    "wandb": "logs", "mlflow": "logs", "logging": "logs", "logger": "logs", "writer": "logs", "tb": "logs",
    "subprocess": "runs a command", "shutil": "changes files", "pickle": "reads or writes a file",
}  # fmt: skip
# methods that write, show or report whatever object they are called on
_SKIPPED_METHODS = {
    "savefig": "writes a file", "show": "shows a window", "imshow": "plots", "to_csv": "writes a file",
    "write": "writes a file", "writelines": "writes a file", "save_pretrained": "writes files",
    "add_scalar": "logs", "add_image": "logs", "close": "closes a file",
}  # fmt: skip
_WRITE_MODES = ("w", "a", "x", "+")


def _dotted(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.insert(0, node.id)
        return ".".join(parts)
    return None


def _opens_for_writing(call: ast.Call) -> bool:
    if _dotted(call.func) not in ("open", "io.open"):
        return False
    mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and any(c in mode.value for c in _WRITE_MODES)


def skip_reason(call: ast.Call) -> str | None:
    """Why a call never runs in a trace, or None."""
    if _opens_for_writing(call):
        return "writes a file"
    name = _dotted(call.func)
    if name is not None:
        if name in _SKIPPED_CALLS:
            return _SKIPPED_CALLS[name]
        owner = name.split(".")[0]
        if "." in name and owner in _SKIPPED_OWNERS:
            return _SKIPPED_OWNERS[owner]
    if isinstance(call.func, ast.Attribute) and call.func.attr in _SKIPPED_METHODS:
        return _SKIPPED_METHODS[call.func.attr]
    return None


def statement_skip(stmt: ast.stmt) -> str | None:
    """Why one statement (not counting the blocks inside it) never runs: it is such a call, assigns one's
    result, or opens a file for writing in a `with`."""
    value: ast.AST | None = None
    if isinstance(stmt, ast.Expr | ast.Assign | ast.AnnAssign | ast.AugAssign):
        value = stmt.value
    for call in ast.walk(value) if value is not None else ():  # `n = int(input())` as well as `input()`
        if isinstance(call, ast.Call):
            reason = skip_reason(call)
            if reason:
                return reason
    if isinstance(stmt, ast.With):
        for item in stmt.items:
            if isinstance(item.context_expr, ast.Call):
                reason = skip_reason(item.context_expr)
                if reason:
                    return reason
    return None


def _imports_torch(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "torch" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            return True
    return False


def is_main_guard(node: ast.stmt) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _does_something(stmt: ast.stmt) -> bool:
    """More than defining a name from constants: a call, a loop, a block (what makes a file a script)."""
    if isinstance(stmt, _DEFINITIONS):
        return False
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return False  # a docstring
    return any(isinstance(n, ast.Call | ast.BinOp | ast.Subscript) for n in ast.walk(stmt)) or isinstance(
        stmt, ast.For | ast.While | ast.With | ast.If | ast.Try
    )


def top_level(tree: ast.Module) -> list[ast.stmt]:
    """The statements a script runs, in order: the `__main__` block's own statements in its place."""
    out: list[ast.stmt] = []
    for stmt in tree.body:
        out += stmt.body if isinstance(stmt, ast.If) and is_main_guard(stmt) else [stmt]
    return out


def script_items(tree: ast.Module, kept: list[ast.stmt]) -> list[Item]:
    """The `TracePlan.script` items of a file, or [] when its top level is no script worth tracing."""
    statements = top_level(tree)
    if not _imports_torch(tree) or not any(_does_something(s) for s in statements):
        return []
    done = {id(s) for s in kept if isinstance(s, _DEFINITIONS)}
    items: list[Item] = []
    for stmt in statements:
        if id(stmt) in done:
            continue
        reason = statement_skip(stmt)
        if reason:
            items.append({"node": list(node_key(stmt)), "skip": reason})
            continue
        items.append({"node": list(node_key(stmt))})
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue  # a function's own prints and writes run only if it is called, and the sandbox sees them
        for inner in ast.walk(stmt):
            if inner is not stmt and isinstance(inner, ast.stmt) and not isinstance(inner, _DEFINITIONS):
                reason = statement_skip(inner)
                if reason:
                    items.append({"node": list(node_key(inner)), "skip": reason, "inner": True})
    return items
