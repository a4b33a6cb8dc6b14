"""What the trace child's parts share: the per-run context (the user's module, its AST nodes, the trace
device), the event emitter towards the worker, and the timer that stops user code (never inside the
recorder's bookkeeping)."""

from __future__ import annotations

import json
import os
import signal
import struct
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from shapelens.core.wire import (
    Event,
    TargetResult,
    to_wire,
)
from shapelens.trace.recording import Recorder, in_recorder
from shapelens.trace.sandbox import Sandbox


class TraceTimeout(BaseException):
    """Raised by the timer inside user code; a BaseException so `except Exception` in a model cannot eat it."""


class Emitter:
    def __init__(self, fd: int, progress: Any, token: str) -> None:
        self.fd = fd
        self.progress = progress  # an mmap shared with the worker: (file id, line) of the last statement
        self.token = token  # the worker ignores lines without it (anything user code managed to write)

    def __call__(self, event: dict[str, Any]) -> None:
        data = (json.dumps({"token": self.token, **event}) + "\n").encode()
        while data:
            data = data[os.write(self.fd, data) :]

    def result(self, result: TargetResult) -> None:
        self({"event": Event.TARGET, **to_wire(result)})

    def at(self, file_id: int, line: int) -> None:
        if self.progress is not None:
            struct.pack_into("ii", self.progress, 0, file_id, line)


class Context:
    def __init__(self, module: types.ModuleType, nodes: Any, device: torch.device) -> None:
        self.module = module
        self.nodes = nodes
        self.device = device
        self.sandbox: Sandbox | None = None  # the child's rules (trace/sandbox.py), once installed


@contextmanager
def time_limit(seconds: float, recorder: Recorder) -> Iterator[None]:
    """Raise TraceTimeout in the user's code after `seconds`. Never inside the recorder's bookkeeping: there
    the timeout waits until the statement is recorded (or, in a hook, for a millisecond more)."""

    def stop() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        recorder.expired = None
        raise TraceTimeout

    def expire(signum: int, frame: Any) -> None:
        if in_recorder(frame):
            recorder.expired = stop
            signal.setitimer(signal.ITIMER_REAL, 0.001)
            return
        stop()

    recorder.expired = None
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        recorder.expired = None
