"""Warm trace workers that share one warm-up (`shapelens check --jobs N`): the first worker imports torch and
warms up once, then forks N-1 copies of itself, each serving a pipe pair this process made for it. Separate
workers each paid torch's start-up (2-5 s on a 2-core machine), which made `--jobs 2` slower than one worker.
Early copies, forked before the slow part of the warm-up (FakeTensorMode, the solver), keep the other cores
busy meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from typing import IO, Any

from shapelens.analysis.worker_client import TraceWorker, WorkerUnavailable
from shapelens.core.wire import PoolSetup, to_wire


class _Forked:
    """The part of `subprocess.Popen` a `TraceWorker` uses, for a worker the first worker forked (not our
    child: the first worker reaps it, and ends it when its own input ends)."""

    def __init__(self, stdin: IO[str], stdout: IO[str]) -> None:
        self.stdin = stdin
        self.stdout = stdout
        # Its own pid, from its hello: it leads no process group, so `TraceWorker.close`'s killpg of it finds
        # nothing (never 0 or -1, which would name our own group or every process)
        self.pid: int | None = None
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self.returncode = 0
        with contextlib.suppress(OSError):
            self.stdout.close()
        return 0

    def kill(self) -> None:
        self.returncode = -9


class PoolWorker(TraceWorker):
    """A worker of a warm pool. Should a forked one die, its next trace starts a fresh (cold) worker of its
    own, as any `TraceWorker` does."""

    @property
    def started(self) -> bool:
        return self._proc is not None

    def tell(self, message: Any) -> bool:
        """One line to the first worker before its hello (its `PoolSetup`); False when it is already gone."""
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(message) + "\n")
            self._proc.stdin.flush()
        except OSError:
            return False
        return True

    def _attach(self, stdin: IO[str], stdout: IO[str], deadline: float) -> None:
        forked = _Forked(stdin, stdout)
        self._proc = forked  # type: ignore[assignment]
        hello = self._read(deadline)
        pid = hello.get("pid") if hello is not None else None
        if hello is None or hello.get("event") != "ready" or not isinstance(pid, int) or pid <= 1:
            self._proc = None
            for stream in (stdin, stdout):
                with contextlib.suppress(OSError):
                    stream.close()
            raise WorkerUnavailable("a forked trace worker did not start")
        forked.pid = pid
        self._hello(hello)


def start_warm_pool(
    workers: list[PoolWorker],
    early: list[PoolWorker],
    setup: Callable[[], PoolSetup | None],
    settled: Callable[[PoolWorker], None] = lambda worker: None,
) -> None:
    """Start `workers[0]` at once (its `import torch` runs while the first files are analysed) with pipes for
    the others, which it forks once warm, and for the `early` ones, which it forks as soon as its meta
    kernels are warm (they trace what needs no more meanwhile). `setup` waits for the first plan and says
    what to warm and whether to fork the early ones (None: nothing to trace, no pool). `settled` hears of
    each worker whose start is over, whether it came up or not. Raises WorkerUnavailable when the first
    cannot start (no torch: every file then says so); a sibling that fails to come up is left unstarted."""
    first, late = workers[0], workers[1:]
    early_pipes, late_pipes = _pipes(len(early)), _pipes(len(late))
    theirs = [fd for pipes in (early_pipes, late_pipes) for theirs, _ in pipes for fd in theirs]
    env = dict(os.environ if first.env is None else first.env)
    env["SHAPELENS_WORKER_EARLY"] = ";".join(f"{r},{w}" for (r, w), _ in early_pipes)
    env["SHAPELENS_WORKER_SIBLINGS"] = ";".join(f"{r},{w}" for (r, w), _ in late_pipes)
    env["SHAPELENS_POOL_SETUP"] = "1"
    first.env, plain_env = env, first.env
    first.pass_fds = tuple(theirs)
    try:
        first.spawn()
    except WorkerUnavailable:
        _close(early_pipes + late_pipes)
        raise
    finally:
        first.env, first.pass_fds = plain_env, ()  # a restart of the first worker is a plain one
        for fd in theirs:
            os.close(fd)
    chosen = setup()
    if chosen is None:
        _close(early_pipes + late_pipes)
        first.close()
        return
    # gone already (no torch): its hello says why, below
    if not first.tell(to_wire(chosen)) or not chosen.early:
        _close(early_pipes)
        early, early_pipes = [], []
    deadline = time.monotonic() + first.start_timeout
    _attach(early, early_pipes, deadline, settled)
    try:
        first.ensure_started()
    except WorkerUnavailable:
        _close(late_pipes)
        raise
    settled(first)
    _attach(late, late_pipes, deadline, settled)


Pipes = list[tuple[tuple[int, int], tuple[int, int]]]  # per sibling: (its request in, result out), (ours)


def _pipes(count: int) -> Pipes:
    pipes = []
    for _ in range(count):
        request_read, request_write = os.pipe()
        result_read, result_write = os.pipe()
        pipes.append(((request_read, result_write), (request_write, result_read)))
    return pipes


def _close(pipes: Pipes) -> None:
    for _, ours in pipes:
        for fd in ours:
            os.close(fd)


def _attach(workers: list[PoolWorker], pipes: Pipes, deadline: float, settled: Callable[[PoolWorker], None]) -> None:
    for worker, (_, (request_write, result_read)) in zip(workers, pipes, strict=True):
        with contextlib.suppress(WorkerUnavailable):
            worker._attach(os.fdopen(request_write, "w"), os.fdopen(result_read, "r"), deadline)
        settled(worker)
