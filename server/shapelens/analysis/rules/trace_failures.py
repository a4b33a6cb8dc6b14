"""The trace failures, SL000-SL010: the file does not parse or is not analysed (SL000, SL006, SL007), the
traced model raised or could not run (SL001, SL002, SL004, SL005, SL008), no input is known (SL003), the
trace refused what the model tried (SL009: a write, a connection, a process), or a trace with a made-up input
failed in a way the guess may cause (SL010, information: a guess never accuses the code).

The trace reports how a model ended as an error kind; `trace_error` maps it to its rule and places it.
SL000 and SL006 are found by `core/source.parse` and SL007 by `shapelens check` (cli/check.py): the ground floor
and the CLI cannot import the rules, so those three are declared here for their docs and examples only.
"""

from __future__ import annotations

import ast
import os
from dataclasses import replace

from shapelens.analysis.plan import Plan
from shapelens.analysis.rules.base import Rule
from shapelens.analysis.rules.scripts import SL011
from shapelens.analysis.rules.sources import Sources
from shapelens.core.findings import Finding, Severity, Span
from shapelens.core.source import Source, span_of
from shapelens.core.wire import ErrorKind, TargetResult, TraceError

SL000 = Rule(
    code="SL000",
    name="syntax-error",
    severity=Severity.ERROR,
    summary=("The file does not parse, so nothing in it can be traced. Earlier results are kept until it parses."),
    bad="x = self.fc(x\n",
    good="x = self.fc(x)\n",
    needs_trace=False,
)
SL001 = Rule(
    code="SL001",
    name="shape-error",
    severity=Severity.ERROR,
    summary=(
        "The traced forward raised a shape error at this line. The message names the operands and their shapes as "
        "they were at that line in the traced example."
    ),
    bad="""\
import torch
import torch.nn as nn


# shapelens: x=(4, 8, 5)
class Net(nn.Module):
    def forward(self, x):
        y = torch.zeros(4, 8, 6)
        return torch.cat([x, y], dim=1)  # [4, 8, 5] and [4, 8, 6]
""",
    good="""\
import torch
import torch.nn as nn


# shapelens: x=(4, 8, 5)
class Net(nn.Module):
    def forward(self, x):
        y = torch.zeros(4, 3, 5)
        return torch.cat([x, y], dim=1)
""",
    complete=True,
)
SL002 = Rule(
    code="SL002",
    name="trace-timeout",
    severity=Severity.WARNING,
    summary=(
        "The trace did not finish within `shapelens.traceTimeout` seconds (default 10) and was stopped; the finding "
        "says at which line. Shapes up to that line are still shown. The same rule reports a recursion without end "
        "(a `forward` that calls itself, at the line that recursed) and a file whose top level did not finish "
        "loading in that time (`loading model.py did not finish in 10 s`, at the line of the file that was running: "
        "a slow import, a `time.sleep` the model's constructor needs)."
    ),
    bad="""\
import torch.nn as nn


# shapelens: x=(2, 8)
class Loop(nn.Module):
    def __init__(self):
        super().__init__()
        self.step = nn.Linear(8, 8)

    def forward(self, x):
        while True:
            x = self.step(x)
""",
    good="""\
import torch.nn as nn


# shapelens: x=(2, 8)
class Loop(nn.Module):
    def __init__(self):
        super().__init__()
        self.step = nn.Linear(8, 8)
        self.steps = 3

    def forward(self, x):
        for _ in range(self.steps):
            x = self.step(x)
        return x
""",
    complete=True,
)
SL003 = Rule(
    code="SL003",
    name="no-input",
    severity=Severity.INFORMATION,
    summary=(
        "This model was not traced, and the message says why: the class has no `forward` (nothing to trace), or "
        "its constructor needs an argument nothing could supply (no default, no config class with defaults found "
        "through its annotation or name, no call of the class in the workspace with literal arguments). Inputs "
        "are otherwise inferred from the model itself. Give the constructor's arguments with `# shapelens: "
        "init(...)` above the class (its inputs too, if you like: `# shapelens: init(encoder), x=(8, 3, 32, 32)`), "
        "or write an example call in the file."
    ),
    bad="""\
import torch.nn as nn


class Head(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.backbone(x))
""",
    good="""\
import torch.nn as nn


# shapelens: init(nn.Linear(4, 8)), x=(2, 4)
class Head(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.backbone(x))
""",
    needs_trace=False,
    complete=True,
)
SL004 = Rule(
    code="SL004",
    name="trace-failed",
    severity=Severity.WARNING,
    summary=(
        "The model could not be traced: building it failed, the trace process crashed, the code called `sys.exit()`, "
        "or it does something the trace cannot follow. The reason is in the message; the editor keeps working."
    ),
    bad="""\
import torch
import torch.nn as nn


# shapelens: x=(4, 8)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)
        self.fc.load_state_dict(torch.load("missing.pt"))

    def forward(self, x):
        return self.fc(x)
""",
    good="""\
import torch
import torch.nn as nn


# shapelens: x=(4, 8)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(x)
""",
    complete=True,
)
SL005 = Rule(
    code="SL005",
    name="trace-memory",
    severity=Severity.WARNING,
    summary=(
        "The trace used more memory than its cap and was stopped (a real-device trace of a large model, usually). "
        "The finding says at which line."
    ),
    bad="""\
import torch.nn as nn


# shapelens: x=(100000, 100000)
class Net(nn.Module):
    def forward(self, x):
        return x * 2  # 40 GB under --device cpu
""",
    good="""\
import torch.nn as nn


# shapelens: x=(8, 1024)
class Net(nn.Module):
    def forward(self, x):
        return x * 2
""",
    complete=True,
)
SL006 = Rule(
    code="SL006",
    name="file-too-large",
    severity=Severity.INFORMATION,
    summary=(
        "The file is over the size Shapelens analyses (1,000,000 characters, or a line of over 20,000): nothing in "
        "it is checked or traced, so the editor stays responsive. Such files are data (a pasted tensor, a generated "
        "table) more often than models; move the data to its own file."
    ),
    bad="WEIGHTS = [0.1, 0.2, ...]  # one line of 10 MB\n",
    good="WEIGHTS = torch.load('weights.pt')\n",
    needs_trace=False,
)
SL007 = Rule(
    code="SL007",
    name="unreadable-file",
    severity=Severity.ERROR,
    summary=(
        "`shapelens check` could not read this file (permission denied, a symbolic link loop, not UTF-8 text). The "
        "other files are still checked; like a syntax error, it fails the check."
    ),
    bad="$ chmod 000 model.py && shapelens check .\n",
    good="$ chmod 644 model.py && shapelens check .\n",
    needs_trace=False,
)
SL008 = Rule(
    code="SL008",
    name="no-forward",
    severity=Severity.INFORMATION,
    summary=(
        "The module's class has no `forward` yet (a file in the middle of being written), so there is nothing to "
        "trace past the place it is called. Its layers are still shown; write `forward` and the shapes follow."
    ),
    bad="""\
import torch.nn as nn


# shapelens: x=(4, 4)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
""",
    good="""\
import torch.nn as nn


# shapelens: x=(4, 4)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)
""",
    complete=True,
)
SL009 = Rule(
    code="SL009",
    name="trace-refused",
    severity=Severity.INFORMATION,
    summary=(
        "The traced code tried something a trace never does, and the trace refused it: writing, deleting, renaming "
        "or chmod-ing a file outside the trace's temporary folder (`torch.save` included), reading a credential file "
        "under the home folder (`~/.ssh`, `~/.aws`, ...), opening a connection or looking up a host (`torch.hub.load`, "
        "a download), starting a process (`subprocess`, `os.system`, `os.fork`), or loading a library with `ctypes`. "
        "The message says what, at the line that tried. Where the model's own code caught the refusal the trace went "
        "on and its shapes are unaffected; otherwise the trace of that model stopped at that line, with the shapes "
        "before it shown. Nothing is wrong with the shapes: keep side effects out of `__init__` and `forward` (or "
        "behind a flag) to trace further."
    ),
    bad="""\
import torch
import torch.nn as nn


# shapelens: x=(4, 8)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        y = self.fc(x)
        torch.save(self.state_dict(), "checkpoint.pt")
        return y
""",
    good="""\
import torch
import torch.nn as nn


# shapelens: x=(4, 8)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(x)


def save(net):
    torch.save(net.state_dict(), "checkpoint.pt")
""",
    complete=True,
)

SL010 = Rule(
    code="SL010",
    name="guess-failed",
    severity=Severity.INFORMATION,
    summary=(
        "The model was traced with an input (or constructor arguments) Shapelens made up, since none was given, "
        "and that trace failed in a way the made-up values may cause. Nothing is claimed about the code: the "
        "message says what was tried. Give the real input with a directive such as `# shapelens: x=(8, 3, 32, 32)` "
        "(and `init(...)` for the constructor) above the class, or an example call in the file; with an input you "
        "gave, a failure is reported as the error it is."
    ),
    bad="""\
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        if x.shape[0] != 3:
            raise ValueError("this model takes batches of exactly 3")
        return self.fc(x)
""",
    good="""\
import torch.nn as nn


# shapelens: x=(3, 4)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        if x.shape[0] != 3:
            raise ValueError("this model takes batches of exactly 3")
        return self.fc(x)
""",
    complete=True,
)

# what the registry (`rules/__init__.py`) collects from this family
RULES = (SL000, SL001, SL002, SL003, SL004, SL005, SL006, SL007, SL008, SL009, SL010)

# the rule for each way a trace can end (`error.kind` in a trace result); an unknown kind is SL004
ERROR_RULES = {
    "shape": SL001, "timeout": SL002, "recursion": SL002, "noinput": SL003, "build": SL004, "crash": SL004,
    "datadep": SL004, "exit": SL004, "memory": SL005, "noforward": SL008, "refused": SL009, "untraced": SL011,
    "guess": SL010,
}  # fmt: skip


def worker_unavailable(path: str, message: str) -> Finding:
    """SL004 when no trace worker could be started (no torch in the interpreter, a crash at start-up)."""
    return SL004.finding(Span(path, 1, 1, 1, 1), f"shapes unavailable: {message}")


def no_input(source: Source, node: ast.AST, reason: str) -> Finding:
    """SL003 at the name of a model that was not traced, saying why."""
    return SL003.finding(name_span(source, node), reason)


def trace_error(error: TraceError, target: TargetResult, plan: Plan, sources: Sources) -> Finding:
    """SL001/SL002/SL004/SL005/SL008/SL009 from the error a traced model ended with, at the line it names."""
    rule = ERROR_RULES.get(error.kind.value, SL004)
    path, line = error.path or plan.source.path, error.line or 0
    if not line or (not os.path.exists(path) and path != plan.source.path):
        model = next((m for m, _ in plan.models if m.name == target.name), None)
        span = name_span(plan.source, model.node) if model else Span(plan.source.path, 1, 1, 1, 1)
        path = plan.source.path
    else:
        span = sources.line_span(path, line)
    message = error.message
    if rule in (SL002, SL005) and line:
        message += f" at line {line}"
    elif error.kind == ErrorKind.CRASH and line:
        message += f" after line {line}"
    if error.note:
        message += f" {error.note}"
    # a file that failed to load fails every model alike: one finding, not one per model
    if rule in (SL001, SL004) and not message.startswith(target.name) and error.stage != "import":
        message = f"{message} (tracing {target.name})"
    return rule.finding(span, message)


def pointer(found: Finding, error: TraceError, target: TargetResult, plan: Plan, sources: Sources) -> Finding | None:
    """When a trace failed inside another project file (its finding is filed there, at its line), the
    checked file's note at the line that led there (the import, the call), else at the model's name."""
    if found.span.path == plan.source.path:
        return None
    if error.caller_line:
        span = sources.line_span(plan.source.path, error.caller_line)
    else:
        model = next((m for m, _ in plan.models if m.name == target.name), None)
        span = name_span(plan.source, model.node) if model else Span(plan.source.path, 1, 1, 1, 1)
    rule = ERROR_RULES.get(error.kind.value, SL004)
    where = f"{os.path.basename(found.span.path)} line {found.span.line}"
    return rule.finding(span, f"{found.code} in {where}: {found.message}", severity=Severity.INFORMATION)


def from_a_guess(found: Finding, target: TargetResult, how: str) -> Finding:
    """A trace failure of a model whose input or constructor was made up (`how`: "inferred", "workspace"): an
    error would accuse the code on the strength of a guess, so it is information (SL010 for a failed
    shape trace), saying what was tried and how to give the input."""
    tried = ", ".join(f"{i.name}: {_dims(i.shape)}" for i in target.inputs)
    said = f" with {tried} ({how})" if tried else f" with a guessed input ({how})"
    if found.code == SL010.code:  # the trace's own account of the guess: add what it does not say
        message = found.message + (f" — traced{said}" if tried else "")
        if "shapelens:" not in message:
            message += "; give the real input: `# shapelens: x=(...)` above the class"
        return replace(found, message=message)
    if found.severity != Severity.ERROR:
        return found
    code = SL010.code if found.code == SL001.code else found.code
    message = f"{found.message} — traced{said}, which may cause it; give the real input: `# shapelens: x=(...)`"
    return replace(found, code=code, severity=Severity.INFORMATION, message=message)


def _dims(shape: list[int | None] | None) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]" if shape is not None else "(not a tensor)"


def name_span(source: Source, node: ast.AST) -> Span:
    """The class name (`class Net` → `Net`), or the assignment target of a Sequential."""
    if isinstance(node, ast.ClassDef):
        text = source.lines[node.lineno - 1]
        start = text.find(node.name, node.col_offset)
        return Span(source.path, node.lineno, start + 1, node.lineno, start + 1 + len(node.name))
    if isinstance(node, ast.Assign):
        return span_of(source.path, node.targets[0])
    return span_of(source.path, node)
