"""Helpers the engine tests import (conftest.py holds the fixtures; a module named `conftest` is ambiguous
once tests/lsp has one too)."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shapelens.analysis.engine import analyze
from shapelens.analysis.worker_client import TraceWorker
from shapelens.core.findings import FileReport
from shapelens.core.options import Options

Analyse = Callable[..., dict[str, FileReport]]


def analyser(worker: TraceWorker, project: Path) -> Analyse:
    """`analyse(source, name="model.py", **options)`: writes the file into `project` and analyses it the way
    `shapelens check` does, with `project` as the root; reports keyed by absolute path."""

    def run(source: str, name: str = "model.py", **options: Any) -> dict[str, FileReport]:
        path = project / name
        text = textwrap.dedent(source)
        path.write_text(text)
        return analyze(str(path), text, Options(**options), worker, root=str(project))

    return run


def write(folder: Path, name: str, source: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return os.fspath(path)


HEALTHY = """
    import torch
    from torch import nn


    class Ok(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            y = self.fc(x)
            return y
"""


def assert_worker_still_serves(analyse: Analyse) -> None:
    """After an attack, the same worker traces a healthy model right (the isolation tests' last step)."""
    [report] = analyse(HEALTHY, name="healthy.py").values()
    assert report.findings == []
    assert [(h.target, h.shape) for h in report.hints] == [("y", (2, 3)), ("return", (2, 3))]
