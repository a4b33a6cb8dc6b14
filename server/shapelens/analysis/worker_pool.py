"""Warm trace workers that share one warm-up (`shapelens check --jobs N`): the first worker imports torch and
warms up once, then forks N-1 copies of itself, each serving a pipe pair this process made for it. Separate
workers each paid torch's start-up (2-5 s on a 2-core machine), which made `--jobs 2` slower than one worker.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import IO

from shapelens.analysis.worker_client import TraceWorker, WorkerUnavailable


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
        self.torch_version = hello.get("torch")
        self.cuda_available = bool(hello.get("cuda"))


def start_warm_pool(workers: list[PoolWorker]) -> None:
    """Start `workers[0]` with pipes for the others, which it forks once warm. Raises WorkerUnavailable when
    the first cannot start (no torch: every file then says so); a sibling that fails to come up is left
    unstarted and starts cold on its first trace."""
    first, rest = workers[0], workers[1:]
    theirs: list[tuple[int, int]] = []
    ours: list[tuple[int, int]] = []
    for _ in rest:
        request_read, request_write = os.pipe()
        result_read, result_write = os.pipe()
        theirs.append((request_read, result_write))
        ours.append((request_write, result_read))
    env = dict(os.environ if first.env is None else first.env)
    env["SHAPELENS_WORKER_SIBLINGS"] = ";".join(f"{r},{w}" for r, w in theirs)
    first.env, plain_env = env, first.env
    first.pass_fds = tuple(fd for pair in theirs for fd in pair)
    try:
        first.ensure_started()
    except WorkerUnavailable:
        for fd in (fd for pair in ours for fd in pair):
            os.close(fd)
        raise
    finally:
        first.env, first.pass_fds = plain_env, ()  # a restart of the first worker is a plain one
        for fd in (fd for pair in theirs for fd in pair):
            os.close(fd)
    deadline = time.monotonic() + first.start_timeout
    for worker, (request_write, result_read) in zip(rest, ours, strict=True):
        try:
            worker._attach(os.fdopen(request_write, "w"), os.fdopen(result_read, "r"), deadline)
        except WorkerUnavailable:
            continue
