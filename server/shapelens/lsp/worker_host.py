"""The trace worker as the server holds it: started ahead of the first trace (importing torch takes seconds),
shared by every trace, reset when the settings change what or where it runs, and one message to the user
when it cannot start (static checks go on)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from shapelens.analysis.worker_client import TraceWorker, WorkerUnavailable
from shapelens.lsp import prestart
from shapelens.lsp.configuration import Config
from shapelens.lsp.notify import Notifier
from shapelens.lsp.threads import in_thread

log = logging.getLogger("shapelens.lsp")


class WorkerHost:
    def __init__(self, config: Config, notify: Notifier) -> None:
        self.config = config
        self.notify = notify
        self.worker: TraceWorker | None = None
        self.problem: str | None = None  # why the worker cannot run (until settings change)
        self.torch: str | None = None
        self.lock = asyncio.Lock()  # one trace at a time: the worker is serial anyway
        self.running: tuple[str, int | None] | None = None  # (uri, version) being traced
        self.warned = False
        self._starting: tuple[TraceWorker, asyncio.Future[None]] | None = None

    def cancel_trace_of(self, uri: str) -> None:
        """Kill the trace of `uri` if one runs (a newer version follows, or the document closed)."""
        if self.running is not None and self.running[0] == uri and self.worker is not None:
            self.worker.cancel()

    async def reset(self) -> None:
        """Stop traces and the worker (settings changed what or where it runs)."""
        self.problem = None
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.cancel()
            await in_thread(worker.close, "shapelens-close-worker")
        self.torch = None

    def close(self) -> None:
        """At shutdown: stop what runs, close the worker in the background."""
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.cancel()
            threading.Thread(target=worker.close, name="shapelens-close-worker", daemon=True).start()

    async def warm(self) -> None:
        """Start the worker ahead of the first trace: importing torch takes seconds."""
        if not self.config.settings.trusted:
            return
        async with self.lock:
            await self.ensure()
        if self.notify.state == "starting" and self.worker is not None:
            self.notify.status("idle", f"torch {self.torch}" if self.torch else "")

    async def ensure(self) -> TraceWorker | None:
        """The started worker, or None (and one message to the user) when it cannot run."""
        if self.problem is not None:
            return None
        if self.worker is None:
            interpreter = self.config.settings.interpreter
            self.worker = prestart.take(interpreter) or TraceWorker(python=interpreter)
        worker = self.worker
        if worker.torch_version is not None:
            return worker  # started once; `trace` itself restarts a worker that died
        if self._starting is None or self._starting[0] is not worker:
            self.notify.status("starting", f"starting the trace worker ({worker.python})")
            # Shared and shielded: a caller cancelled while torch imports must not start a second process.
            self._starting = (worker, in_thread(worker.ensure_started, "shapelens-start-worker"))
        start = self._starting[1]
        began = time.perf_counter()
        try:
            await asyncio.shield(start)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            if worker is self.worker and self.problem is None:
                if not isinstance(err, WorkerUnavailable):
                    log.error("trace worker failed to start", exc_info=err)
                self.failed(str(err) or type(err).__name__)
            return None
        finally:
            if start.done() and self._starting is not None and self._starting[1] is start:
                self._starting = None
        if worker is not self.worker:  # settings replaced it while it started
            await in_thread(worker.close, "shapelens-close-worker")
            return None
        self.torch = worker.torch_version
        log.info("trace worker ready after %.0f ms (torch %s)", (time.perf_counter() - began) * 1000, self.torch)
        return worker

    def failed(self, problem: str) -> None:
        self.problem = problem
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.close()
        log.warning("trace worker unavailable: %s", problem)
        self.notify.status("error", problem)
        if self.warned:
            return
        self.warned = True  # once per server lifetime: the status item keeps saying it
        interpreter = self.config.settings.interpreter
        if "torch" in problem.lower():
            message = (
                f"Shapelens cannot trace models: PyTorch is not importable in {interpreter} ({problem}). "
                f"Install it there (`{interpreter} -m pip install torch`) or point `shapelens.interpreter` "
                "at a Python that has it. Static checks keep working."
            )
        else:
            message = (
                f"Shapelens cannot trace models with {interpreter}: {problem}. "
                "Check `shapelens.interpreter`. Static checks keep working."
            )
        self.notify.show_warning(message)
