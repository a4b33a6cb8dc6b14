"""Shared fixtures: one warm trace worker for the whole session (starting one costs ≈2.5 s), and a helper
that writes a model file and analyses it the way `shapelens check` does."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_support import Analyse
from shapelens.analysis.engine import analyze
from shapelens.analysis.worker_client import TraceWorker
from shapelens.core.options import Options


@pytest.fixture(scope="session")
def worker() -> Iterator[TraceWorker]:
    w = TraceWorker()
    w.ensure_started()
    yield w
    w.close()


@pytest.fixture
def analyse(worker: TraceWorker, tmp_path: Path) -> Analyse:
    """`analyse(source, name="model.py", **options)` → reports keyed by absolute path."""

    def run(source: str, name: str = "model.py", **options: object) -> dict[str, Any]:
        path = tmp_path / name
        text = textwrap.dedent(source)
        path.write_text(text)
        return analyze(str(path), text, Options(**options), worker, root=str(tmp_path))  # type: ignore[arg-type]

    return run
