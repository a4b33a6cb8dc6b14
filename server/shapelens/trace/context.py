"""What the trace child's parts share: the per-run context (the user's module, its AST nodes, the trace
device), the event emitter towards the worker, and the timer that stops user code (never inside the
recorder's bookkeeping)."""

from __future__ import annotations

import json
import os
import signal
import struct
import time
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
def time_limit(seconds: float, recorder: Recorder, cpu_seconds: float | None = None) -> Iterator[None]:
    """Raise TraceTimeout in the user's code after `seconds` (and, given `cpu_seconds`, after that much of the
    process's CPU time: a cap that does not move with the machine's load, so what it cuts is the same on every
    run). Never inside the recorder's bookkeeping: there the timeout waits until the statement is recorded (or,
    in a hook, for a millisecond more)."""
    timers = [(signal.ITIMER_REAL, signal.SIGALRM, seconds)]
    if cpu_seconds is not None:
        timers.append((signal.ITIMER_PROF, signal.SIGPROF, cpu_seconds))

    def stop() -> None:
        for timer, _, _ in timers:
            signal.setitimer(timer, 0)
        recorder.expired = None
        raise TraceTimeout

    def expire(signum: int, frame: Any) -> None:
        if in_recorder(frame):
            recorder.expired = stop
            signal.setitimer(signal.ITIMER_REAL, 0.001)
            return
        stop()

    recorder.expired = None
    previous = [(signum, signal.signal(signum, expire)) for _, signum, _ in timers]
    # nested in another limit (the symbolic pass inside its target's): the sooner deadline holds, and the outer
    # limit's timers go on afterwards
    outer = [(timer, signal.getitimer(timer)[0]) for timer, _, _ in timers]
    for (timer, _, after), (_, left) in zip(timers, outer, strict=True):
        signal.setitimer(timer, min(after, left) if left > 0 else after)
    started = time.monotonic()
    try:
        yield
    finally:
        for timer, _, _ in timers:
            signal.setitimer(timer, 0)
        for signum, handler in previous:
            signal.signal(signum, handler)
        recorder.expired = None
        for timer, left in outer:
            if left > 0:
                signal.setitimer(timer, max(left - (time.monotonic() - started), 0.001))
