"""Plain-words failure messages for the trace child.

Meta kernels explain badly ("a and b must have same reduction dim"). We find the user line where the
failure happened (the innermost frame in a project file), read the tensors that line names from the
frame's locals, and say what went wrong with their shapes, in the vocabulary of the op the user wrote.
"""

from __future__ import annotations

import ast
import re
import traceback
from types import TracebackType
from typing import Any

import torch
from torch import nn

from shapelens.trace.recording import Recorder, shape_of

# torch's own messages, reworded; each pattern's groups feed its template
_REWORDS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"a and b must have same reduction dim, but got \[(.*?)\] X \[(.*?)\]"),
        "matrix multiply of [{0}] by [{1}]: the inner dimensions differ",
    ),
    (
        re.compile(r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)"),
        "matrix multiply of [{0}, {1}] by [{2}, {3}]: {1} columns cannot meet {2} rows",
    ),
    (
        re.compile(r"shape '\[(.*?)\]' is invalid for input of size (\d+)"),
        "cannot reshape {1} elements into [{0}]",
    ),
    (
        re.compile(r"Sizes of tensors must match except in dimension (\d+)\. Expected size (\d+) but got size (\d+)"),
        "concatenated tensors must match in every dimension except {0}: got {1} and {2}",
    ),
    (
        re.compile(
            r"The size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\) at non-singleton dimension (\d+)"
        ),
        "shapes cannot be broadcast: {0} vs {1} at dimension {2}",
    ),
    (
        re.compile(r"Invalid channel dimensions"),
        "the channel dimension does not match the layer's in_channels",
    ),
]


def reword(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else message
    for pattern, template in _REWORDS:
        match = pattern.search(first)
        if match:
            return template.format(*match.groups())
    return first


def _user_frame(tb: TracebackType | None, recorder: Recorder) -> Any:
    found = None
    while tb is not None:
        if recorder.is_project_file(tb.tb_frame.f_code.co_filename):
            found = tb
        tb = tb.tb_next
    return found


def _statement_source(path: str, line: int, plan: dict[str, Any]) -> str:
    if path == plan["file"]:
        lines = plan["source"].splitlines()
    else:
        try:
            with open(path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except OSError:
            return ""
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def operands(frame: Any, text: str) -> list[dict[str, Any]]:
    """The tensors (and layers) a source line names, with their shapes at the moment it failed."""
    try:
        tree = ast.parse(text.rstrip(":").removeprefix("return ").strip() or "None")
    except SyntaxError:
        return []
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    local = frame.f_locals
    for node in ast.walk(tree):
        name = None
        value: Any = None
        if isinstance(node, ast.Name) and node.id in local and node.id != "self":
            name, value = node.id, local[node.id]
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
            and "self" in local
        ):
            name, value = f"self.{node.attr}", getattr(local["self"], node.attr, None)
        if name is None or name in seen:
            continue
        seen.add(name)
        if isinstance(value, torch.Tensor):
            found.append({"name": name, "shape": shape_of(value), "dtype": str(value.dtype).removeprefix("torch.")})
        elif isinstance(value, nn.Module) and not any(True for _ in value.children()):  # leaf layers only
            found.append({"name": name, "layer": f"{type(value).__name__}({value.extra_repr()})"})
    return found


def failure(kind: str, err: BaseException, plan: dict[str, Any], recorder: Recorder, stage: str) -> dict[str, Any]:
    """The error record of a failed target: kind, message, the user line, and the operands there."""
    tb = _user_frame(err.__traceback__, recorder)
    path, line = (tb.tb_frame.f_code.co_filename, tb.tb_lineno) if tb is not None else (plan["file"], 0)
    if tb is None and recorder.last[0] >= 0:  # e.g. the timer fired inside torch: the last recorded line
        path, line = recorder.files[recorder.last[0]][0], recorder.last[1]
    text = _statement_source(path, line, plan) if line else ""
    ops = operands(tb.tb_frame, text) if tb is not None else []
    if kind == "timeout":
        message = f"trace stopped after {float(plan['timeout']):g} s"
    elif kind == "memory":
        message = f"trace stopped: it needed more than {plan['memory_mb']} MB"
    elif kind == "datadep":
        message = (
            "this line needs a tensor's values, which a shape-only trace does not have, so the shapes after "
            "it stay unknown; trace with real values with `--device cpu` (setting shapelens.device)"
        )
    else:
        detail = reword(str(err)) or type(err).__name__
        message = detail if stage == "forward" else f"{type(err).__name__}: {detail}"
        tensors = [f"{o['name']} {o['shape']}" for o in ops if "shape" in o]
        if tensors and stage == "forward":
            message += f" ({', '.join(tensors)})"
        layers = [f"{o['name']} is {o['layer']}" for o in ops if "layer" in o]
        if layers and stage == "forward":
            message += f"; {'; '.join(layers)}"
    return {
        "kind": kind,
        "stage": stage,
        "message": message,
        "path": path,
        "line": line,
        "operands": ops,
        "exception": type(err).__name__,
        "traceback": "".join(traceback.format_exception(type(err), err, err.__traceback__, limit=-3)),
    }
