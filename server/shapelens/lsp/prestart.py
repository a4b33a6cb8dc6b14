"""The trace worker started at the very start of `shapelens serve`, before the server imports pygls and jedi and
before the editor's `initialize`: its `import torch` (seconds) then runs beside the server's own start-up
(about a second) instead of after it. Only when the editor asks for it with SHAPELENS_START_WORKER=1 (the VS
Code client does in a trusted workspace): the worker runs no user code until a trace, but an untrusted
workspace has no use for it. The server adopts it when its settings pick the same interpreter, and ends it
otherwise (another interpreter, or untrusted after all)."""

from __future__ import annotations

import logging
import os
import sys

from shapelens.analysis.worker_client import TraceWorker, WorkerUnavailable

log = logging.getLogger("shapelens.lsp")

_started: TraceWorker | None = None


def start_from_env() -> None:
    global _started
    if os.environ.get("SHAPELENS_START_WORKER") != "1" or _started is not None:
        return
    worker = TraceWorker()
    try:
        worker.spawn()
    except WorkerUnavailable:
        return  # the server starts its own later, and says what is wrong then
    _started = worker


def take(python: str) -> TraceWorker | None:
    """The worker started early, if it runs `python`; otherwise it is ended and None returned."""
    global _started
    worker, _started = _started, None
    if worker is None:
        return None
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        log.info("using the trace worker started with the server")
        return worker
    worker.close()
    return None


def discard() -> None:
    """The workspace is not trusted after all: no trace will run."""
    global _started
    worker, _started = _started, None
    if worker is not None:
        worker.close()
