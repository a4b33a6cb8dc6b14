"""SL011: part of a script was not traced, or nothing in a PyTorch file could be. Never silent: where the trace
of a file's top level (`trace/script_run.py`) had to leave statements out because a name they read is
unknown (a dataset that downloads, a file that is not here), it says which and why, once per file; a file
that imports torch but has neither a model nor any top-level tensor code says that there was nothing to trace.
"""

from __future__ import annotations

import ast

from shapelens.analysis.rules.base import Rule
from shapelens.core.findings import Finding, Severity, Span
from shapelens.core.source import Source

SL011 = Rule(
    code="SL011",
    name="not-traced",
    severity=Severity.INFORMATION,
    summary=(
        "Part of the file's top-level code was not traced, or nothing in the file could be. A statement that "
        "needs what a shape-only trace does not have (a download, a file that is not here, a tensor's values) "
        "leaves the names it binds unknown, and the statements that read them (a training loop over a dataset "
        "that could not be read) are skipped rather than failed: the finding names the first one and the cause. "
        "A PyTorch file with no model and no top-level tensor code says there was nothing to trace. Give the "
        "loop data the trace can build (`torch.randn(...)` tensors) or a `# shapelens:` directive on the model."
    ),
    bad="""\
import torch

data = torch.load("missing-data.pt")
for batch in data:
    flat = batch.flatten(1)
""",
    good="""\
import torch

data = torch.randn(10, 3, 4, 4)
for batch in data:
    flat = batch.flatten(1)
""",
    complete=True,
)

RULES = (SL011,)


def nothing_to_trace(source: Source) -> Finding | None:
    """SL011 at line 1 of a file that imports torch and yet has no model and no top-level tensor code."""
    imports_torch = any(
        (isinstance(n, ast.Import) and any(a.name.split(".")[0] == "torch" for a in n.names))
        or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "torch")
        for n in source.tree.body
    )
    if not imports_torch:
        return None
    first = source.lines[0] if source.lines else ""
    return SL011.finding(
        Span(source.path, 1, 1, 1, max(1, len(first) + 1)),
        "nothing to trace: the file defines no nn.Module and runs no tensor code at its top level, so it has no "
        "shapes to show (a model in it needs a `# shapelens: x=(...)` directive or an example call)",
    )
