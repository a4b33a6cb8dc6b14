"""Plain-words failure messages for the trace child.

Meta kernels explain badly ("a and b must have same reduction dim"). We find the user line where the
failure happened (the innermost frame in a project file), read the tensors that line names from the
frame's locals, and say what went wrong with their shapes, in the vocabulary of the op the user wrote.

Failures that are not shape errors get their own words: a module with no `forward` yet, a recursion
without end (at the line that recursed), `sys.exit()` in user code, and a file that did not finish loading
(at the line of that file that was running).
"""

from __future__ import annotations

import ast
import collections
import dataclasses
import os
import re
import traceback
from types import TracebackType
from typing import Any

import torch
from torch import nn

from shapelens.core.source import read_source_or_empty, split_lines
from shapelens.core.wire import ErrorKind, TraceError, TracePlan
from shapelens.trace.imports import ImportTimeout, MissingImport
from shapelens.trace.recording import MissingForward, Recorder, shape_of
from shapelens.trace.sandbox import refusal_of

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


ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")  # colour and cursor codes some libraries put in messages


def plain(text: str) -> str:
    return ANSI.sub("", text)


def reword(message: str) -> str:
    message = plain(message)
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


def _frames(tb: TracebackType | None) -> list[TracebackType]:
    out = []
    while tb is not None:
        out.append(tb)
        tb = tb.tb_next
    return out


def missing_forward(err: BaseException) -> str | None:
    """The class whose `forward` is not written yet, if that is why `err` was raised: our pre-hook says so,
    or torch's own placeholder raised (a direct `block.forward(x)` call skips the hooks)."""
    if isinstance(err, MissingForward):
        return err.class_name
    frames = _frames(err.__traceback__)
    if isinstance(err, NotImplementedError) and frames and frames[-1].tb_frame.f_code is _UNIMPLEMENTED_CODE:
        owner = frames[-1].tb_frame.f_locals.get("self")
        return type(owner).__name__ if owner is not None else "this module"
    return None


_UNIMPLEMENTED_CODE = nn.Module.forward.__code__


def _recursion(tb: TracebackType | None, recorder: Recorder) -> TracebackType | None:
    """The project line that recursed: the one that appears most often on the stack."""
    frames = [t for t in _frames(tb) if recorder.is_project_file(t.tb_frame.f_code.co_filename)]
    if not frames:
        return None
    counts = collections.Counter((t.tb_frame.f_code.co_filename, t.tb_lineno) for t in frames)
    top = counts.most_common(1)[0][0]
    return next(t for t in frames if (t.tb_frame.f_code.co_filename, t.tb_lineno) == top)


def _exit_words(err: BaseException) -> str:
    if isinstance(err, SystemExit):
        return "called sys.exit()" if err.code is None else f"called sys.exit({err.code!r})"
    return f"raised {type(err).__name__}"


def _refusal_text(err: BaseException) -> str:
    """The sandbox's own message, from the refusal itself or the one it was raised from."""
    return str(refusal_of(err) or err)


def _statement_source(path: str, line: int, plan: TracePlan) -> str:
    lines = split_lines(plan.source if path == plan.file else read_source_or_empty(path))
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


def _missing_import(err: BaseException) -> MissingImport | None:
    """The failed import that `err` comes from: raised by a stand-in, or the cause of what was raised."""
    seen = 0
    current: BaseException | None = err
    while current is not None and seen < 8:
        if isinstance(current, MissingImport):
            return current
        current, seen = current.__cause__ or current.__context__, seen + 1
    return None


def _caller_line(err: BaseException, plan: TracePlan, path: str) -> int | None:
    """When the failure is in another file, the checked file's line that led there (an import, a call)."""
    if path == plan.file:
        return None
    mine = [t for t in _frames(err.__traceback__) if t.tb_frame.f_code.co_filename == plan.file]
    return mine[-1].tb_lineno if mine else None


def failure(kind: str, err: BaseException, plan: TracePlan, recorder: Recorder, stage: str) -> TraceError:
    """The error record of a failed target: kind, message, the user line, and the operands there.
    `note`, where present, follows the line in the finding's message."""
    error = _failure(kind, err, plan, recorder, stage)
    return dataclasses.replace(
        error, message=plain(error.message), caller_line=_caller_line(err, plan, error.path or plan.file)
    )


def _special(err: BaseException, plan: TracePlan, recorder: Recorder) -> TraceError | None:
    """Failures of the loading machinery itself: an import over its budget, a failed import used."""
    if isinstance(err, ImportTimeout):
        running = [
            t
            for t in _frames(err.__cause__.__traceback__ if err.__cause__ else None)
            if t.tb_frame.f_code.co_filename != err.path
        ]
        project = [t for t in running if recorder.is_project_file(t.tb_frame.f_code.co_filename)]
        inner = project[-1] if project else None
        note = (
            f"({os.path.basename(inner.tb_frame.f_code.co_filename)} line {inner.tb_lineno} was running)"
            if inner
            else None
        )
        return TraceError(
            ErrorKind.TIMEOUT,
            str(err.args[0]),
            err.path,
            err.line,
            stage="import",
            note=note,
            exception="ImportTimeout",
        )
    missing = _missing_import(err)
    if missing is not None:
        tb = _frames(err.__traceback__)
        used_at = next((t for t in reversed(tb) if t.tb_frame.f_code.co_filename in (plan.file, missing.path)), None)
        note = (
            f"(used at line {used_at.tb_lineno})" if used_at is not None and used_at.tb_lineno != missing.line else None
        )
        message = plain(f"`{missing.statement}` failed ({missing.reason}) and the traced code uses {missing.used}")
        return TraceError(
            ErrorKind.BUILD, message, missing.path, missing.line, stage="import", note=note, exception="ImportError"
        )
    return None


def _failure(kind: str, err: BaseException, plan: TracePlan, recorder: Recorder, stage: str) -> TraceError:
    special = _special(err, plan, recorder)
    if special is not None:
        return special
    tb = _user_frame(err.__traceback__, recorder)
    note = None
    if kind == "recursion":
        tb = _recursion(err.__traceback__, recorder) or tb
    inner = tb
    if stage == "import" and kind == "timeout":  # "loading model.py ..." is about a line of model.py
        mine = [t for t in _frames(err.__traceback__) if t.tb_frame.f_code.co_filename == plan.file]
        tb = mine[-1] if mine else tb
    path, line = (tb.tb_frame.f_code.co_filename, tb.tb_lineno) if tb is not None else (plan.file, 0)
    if tb is None and recorder.last[0] >= 0 and kind != "noforward":  # e.g. the timer fired inside torch
        path, line = recorder.files[recorder.last[0]][0], recorder.last[1]
    text = _statement_source(path, line, plan) if line else ""
    ops = operands(tb.tb_frame, text) if tb is not None else []
    loading = os.path.basename(plan.file)
    if kind == "timeout" and stage == "import":
        message = f"loading {loading} did not finish in {float(plan.timeout):g} s"
        if inner is not None and inner is not tb:
            where = inner.tb_frame.f_code.co_filename
            note = f"({os.path.basename(where)} line {inner.tb_lineno} was running)"
    elif kind == "timeout":
        message = f"trace stopped after {float(plan.timeout):g} s"
    elif kind == "noforward":
        message = f"{missing_forward(err)} has no forward yet"
    elif kind == "recursion":
        name = tb.tb_frame.f_code.co_name if tb is not None else "forward"
        message = f"{loading if name == '<module>' else name} recursed without end"
        note = "(RecursionError)"
    elif kind == "exit":
        message = f"loading {loading} {_exit_words(err)}" if stage == "import" else f"the model {_exit_words(err)}"
    elif kind == "memory":
        message = f"trace stopped: it needed more than {plan.memory_mb} MB"
    elif kind == "refused":
        refusal = _refusal_text(err)
        message = (
            f"loading {loading}: {refusal}; nothing in it was traced"
            if stage == "import"
            else f"{refusal}; the trace stopped at this line, the shapes before it are shown"
        )
    elif kind == "datadep":
        message = (
            "this line needs a tensor's values, which a shape-only trace does not have, so the shapes after "
            "it stay unknown; trace with real values with `--device cpu` (setting shapelens.device)"
        )
    elif isinstance(err, AssertionError) and not str(err) and text:
        message = f"AssertionError: {text}"  # which assertion: its source, not "AssertionError: AssertionError"
    else:
        detail = reword(str(err)) or type(err).__name__
        message = detail if stage == "forward" else f"{type(err).__name__}: {detail}"
        tensors = [f"{o['name']} {o['shape']}" for o in ops if "shape" in o]
        if tensors and stage == "forward":
            message += f" ({', '.join(tensors)})"
        layers = [f"{o['name']} is {o['layer']}" for o in ops if "layer" in o]
        if layers and stage == "forward":
            message += f"; {'; '.join(layers)}"
    return TraceError(
        kind=ErrorKind(kind),
        message=message,
        path=path,
        line=line,
        stage=stage,
        operands=ops,
        note=note,
        exception=type(err).__name__,
        traceback="".join(traceback.format_exception(type(err), err, err.__traceback__, limit=-3)),
    )
