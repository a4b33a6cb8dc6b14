"""The editor/CLI side of the trace worker: starts `python -m shapelens.trace.worker` in the user's
interpreter, sends it plans, reads results, and cancels a running trace by killing its child.

This process never imports torch: a missing or broken torch becomes a `WorkerUnavailable` with a message
that says what to do, and the caller keeps its static findings.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Protocol

from shapelens.core.wire import TracePlan, TraceResult, from_wire, to_wire

# Seconds for the worker to say it is ready: a cold `import torch` takes 2-5 s here, a slow disk much more.
# An interpreter that never answers gets a clear message instead of "starting" forever.
START_TIMEOUT_S = float(os.environ.get("SHAPELENS_WORKER_START_TIMEOUT", "120"))


class WorkerUnavailable(Exception):
    """The worker cannot run traces (no torch in that interpreter, or it failed to start)."""


class TraceCancelled(Exception):
    """The trace was cancelled by `TraceWorker.cancel` (a newer version of the document superseded it)."""


class Tracer(Protocol):
    """What the analysis needs of a worker: a plan's trace (a `TraceWorker`, or `check --jobs`'s pool)."""

    def trace(self, plan: TracePlan) -> TraceResult: ...


class TraceWorker:
    """One warm worker process. `trace` is blocking and serialised; call it from a thread in async code.

    `cancel()` may be called from any thread: it kills the child running the current trace, and the
    pending `trace` call raises `TraceCancelled`.
    """

    def __init__(self, python: str | None = None, env: dict[str, str] | None = None) -> None:
        self.python = python or sys.executable
        self.env = env
        self.start_timeout = START_TIMEOUT_S
        self.torch_version: str | None = None
        self.cuda_available = False
        self.warm: frozenset[str] = frozenset()  # the parts of core/warm.py's warm-up it had run when it started
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()  # one trace at a time
        self._child_pid: int | None = None
        self._cancelled = False
        self._next_id = 0
        self._problem: str | None = None
        self._hello_pending = False  # spawned, its "ready" not read yet
        self._closed = False  # `close` was called: a trace does not start it again
        self.pass_fds: tuple[int, ...] = ()  # descriptors the worker inherits (a warm pool's sibling pipes)
        self.entered: list[str] = []  # the project files the last trace entered (the results cache's key)

    # -- life cycle ---------------------------------------------------------------------------------------

    def ensure_started(self) -> None:
        """Start the worker if it is not running (again, after `close`), and wait until it is ready; raises
        WorkerUnavailable with the reason."""
        self._closed = False
        self._ensure()

    def _ensure(self) -> None:
        if self._proc is not None and self._proc.poll() is None and not self._hello_pending:
            return
        self.spawn()
        self._hello_pending = False
        hello = self._read(deadline=time.monotonic() + self.start_timeout)
        if hello is None or hello.get("event") != "ready":
            if hello is None and self._proc is not None and self._proc.poll() is None:
                problem = (
                    f"the trace worker ({self.python}) did not start within {self.start_timeout:g} s; "
                    "is it a Python with torch installed? (setting shapelens.interpreter)"
                )
            else:
                problem = (hello or {}).get("message") or "the trace worker exited during start-up"
            self._problem = problem
            self._end()
            raise WorkerUnavailable(problem)
        self._hello(hello)

    def _hello(self, hello: dict[str, Any]) -> None:
        self.torch_version = hello.get("torch")
        self.cuda_available = bool(hello.get("cuda"))
        self.warm = frozenset(hello.get("warm") or ())

    def spawn(self) -> None:
        """Start the worker process without waiting for it: its `import torch` runs while this process goes on
        (the language server's own start-up); `ensure_started` then waits for its hello."""
        if self._proc is not None and self._proc.poll() is None:
            return
        env = dict(os.environ if self.env is None else self.env)
        # The worker imports shapelens from wherever this process found it (a .vsix bundles it).
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")
        # `-m` puts the current folder first on sys.path: started from a workspace, its `argparse.py` or
        # `jedi.py` would run inside the worker. So the worker starts in our own folder, and Python 3.11+
        # is told not to prepend any folder at all; the trace child adds the project's folders itself.
        env["PYTHONSAFEPATH"] = "1"
        try:
            self._proc = subprocess.Popen(
                [self.python, "-m", "shapelens.trace.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=None,  # the worker's stderr is ours: the editor's log
                text=True,
                env=env,
                cwd=package_root,
                start_new_session=True,  # a Ctrl+C in a terminal reaches us, not the worker mid-trace
                pass_fds=self.pass_fds,
            )
        except OSError as err:
            raise WorkerUnavailable(f"cannot start {self.python}: {err}") from err
        self._hello_pending = True

    def close(self) -> None:
        """End the worker: it exits at the end of its input; one that does not (hung, or no worker at all) is
        killed with its whole process group, so nothing it started outlives it. A trace running meanwhile (in
        another thread) ends with WorkerUnavailable; it does not start the worker again."""
        self._closed = True
        self._end()

    def _end(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
            if self._hello_pending:  # still importing torch: nothing to finish, no reason to wait for it
                raise subprocess.TimeoutExpired(proc.args, 0)
            proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own session (start_new_session): pgid == pid

    # -- traces -------------------------------------------------------------------------------------------

    def trace(self, plan: TracePlan) -> TraceResult:
        """Run one plan; returns the worker's result."""
        with self._lock:
            self._cancelled = False
            for attempt in (1, 2):
                if self._closed:
                    raise WorkerUnavailable("the trace worker was closed")
                self._ensure()
                try:
                    return self._trace_once(plan)
                except BrokenPipeError:
                    # The worker itself died (it should not: children do the work); start a fresh one once.
                    self._end()
                    if attempt == 2:
                        raise WorkerUnavailable("the trace worker stopped unexpectedly") from None
            raise AssertionError("unreachable")

    def _trace_once(self, plan: TracePlan) -> TraceResult:
        assert self._proc is not None and self._proc.stdin is not None
        self._next_id += 1
        request_id = self._next_id
        self._proc.stdin.write(json.dumps({"id": request_id, "plan": to_wire(plan)}) + "\n")
        self._proc.stdin.flush()
        while True:
            message = self._read()
            if message is None:
                raise BrokenPipeError
            if message.get("id") != request_id:
                continue
            event = message.get("event")
            if event == "started":
                self._child_pid = int(message["pid"])
                if self._cancelled:
                    self._kill_child()
            elif event == "result":
                self._child_pid = None
                if self._cancelled:
                    raise TraceCancelled
                result = from_wire(TraceResult, message["result"])
                self.entered = list(result.files)
                return result

    def cancel(self) -> None:
        self._cancelled = True
        self._kill_child()

    def _kill_child(self) -> None:
        pid = self._child_pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):  # it already ended
            os.kill(pid, signal.SIGKILL)

    def _read(self, deadline: float | None = None) -> dict[str, Any] | None:
        """The worker's next message; None at its end of output, or when `deadline` (monotonic) passes first."""
        proc = self._proc  # `close()` from another thread (shutdown) may drop it meanwhile
        assert proc is not None and proc.stdout is not None
        while True:
            if deadline is not None:
                ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    return None
            try:
                line = proc.stdout.readline()
            except (OSError, ValueError):  # closed under us
                return None
            if not line:
                return None
            try:
                message: dict[str, Any] = json.loads(line)
                return message
            except json.JSONDecodeError:
                # user code printed to stdout inside the worker before we could redirect it; skip it
                continue
