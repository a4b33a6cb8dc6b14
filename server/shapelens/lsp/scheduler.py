"""When and how a document is traced: after a debounce, one trace at a time through the shared worker, a newer
version superseding (or killing) an older one's trace, in a thread so the event loop keeps answering hover,
code actions and `shutdown`; the results are kept and published when they are still fresh.

The debounce adapts to the document's own trace cost: a wait exists so that a burst of keystrokes does not
start traces that the next keystroke kills, and a trace of 40 ms wastes little when it is killed, so its
document waits about as long as its trace takes (never less than MIN_DEBOUNCE_S, never more than the
`debounceMs` setting, which stays the maximum; a setting over a second is kept as it is: a user holding
traces while typing). An edit after a pause (none in the last PAUSE_S: a number changed, a paste, an undo,
a quick fix) is traced after MIN_DEBOUNCE_S only: should it be the first keystroke of a burst, the second
kills its trace (a SIGKILL of the child, the worker stays warm) and the burst waits as above.

A document opened with no result yet shows its last result from the on-disk results cache at once, marked
cached, until its fresh trace lands and replaces it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import statistics
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from shapelens.analysis import results_cache
from shapelens.analysis.engine import analyze
from shapelens.analysis.worker_client import TraceCancelled
from shapelens.core.findings import FileReport
from shapelens.lsp.configuration import Config
from shapelens.lsp.diagnostics import Diagnostics
from shapelens.lsp.documents import DocState, Documents, path_of
from shapelens.lsp.notify import Notifier
from shapelens.lsp.results import CACHED_NOTE, Results, TraceResult
from shapelens.lsp.static_checks import StaticChecks
from shapelens.lsp.threads import in_thread
from shapelens.lsp.worker_host import WorkerHost

T = TypeVar("T")
log = logging.getLogger("shapelens.lsp")

MIN_DEBOUNCE_S = 0.03  # keystrokes come 30-100 ms apart in a burst: below this every one would start a trace
# A debounceMs up to this is a typing debounce: its maximum, the trace's cost sets the wait. A longer one is a
# user's choice to hold traces while typing (traceNow or a pause traces), and is kept as it is.
ADAPTIVE_UP_TO_S = 1.0
COSTS_KEPT = 5  # the last traces of a document whose cost sets its debounce
PAUSE_S = 0.5  # no edit for this long: the next one is not in a burst (typing runs 100-300 ms a keystroke)


class Scheduler:
    def __init__(
        self,
        config: Config,
        docs: Documents,
        results: Results,
        host: WorkerHost,
        diagnostics: Diagnostics,
        notify: Notifier,
    ) -> None:
        self.config = config
        self.docs = docs
        self.results = results
        self.host = host
        self.diagnostics = diagnostics
        self.notify = notify
        self.static = StaticChecks(docs, diagnostics, notify, self.spawn)
        self.epoch = 0  # bumped when settings make running traces meaningless
        self.shutting_down = False
        self.cache = results_cache.ResultsCache()
        self.costs: dict[str, deque[float]] = {}  # uri -> seconds its last finished traces took
        self.edited_at: dict[str, float] = {}  # uri -> time.monotonic() of its last edit
        self._background: set[asyncio.Future[None]] = set()  # fire-and-forget tasks, kept alive

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run in the background; the set keeps the task alive until it is done."""
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def debounce_s(self, uri: str, now: float | None = None) -> float:
        """How long this edit of `uri` (called once per edit) waits before its trace: MIN_DEBOUNCE_S after a
        pause, else about what its trace costs, within [MIN_DEBOUNCE_S, the debounceMs setting]; the setting
        itself until a trace has been timed."""
        now = time.monotonic() if now is None else now
        last, self.edited_at[uri] = self.edited_at.get(uri), now
        setting = self.config.settings.debounce_ms / 1000
        costs = self.costs.get(uri)
        if not costs or setting > ADAPTIVE_UP_TO_S:
            return setting
        if last is None or now - last >= PAUSE_S:
            return min(setting, MIN_DEBOUNCE_S)
        return min(setting, max(MIN_DEBOUNCE_S, statistics.median(costs)))

    def schedule(self, uri: str, delay_s: float) -> asyncio.Task[None] | None:
        state = self.docs.get(uri)
        if state is None or not self.config.settings.trusted or self.shutting_down:
            return None
        if self.results.get(state.path) is None:
            self.show_cached(uri, state)
        if state.task is not None and not state.in_trace:
            state.task.cancel()  # still waiting out the debounce: superseded
        self.host.cancel_trace_of(uri)  # tracing an older version: kill it, the newer one follows
        state.task = asyncio.ensure_future(self._debounced(uri, delay_s))
        return state.task

    def traced_path(self, uri: str) -> str:
        """The path the trace of the document `uri` is stored under (`Results.get`)."""
        return path_of(uri)

    def retrace_all(self) -> None:
        for state in self.docs:
            self.schedule(state.uri, 0.0)

    def stop(self, state: DocState) -> None:
        """The document closed: drop its pending trace, kill the running one."""
        self.edited_at.pop(state.uri, None)
        if state.task is not None and not state.in_trace:
            state.task.cancel()
        self.host.cancel_trace_of(state.uri)

    def shutdown(self) -> None:
        self.shutting_down = True
        for state in self.docs:
            if state.task is not None and not state.task.done():
                state.task.cancel()
        self.host.close()

    def cache_key(self, state: DocState, source: str) -> results_cache.CacheKey:
        settings = self.config.settings
        python = settings.interpreter
        root = self.docs.root_for(state.path)
        return results_cache.CacheKey(
            state.path, source, root, settings.options(), python, results_cache.torch_version(python)
        )

    def show_cached(self, uri: str, state: DocState) -> None:
        """The document's last results from the on-disk cache, published at once and marked cached (the hover
        and the status say so) until the fresh trace replaces them. Never a stale entry: its key covers the
        text, the options, the interpreter's torch, and the project files the trace entered must be as then."""
        source = self.docs.source(uri)
        if source is None:
            return
        try:
            reports = self.cache.load(self.cache_key(state, source))
        except Exception:  # the cache is an optimisation: never a reason to fail an open
            log.exception("results cache: reading the entry of %s failed", state.path)
            return
        if reports is None:
            return
        static = self.static.refresh(uri)
        version = self.docs.version(uri)
        versions = {s.path: self.docs.version(s.uri) for s in self.docs}
        result = TraceResult(version, reports, frozenset(static.findings if static else ()), versions, cached=True)
        self.diagnostics.publish_paths(self.results.store(state.path, result))
        self.notify.refresh_inlay_hints()
        self.notify.status("idle", f"{os.path.basename(state.path)}: {CACHED_NOTE}", uri=uri)
        log.info("results cache: showing the last results of %s until its trace confirms them", state.path)

    async def _store_in_cache(
        self, key: results_cache.CacheKey, reports: dict[str, FileReport], entered: list[str]
    ) -> None:
        try:
            await in_thread(lambda: self.cache.store(key, reports, entered), "shapelens-cache")
        except Exception:
            log.exception("results cache: storing the results of %s failed", key.path)

    async def _debounced(self, uri: str, delay_s: float) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        await self.config.ready.wait()
        async with self.host.lock:
            state = self.docs.get(uri)
            if state is None or state.task is not asyncio.current_task():
                return  # a newer request for this document is queued behind us
            # Committed: from here a newer version no longer cancels this task, it kills the trace instead
            # (the task must stay to see the worker through; it then finds itself stale and stops).
            state.in_trace = True
            try:
                if await self._trace(uri, state):
                    await self._enrich(uri, state)
            finally:
                state.in_trace = False

    async def _trace(self, uri: str, state: DocState) -> bool:
        """Trace the document and publish; True when the results are fresh (of the current version)."""
        settings = self.config.settings
        if not settings.trusted or self.shutting_down:
            return False
        version = self.docs.version(uri)
        source = self.docs.source(uri)
        if source is None or not self.static.parses(uri):
            return False  # mid-edit syntax error: keep the last good results until it parses again
        static = state.static
        worker = await self.host.ensure()
        if worker is None or self.docs.version(uri) != version or uri not in self.docs:
            return False
        epoch = self.epoch
        options = self.config.settings.options()
        root = self.docs.root_for(state.path)
        versions = {s.path: self.docs.version(s.uri) for s in self.docs}
        outcome, found, elapsed = await self._run_trace(
            uri, version, state.path, lambda: analyze(state.path, source, options, worker, root)
        )
        reports: dict[str, FileReport] = found or {}
        fresh = (
            outcome == "done"
            and epoch == self.epoch
            and self.config.settings.trusted
            and uri in self.docs
            and self.docs.version(uri) == version
        )
        if fresh:
            result = TraceResult(version, reports, frozenset(static.findings if static else ()), versions)
            self.diagnostics.publish_paths(self.results.store(state.path, result))
            self.notify.refresh_inlay_hints()
            self.costs.setdefault(uri, deque(maxlen=COSTS_KEPT)).append(elapsed / 1000)
            key = results_cache.CacheKey(
                state.path, source, root, options, worker.python, results_cache.torch_version(worker.python)
            )
            self.spawn(self._store_in_cache(key, reports, list(worker.entered)))
        self._traced(uri, state.path, version, outcome, elapsed, fresh)
        return fresh

    async def _run_trace(
        self, uri: str, version: int | None, path: str, run: Callable[[], T]
    ) -> tuple[str, T | None, float]:
        """`run` (an analysis) off the event loop with the worker marked busy: its outcome ("done",
        "cancelled", "failed: ..."), its value when done, and the milliseconds it took."""
        self.host.running = (uri, version)
        self.notify.status("tracing", f"tracing {os.path.basename(path)}", uri=uri)
        started = time.perf_counter()
        outcome, value = "done", None
        try:
            value = await in_thread(run, "shapelens-trace")
        except TraceCancelled:
            outcome = "cancelled"
        except Exception as err:
            # An engine bug must not take the editor down: say so in the status and the log, keep going.
            log.exception("trace of %s failed", path)
            outcome = f"failed: {err}"
        finally:
            self.host.running = None
        return outcome, value, (time.perf_counter() - started) * 1000

    def _traced(self, uri: str, path: str, version: int | None, outcome: str, elapsed: float, fresh: bool) -> None:
        """The status and log line of a finished trace. It comes after the results are published, so a client
        that sees "idle" already has the diagnostics of that trace."""
        if outcome.startswith("failed"):
            self.notify.status("error", f"trace {outcome}", elapsed, uri)
        else:
            self.notify.status("idle", f"{os.path.basename(path)}: {outcome} in {elapsed:.0f} ms", elapsed, uri)
        log.info("trace %s v%s: %s in %.0f ms%s", path, version, outcome, elapsed, "" if fresh else " (stale)")

    async def _enrich(self, uri: str, state: DocState) -> None:
        """The same trace again with the flop counter (the layer hover) and, when the hints show them, the
        symbolic pass (#13: named sizes): both cost more than the plain trace, whose hints and diagnostics are
        already out. An edit meanwhile cancels it like any trace (the worker kills the child)."""
        version = self.docs.version(uri)
        source = self.docs.source(uri)
        worker = self.host.worker
        result = self.results.get(state.path)
        if source is None or worker is None or result is None or result.version != version:
            return
        settings = self.config.settings
        symbolic = settings.symbolic == "on"
        options = dataclasses.replace(settings.options(), flops=True, symbolic=symbolic)
        root = self.docs.root_for(state.path)
        self.host.running = (uri, version)
        try:
            reports = await in_thread(lambda: analyze(state.path, source, options, worker, root), "shapelens-enrich")
        except Exception:  # cancelled by an edit, or failed: the hover just shows no FLOPs, the hints numbers
            return
        finally:
            self.host.running = None
        if self.results.get(state.path) is not result or self.docs.version(uri) != version:
            return
        if symbolic:  # the whole result again, with the named sizes: hints, hover and the SL10x sentences
            self.diagnostics.publish_paths(self.results.store(state.path, dataclasses.replace(result, reports=reports)))
            self.notify.refresh_inlay_hints()
            key = results_cache.CacheKey(
                state.path, source, root, settings.options(), worker.python, results_cache.torch_version(worker.python)
            )
            self.spawn(self._store_in_cache(key, reports, list(worker.entered)))
            return
        result.take_flops(reports)
