"""Shared fixtures: one warm trace worker for the whole session (starting one costs ≈2.5 s), and a helper
that writes a model file and analyses it the way `shapelens check` does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_support import Analyse, analyser
from shapelens.analysis.worker_client import TraceWorker


@pytest.fixture(scope="session")
def worker() -> Iterator[TraceWorker]:
    w = TraceWorker()
    w.ensure_started()
    yield w
    w.close()


@pytest.fixture
def analyse(worker: TraceWorker, tmp_path: Path) -> Analyse:
    """`analyse(source, name="model.py", **options)` → reports keyed by absolute path."""
    return analyser(worker, tmp_path)
