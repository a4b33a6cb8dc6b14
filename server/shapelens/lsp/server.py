"""`shapelens serve`: the language server (pygls 2) over stdio.

The server holds state (open documents, the last trace of each, the warm trace worker, settings) on a
`LanguageServer` subclass; the handlers at the bottom are thin glue that call it. Every shape, finding and
fix comes from `analysis.check` (`static_report` at once, `analyze` after a debounce, in a thread so the
event loop keeps answering hover, code actions and `shutdown` while a model is traced).

Custom protocol the VS Code client relies on:
- notification `shapelens/status` {state, message, elapsedMs, uri, torch}, state one of
  starting | idle | tracing | error | untrusted;
- command `shapelens.traceNow` [uri]: trace that document now, skipping the debounce.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from shapelens import __version__
from shapelens.analysis import edits as edits_mod
from shapelens.analysis import outline as outline_mod
from shapelens.analysis import suppress
from shapelens.analysis.bindings import hint_for_word, layers_by_attribute
from shapelens.analysis.engine import analyze, static_report
from shapelens.analysis.worker_client import TraceCancelled, TraceWorker, WorkerUnavailable
from shapelens.core.findings import Edit, FileReport, Finding, Hint, LayerInfo
from shapelens.lsp import convert
from shapelens.lsp.settings import SECTION, Settings, describe, parse_settings
from shapelens.lsp.shift import Change, shift_finding, shift_report

log = logging.getLogger("shapelens.lsp")

STATUS = "shapelens/status"
TRACE_NOW = "shapelens.traceNow"
FIX_ALL_KIND = "source.fixAll.shapelens"
SYNTAX_ERROR = "SL000"
STATIC_INTERVAL_S = 0.05
LARGE_DOCUMENT_CHARS = 100_000  # static checks of larger documents run off the event loop
CONFIG_TIMEOUT_S = 5.0  # a client that never answers workspace/configuration must not stall start-up

T = TypeVar("T")


def _in_thread(fn: Callable[[], T], name: str) -> asyncio.Future[T]:
    """Run blocking work in a daemon thread. Unlike the default executor, a daemon thread never holds up
    the process's exit: a model that hangs cannot delay `exit` (its child is killed separately)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        try:
            result = fn()
        except BaseException as err:  # handed over to the awaiting coroutine
            error: BaseException | None = err
            result = None
        else:
            error = None
        with contextlib.suppress(RuntimeError):  # the loop closed while we worked (server exiting)
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future


@dataclass
class TraceResult:
    """What one `analyze` of a document produced, per path, and against which texts."""

    version: int | None
    reports: dict[str, FileReport]
    static: frozenset[Finding]  # the traced text's static findings (already published separately)
    versions: dict[str, int | None]  # path -> open document version the trace saw (fix freshness)


@dataclass
class DocState:
    uri: str
    path: str
    static: FileReport | None = None
    static_version: int | None = None
    static_pending: bool = False
    static_running: int | None = None  # the version whose static check runs in a thread (large documents)
    static_at: float = 0.0  # when the last coalesced static check ran (time.monotonic)
    task: asyncio.Task[None] | None = None
    in_trace: bool = False
    outline_version: int | None = None
    outline: outline_mod.Outline | None = None


class ShapelensServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("shapelens", __version__)
        self.settings = Settings()
        self.init_settings = Settings()  # from initializationOptions: what workspace/configuration overlays
        self.workspace_trusted = True  # False when the editor says the workspace is untrusted (final)
        self.docs: dict[str, DocState] = {}
        self.traces: dict[str, TraceResult] = {}  # by the traced document's path
        self.worker: TraceWorker | None = None
        self.worker_problem: str | None = None  # why the worker cannot run (until settings change)
        self.torch: str | None = None
        self.trace_lock = asyncio.Lock()  # one trace at a time: the worker is serial anyway
        self.running: tuple[str, int | None] | None = None  # (uri, version) being traced
        self.epoch = 0  # bumped when settings make running traces meaningless
        self.published: set[str] = set()  # uris we published diagnostics for (to clear them later)
        self.warned_worker = False
        self.shutting_down = False
        self.shutdown_requested = False  # `exit` without `shutdown` first exits with status 1 (LSP spec)
        self.status_state: str | None = None
        self._starting: tuple[TraceWorker, asyncio.Future[None]] | None = None
        # Traces wait for the first workspace/configuration answer: it may say the workspace is untrusted.
        self.ready = asyncio.Event()
        self._background: set[asyncio.Future[None]] = set()  # fire-and-forget tasks, kept alive

    # -- helpers ------------------------------------------------------------------------------------------

    @property
    def encoding(self) -> str:
        try:
            chosen = self.server_capabilities.position_encoding
        except AttributeError:  # before initialize
            chosen = None
        return _kind(chosen) if chosen else convert.UTF16

    def report_server_error(self, error: Exception, source: Any) -> None:
        # pygls' default pops up a message for every out-of-band error; the log is the right place.
        log.error("server error (%s): %s", getattr(source, "__name__", source), error)

    def path_of(self, uri: str) -> str:
        return os.path.abspath(to_fs_path(uri) or uri)

    def uri_of(self, path: str) -> str:
        for state in self.docs.values():
            if state.path == path:
                return state.uri  # the client's own spelling of the uri
        return from_fs_path(path) or path

    def doc_version(self, uri: str) -> int | None:
        try:
            return self.workspace.get_text_document(uri).version
        except Exception:
            return None

    def source_of(self, uri: str) -> str | None:
        """An open document's text, or the file on disk; None if neither exists (deleted under us)."""
        try:
            return self.workspace.get_text_document(uri).source
        except (OSError, UnicodeDecodeError):
            return None

    def text_for(self, path: str) -> convert.Text | None:
        source = self.source_of(self.uri_of(path))
        return None if source is None else convert.Text.of(source, self.encoding)

    def texts(self) -> Callable[[str], convert.Text | None]:
        """`text_for` memoised for one request: a publication converts many ranges of the same files."""
        cache: dict[str, convert.Text | None] = {}

        def text(path: str) -> convert.Text | None:
            if path not in cache:
                cache[path] = self.text_for(path)
            return cache[path]

        return text

    def root_for(self, path: str) -> str:
        """The workspace folder holding the file (the project root a trace puts on sys.path)."""
        best: str | None = None
        folders = [f.uri for f in self.workspace.folders.values()]
        if self.workspace.root_uri:
            folders.append(self.workspace.root_uri)
        for uri in folders:
            folder = self.path_of(uri)
            if (path + os.sep).startswith(folder.rstrip(os.sep) + os.sep) and len(folder) > len(best or ""):
                best = folder
        return best or os.path.dirname(path)

    def status(self, state: str, message: str = "", elapsed_ms: float | None = None, uri: str | None = None) -> None:
        self.status_state = state
        params = {
            "state": state,
            "message": message,
            "elapsedMs": None if elapsed_ms is None else round(elapsed_ms, 1),
            "uri": uri,
            "torch": self.torch,
        }
        try:
            self.protocol.notify(STATUS, params)
        except Exception as err:  # a closed pipe during exit
            log.debug("status not sent: %s", err)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run in the background; the set keeps the task alive until it is done."""
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def log_warning(self, message: str) -> None:
        log.warning("%s", message)
        with contextlib.suppress(Exception):  # no client to tell (exiting): the log has it
            self.window_log_message(types.LogMessageParams(types.MessageType.Warning, message))

    # -- settings ----------------------------------------------------------------------------------------

    def apply_initialization_options(self, raw: Any) -> None:
        if isinstance(raw, dict) and "workspaceTrusted" in raw:
            # The editor's own word on the workspace (VS Code's Restricted Mode): final for this process, no
            # setting can raise it (the client restarts the server when trust is granted). Only `true` trusts.
            self.workspace_trusted = raw["workspaceTrusted"] is True
        if isinstance(raw, dict) and isinstance(raw.get("settings"), dict):
            raw = raw["settings"]  # some clients nest them under "settings"
        settings, warnings = parse_settings(raw)
        for warning in warnings:
            self.log_warning(warning)
        self.init_settings = self.settings = self.within_trust(settings)
        log.info("settings: %s", describe(self.settings))

    def within_trust(self, settings: Settings) -> Settings:
        return (
            settings if self.workspace_trusted or not settings.trusted else dataclasses.replace(settings, trusted=False)
        )

    async def pull_configuration(self) -> Settings | None:
        caps = self.client_capabilities.workspace
        if caps is None or not caps.configuration:
            return None
        params = types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
        try:
            result = await asyncio.wait_for(self.workspace_configuration_async(params), CONFIG_TIMEOUT_S)
        except Exception as err:
            log.warning("workspace/configuration failed: %s", err)
            return None
        raw = result[0] if result else None
        settings, warnings = parse_settings(raw, self.init_settings)
        for warning in warnings:
            self.log_warning(warning)
        return settings

    async def apply_settings(self, new: Settings) -> None:
        new = self.within_trust(new)
        old, self.settings = self.settings, new
        if old == new:
            return
        log.info("settings: %s", describe(new))
        if old.trusted != new.trusted or old.interpreter != new.interpreter:
            await self.reset_worker()
            if not new.trusted:
                # Untrusted from now on: forget everything the user's code produced, keep static findings.
                changed = self.forget_traces()
                self.publish_paths(changed | {s.path for s in self.docs.values()})
                self.refresh_inlay_hints()
                self.status("untrusted", "workspace not trusted: static checks only, no code runs")
                return
            self.spawn(self.warm_worker())
            self.retrace_all()
        elif (old.device, old.trace_timeout) != (new.device, new.trace_timeout):
            self.epoch += 1
            self.retrace_all()
        if (old.inlay_hints_enabled, old.layer_shapes, old.show_dtype) != (
            new.inlay_hints_enabled,
            new.layer_shapes,
            new.show_dtype,
        ):
            self.refresh_inlay_hints()

    # -- the worker --------------------------------------------------------------------------------------

    async def reset_worker(self) -> None:
        """Stop traces and the worker (settings changed what or where it runs)."""
        self.epoch += 1
        self.worker_problem = None
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.cancel()
            await _in_thread(worker.close, "shapelens-close-worker")
        self.torch = None

    async def warm_worker(self) -> None:
        """Start the worker ahead of the first trace: importing torch takes seconds."""
        if not self.settings.trusted:
            return
        async with self.trace_lock:
            await self.ensure_worker()
        if self.status_state == "starting" and self.worker is not None:
            self.status("idle", f"torch {self.torch}" if self.torch else "")

    async def ensure_worker(self) -> TraceWorker | None:
        """The started worker, or None (and one message to the user) when it cannot run."""
        if self.worker_problem is not None:
            return None
        if self.worker is None:
            self.worker = TraceWorker(python=self.settings.interpreter)
        worker = self.worker
        if worker.torch_version is not None:
            return worker  # started once; `trace` itself restarts a worker that died
        if self._starting is None or self._starting[0] is not worker:
            self.status("starting", f"starting the trace worker ({worker.python})")
            # Shared and shielded: a caller cancelled while torch imports must not start a second process.
            self._starting = (worker, _in_thread(worker.ensure_started, "shapelens-start-worker"))
        start = self._starting[1]
        began = time.perf_counter()
        try:
            await asyncio.shield(start)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            if worker is self.worker and self.worker_problem is None:
                if not isinstance(err, WorkerUnavailable):
                    log.error("trace worker failed to start", exc_info=err)
                self.worker_failed(str(err) or type(err).__name__)
            return None
        finally:
            if start.done() and self._starting is not None and self._starting[1] is start:
                self._starting = None
        if worker is not self.worker:  # settings replaced it while it started
            await _in_thread(worker.close, "shapelens-close-worker")
            return None
        self.torch = worker.torch_version
        log.info("trace worker ready after %.0f ms (torch %s)", (time.perf_counter() - began) * 1000, self.torch)
        return worker

    def worker_failed(self, problem: str) -> None:
        self.worker_problem = problem
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.close()
        log.warning("trace worker unavailable: %s", problem)
        self.status("error", problem)
        if self.warned_worker:
            return
        self.warned_worker = True  # once per server lifetime: the status item keeps saying it
        interpreter = self.settings.interpreter
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
        self.window_show_message(types.ShowMessageParams(types.MessageType.Warning, message))

    # -- documents -----------------------------------------------------------------------------------------

    def opened(self, uri: str) -> None:
        state = self.docs.get(uri)
        if state is None:
            state = self.docs[uri] = DocState(uri, self.path_of(uri))
        self.refresh_static(uri)
        self.schedule_trace(uri, 0.0)

    def changed(self, uri: str, changes: Iterable[types.TextDocumentContentChangeEvent]) -> None:
        state = self.docs.get(uri)
        if state is None:
            self.opened(uri)
            return
        # Clients ask for inlay hints again after their own edits, so moving the results needs no refresh.
        for change in changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                self.shift_results(state.path, Change(change.range, change.text))
        # Static findings at once for a keystroke, at most every STATIC_INTERVAL_S during a burst (each check
        # and its publication cost ~2 ms; a thousand queued edits must not delay the hover behind them).
        if not state.static_pending:
            state.static_pending = True
            delay = max(0.0, state.static_at + STATIC_INTERVAL_S - time.monotonic())
            asyncio.get_running_loop().call_later(delay, self._static_soon, uri)
        self.schedule_trace(uri, self.settings.debounce_ms / 1000)

    def _static_soon(self, uri: str) -> None:
        state = self.docs.get(uri)
        if state is None:
            return
        state.static_pending = False
        state.static_at = time.monotonic()
        self.refresh_static(uri)

    def saved(self, uri: str) -> None:
        state = self.docs.get(uri)
        if state is None:
            return
        self.refresh_static(uri)
        if self.traces.get(state.path) is None or self.traces[state.path].version != self.doc_version(uri):
            self.schedule_trace(uri, 0.0)
        # Other open models whose last trace entered this file (a block they import) see the new code too.
        for other in self.docs.values():
            result = self.traces.get(other.path)
            if other.uri != uri and result is not None and state.path in result.reports:
                self.schedule_trace(other.uri, 0.0)

    def closed(self, uri: str) -> None:
        state = self.docs.pop(uri, None)
        if state is None:
            return
        if state.task is not None and not state.in_trace:
            state.task.cancel()
        if self.running is not None and self.running[0] == uri and self.worker is not None:
            self.worker.cancel()
        result = self.traces.pop(state.path, None)
        paths = {state.path} | (set(result.reports) if result else set())
        self.publish_paths(paths)

    def refresh_static(self, uri: str) -> FileReport | None:
        """The static report of the document's current text (cached per version), published with it."""
        state = self.docs.get(uri)
        if state is None:
            return None
        version = self.doc_version(uri)
        if state.static is not None and state.static_version == version:
            return state.static
        source = self.source_of(uri)
        if source is None:
            return state.static
        if len(source) > LARGE_DOCUMENT_CHARS:
            # Parsing and checking a large file takes a good part of a second: in a thread, so hover and
            # the other documents keep answering; the last report stands until the new one is published.
            if state.static_running != version:
                state.static_running = version
                self.spawn(self._static_in_thread(uri, state, version, source))
            return state.static
        try:
            report = static_report(state.path, source)
        except Exception as err:
            report = self._static_failed(uri, state.path, err)
        self._set_static(state, version, report)
        return state.static

    async def _static_in_thread(self, uri: str, state: DocState, version: int | None, source: str) -> None:
        try:
            report = await _in_thread(lambda: static_report(state.path, source), "shapelens-static")
        except Exception as err:
            report = self._static_failed(uri, state.path, err)
        if state.static_running == version:
            state.static_running = None
        if self.docs.get(uri) is state and self.doc_version(uri) == version:
            self._set_static(state, version, report)

    def _static_failed(self, uri: str, path: str, err: Exception) -> FileReport:
        log.error("static checks failed on %s", path, exc_info=err)
        self.status("error", f"static checks failed: {err}", uri=uri)
        return FileReport(path)

    def _set_static(self, state: DocState, version: int | None, report: FileReport) -> None:
        state.static, state.static_version = report, version
        self.publish(state.path)

    def parses(self, uri: str) -> bool:
        report = self.refresh_static(uri)
        return report is None or all(f.code != SYNTAX_ERROR for f in report.findings)

    def shift_results(self, path: str, change: Change) -> None:
        for source, result in list(self.traces.items()):
            if path in result.reports:
                reports = dict(result.reports)
                reports[path] = shift_report(reports[path], path, change)
                static = result.static
                if source == path:
                    shifted = (shift_finding(f, path, change) for f in static)
                    static = frozenset(f for f in shifted if f is not None)
                self.traces[source] = TraceResult(result.version, reports, static, result.versions)

    def forget_traces(self) -> set[str]:
        paths: set[str] = set()
        for result in self.traces.values():
            paths |= set(result.reports)
        self.traces.clear()
        return paths

    # -- traces ------------------------------------------------------------------------------------------

    def schedule_trace(self, uri: str, delay_s: float) -> asyncio.Task[None] | None:
        state = self.docs.get(uri)
        if state is None or not self.settings.trusted or self.shutting_down:
            return None
        if state.task is not None and not state.in_trace:
            state.task.cancel()  # still waiting out the debounce: superseded
        if self.running is not None and self.running[0] == uri and self.worker is not None:
            self.worker.cancel()  # tracing an older version: kill it, the newer one follows
        state.task = asyncio.ensure_future(self._debounced_trace(uri, delay_s))
        return state.task

    def retrace_all(self) -> None:
        for uri in list(self.docs):
            self.schedule_trace(uri, 0.0)

    async def _debounced_trace(self, uri: str, delay_s: float) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        await self.ready.wait()
        async with self.trace_lock:
            state = self.docs.get(uri)
            if state is None or state.task is not asyncio.current_task():
                return  # a newer request for this document is queued behind us
            # Committed: from here a newer version no longer cancels this task, it kills the trace instead
            # (the task must stay to see the worker through; it then finds itself stale and stops).
            state.in_trace = True
            try:
                if await self._trace(uri, state):
                    await self._count_flops(uri, state)
            finally:
                state.in_trace = False

    async def _trace(self, uri: str, state: DocState) -> bool:
        """Trace the document and publish; True when the results are fresh (of the current version)."""
        if not self.settings.trusted or self.shutting_down:
            return False
        version = self.doc_version(uri)
        source = self.source_of(uri)
        if source is None or not self.parses(uri):
            return False  # mid-edit syntax error: keep the last good results until it parses again
        static = state.static
        worker = await self.ensure_worker()
        if worker is None or self.doc_version(uri) != version or uri not in self.docs:
            return False
        epoch = self.epoch
        options = self.settings.options()
        root = self.root_for(state.path)
        versions = {s.path: self.doc_version(s.uri) for s in self.docs.values()}
        self.running = (uri, version)
        self.status("tracing", f"tracing {os.path.basename(state.path)}", uri=uri)
        started = time.perf_counter()
        outcome = "done"
        reports: dict[str, FileReport] = {}
        try:
            reports = await _in_thread(lambda: analyze(state.path, source, options, worker, root), "shapelens-trace")
        except TraceCancelled:
            outcome = "cancelled"
        except Exception as err:
            # An engine bug must not take the editor down: say so in the status and the log, keep going.
            log.exception("trace of %s failed", state.path)
            outcome = f"failed: {err}"
        finally:
            self.running = None
        elapsed = (time.perf_counter() - started) * 1000
        fresh = (
            outcome == "done"
            and epoch == self.epoch
            and self.settings.trusted
            and uri in self.docs
            and self.doc_version(uri) == version
        )
        if fresh:
            previous = self.traces.get(state.path)
            self.traces[state.path] = TraceResult(
                version, reports, frozenset(static.findings if static else ()), versions
            )
            self.publish_paths(set(reports) | (set(previous.reports) if previous else set()) | {state.path})
            self.refresh_inlay_hints()
        # The status comes last, so a client that sees "idle" already has the diagnostics of that trace.
        if outcome.startswith("failed"):
            self.status("error", f"trace {outcome}", elapsed, uri)
        else:
            self.status("idle", f"{os.path.basename(state.path)}: {outcome} in {elapsed:.0f} ms", elapsed, uri)
        stale = "" if fresh else " (stale)"
        log.info("trace %s v%s: %s in %.0f ms%s", state.path, version, outcome, elapsed, stale)
        return fresh

    async def _count_flops(self, uri: str, state: DocState) -> None:
        """The same trace again with the flop counter, for the layer hover only: the hints and diagnostics
        are already out. An edit meanwhile cancels it like any trace (the worker kills the child)."""
        version = self.doc_version(uri)
        source = self.source_of(uri)
        worker = self.worker
        result = self.traces.get(state.path)
        if source is None or worker is None or result is None or result.version != version:
            return
        options = dataclasses.replace(self.settings.options(), flops=True)
        root = self.root_for(state.path)
        self.running = (uri, version)
        try:
            reports = await _in_thread(lambda: analyze(state.path, source, options, worker, root), "shapelens-flops")
        except Exception:  # cancelled by an edit, or failed: the hover just shows no FLOPs
            return
        finally:
            self.running = None
        if self.traces.get(state.path) is not result or self.doc_version(uri) != version:
            return
        counted = {(x.model, x.name, x.span): x.flops for r in reports.values() for x in r.layers}
        for report in result.reports.values():
            for layer in report.layers:
                layer.flops = counted.get((layer.model, layer.name, layer.span), layer.flops)

    def refresh_inlay_hints(self) -> None:
        caps = self.client_capabilities.workspace
        if caps is None or caps.inlay_hint is None or not caps.inlay_hint.refresh_support:
            return
        try:
            future = self.workspace_inlay_hint_refresh(None)
        except Exception as err:
            log.debug("inlay hint refresh not sent: %s", err)
            return

        def done(fut: Any) -> None:
            if not fut.cancelled() and fut.exception() is not None:
                log.debug("inlay hint refresh failed: %s", fut.exception())

        future.add_done_callback(done)

    # -- what we know about a path ---------------------------------------------------------------------

    def trace_reports(self, path: str) -> list[tuple[str, TraceResult, FileReport]]:
        return [(src, r, r.reports[path]) for src, r in self.traces.items() if path in r.reports]

    def hints_for(self, path: str) -> list[Hint]:
        return convert.unique_hints(h for _, _, report in self.trace_reports(path) for h in report.hints)

    def layers_for(self, path: str) -> list[LayerInfo]:
        seen: set[tuple[object, ...]] = set()
        out = []
        for _, _, report in self.trace_reports(path):
            for layer in report.layers:
                key = (layer.model, layer.name, layer.span)
                if key not in seen:
                    seen.add(key)
                    out.append(layer)
        return out

    def findings_for(self, path: str) -> list[tuple[Finding, int | None, bool]]:
        """(finding, the version its fixes were made for, whether its fixes fit the current text)."""
        uri = self.uri_of(path)
        current = self.doc_version(uri) if uri in self.docs else None
        out: list[tuple[Finding, int | None, bool]] = []
        seen: set[Finding] = set()
        state = self.docs.get(uri)
        if state is not None and state.static is not None:
            for finding in state.static.findings:
                seen.add(finding)
                out.append((finding, state.static_version, state.static_version == current))
        for source, result, report in self.trace_reports(path):
            made_for = result.versions.get(path)
            for finding in report.findings:
                if finding in seen or (source == path and finding in result.static):
                    continue  # static findings of the traced text are published from the static report
                seen.add(finding)
                out.append((finding, made_for, made_for == current))
        return out

    def publish(self, path: str) -> None:
        uri = self.uri_of(path)
        text_for = self.texts()
        diagnostics = [
            convert.diagnostic(f, text_for, self.uri_of, version if fresh else None)
            for f, version, fresh in self.findings_for(path)
        ]
        if not diagnostics and uri not in self.published and uri not in self.docs:
            return  # a closed file we never reported on: nothing to clear

        if diagnostics:
            self.published.add(uri)
        else:
            self.published.discard(uri)
        version = self.doc_version(uri) if uri in self.docs else None
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=version)
        )

    def publish_paths(self, paths: Iterable[str]) -> None:
        for path in sorted(set(paths)):
            self.publish(path)

    # -- requests ----------------------------------------------------------------------------------------

    def inlay_hints(self, uri: str, rng: types.Range) -> list[types.InlayHint]:
        if not self.settings.inlay_hints_enabled or not self.settings.trusted:
            return []
        path = self.path_of(uri)
        source = self.source_of(uri)
        if source is None:
            return []
        return convert.inlay_hints(
            self.hints_for(path),
            self.layers_for(path),
            convert.Text.of(source, self.encoding),
            rng,
            layer_shapes=self.settings.layer_shapes,
            show_dtype=self.settings.show_dtype,
        )

    def outline_of(self, uri: str, source: str) -> outline_mod.Outline | None:
        state = self.docs.get(uri)
        version = self.doc_version(uri)
        if state is not None and state.outline_version == version and state.outline is not None:
            return state.outline
        found = outline_mod.outline(self.path_of(uri), source)
        if state is not None and found is not None:
            state.outline, state.outline_version = found, version
        return found if found is not None else (state.outline if state else None)

    def hover(self, uri: str, position: types.Position) -> types.Hover | None:
        source = self.source_of(uri)
        if source is None or not self.settings.trusted:
            return None
        path = self.path_of(uri)
        text = convert.Text.of(source, self.encoding)
        if not 0 <= position.line < len(text.lines):
            return None
        char = text.char_column(position)
        line = position.line + 1
        word = outline_mod.word_at(text.lines[position.line], char)
        layers = self.layers_for(path)
        outline = self.outline_of(uri, source)
        markdown: str | None = None
        if word is not None and word.self_attr:
            found = layers_by_attribute(layers, outline, word.text, line)
            if found:
                markdown = convert.layer_markdown(found)
        if markdown is None:
            inside = [x for x in layers if convert.contains(x.span, line, char + 1)]
            if inside:
                # The innermost call: a Sequential's span contains its entries' spans.
                inner = min(inside, key=lambda x: (x.span.end_line - x.span.line, x.span.end_column - x.span.column))
                group = [x for x in inside if x.span == inner.span]
                markdown = convert.layer_markdown(group)
        if markdown is None and word is not None:
            hint = hint_for_word(self.hints_for(path), outline, word, line)
            if hint is not None:
                markdown = convert.variable_markdown(hint)
        if markdown is None or word is None:
            return None if markdown is None else types.Hover(types.MarkupContent(types.MarkupKind.Markdown, markdown))
        rng = types.Range(
            types.Position(position.line, convert.char_to_unit(text.lines[position.line], word.start, self.encoding)),
            types.Position(position.line, convert.char_to_unit(text.lines[position.line], word.end, self.encoding)),
        )
        return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, markdown), range=rng)

    def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction]:
        uri = params.text_document.uri
        source = self.source_of(uri)
        if source is None:
            return []
        path = self.path_of(uri)
        text = convert.Text.of(source, self.encoding)
        only = params.context.only
        kinds = [_kind(k) for k in only] if only is not None else None
        want_quickfix = kinds is None or any(k.startswith("quickfix") for k in kinds)
        want_fix_all = kinds is None or any(FIX_ALL_KIND.startswith(k) for k in kinds)
        first = params.range.start.line + 1
        last = params.range.end.line + 1
        current = self.findings_for(path)
        text_for = self.texts()
        actions: list[types.CodeAction] = []
        if want_quickfix:
            suppressed: set[tuple[int, str]] = set()
            for finding, _, fresh in current:
                if not (first <= finding.span.line <= last or finding.span.line <= first <= finding.span.end_line):
                    continue
                diag = self._matching_diagnostic(params, finding, text, text_for)
                if fresh:
                    for fix in finding.fixes:
                        actions.append(
                            types.CodeAction(
                                title=fix.title,
                                kind=types.CodeActionKind.QuickFix,
                                diagnostics=[diag],
                                is_preferred=fix.safe,
                                edit=types.WorkspaceEdit(changes=convert.fix_edits(fix, text_for, self.uri_of)),
                            )
                        )
                key = (finding.span.line, finding.code)
                if key in suppressed or finding.code == SYNTAX_ERROR:
                    continue
                suppressed.add(key)
                try:
                    edit = suppress.suppression_edit(source, path, finding.span.line, finding.code)
                except Exception:
                    log.exception("no suppression edit for %s", finding.code)
                    continue
                actions.append(
                    types.CodeAction(
                        title=f"Ignore {finding.code} on this line (# shapelens: ignore[{finding.code}])",
                        kind=types.CodeActionKind.QuickFix,
                        diagnostics=[diag],
                        edit=types.WorkspaceEdit(
                            changes={uri: [convert.text_edit(edit.span, edit.new_text, text_for)]}
                        ),
                    )
                )
        if want_fix_all:
            fix_all = self.fix_all(path, [(f, fresh) for f, _, fresh in current])
            if fix_all is not None:
                actions.append(fix_all)
        return actions

    def _matching_diagnostic(
        self,
        params: types.CodeActionParams,
        finding: Finding,
        text: convert.Text,
        text_for: Callable[[str], convert.Text | None],
    ) -> types.Diagnostic:
        wanted = text.range(finding.span)
        for diag in params.context.diagnostics:
            if diag.source == convert.SOURCE and diag.code == finding.code and diag.range == wanted:
                return diag
        return convert.diagnostic(finding, text_for, self.uri_of, None)

    def fix_all(self, path: str, findings: list[tuple[Finding, bool]]) -> types.CodeAction | None:
        """Every safe fix whose edits fit the current text, applied together (`source.fixAll.shapelens`)."""
        by_path: dict[str, list[Edit]] = {}
        for finding, fresh in findings:
            safe = [fix for fix in finding.fixes if fix.safe]
            if fresh and safe:
                for edit in safe[0].edits:
                    by_path.setdefault(edit.span.path, []).append(edit)
        changes: dict[str, list[types.TextEdit]] = {}
        for edit_path, file_edits in by_path.items():
            source = self.source_of(self.uri_of(edit_path))
            if source is None:
                continue
            new_text, applied = edits_mod.apply_edits(source, file_edits)
            if applied and new_text != source:
                changes[self.uri_of(edit_path)] = [minimal_edit(source, new_text, self.encoding)]
        if not changes:
            return None
        return types.CodeAction(
            title="Shapelens: apply all safe fixes",
            kind=FIX_ALL_KIND,
            edit=types.WorkspaceEdit(changes=changes),
        )

    async def trace_now(self, uri: str) -> dict[str, Any]:
        """`shapelens.traceNow`: trace the document now and answer when done (or superseded)."""
        if uri not in self.docs:
            if self.source_of(uri) is None:
                return {"traced": False, "reason": "no such document"}
            self.docs[uri] = DocState(uri, self.path_of(uri))
        if not self.settings.trusted:
            self.status("untrusted", "workspace not trusted: static checks only, no code runs", uri=uri)
            return {"traced": False, "reason": "untrusted"}
        self.worker_problem = None  # an explicit request retries a worker that failed to start
        task = self.schedule_trace(uri, 0.0)
        if task is not None:
            await asyncio.wait([task])
        result = self.traces.get(self.path_of(uri))
        traced = result is not None and result.version == self.doc_version(uri)
        return {"traced": traced, "version": self.doc_version(uri)}

    def exit(self) -> None:
        """`exit`: pygls then leaves its loop, but its stdin reader thread stays blocked until the client closes
        the pipe, and not every client does. Make sure the process ends shortly whatever the client does."""
        log.debug("exit")
        self.shutdown()
        code = 0 if self.shutdown_requested else 1
        timer = threading.Timer(EXIT_GRACE_S, _hard_exit, (code,))
        timer.daemon = True
        timer.start()

    def shutdown(self) -> None:
        """Answer `shutdown` at once: cancel what runs, close the worker in the background."""
        self.shutting_down = True
        for state in self.docs.values():
            if state.task is not None and not state.task.done():
                state.task.cancel()
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.cancel()
            threading.Thread(target=worker.close, name="shapelens-close-worker", daemon=True).start()


EXIT_GRACE_S = 1.0


def _hard_exit(code: int) -> None:
    log.info("exit: the client kept stdin open; exiting now")
    logging.shutdown()
    os._exit(code)


def _kind(kind: object) -> str:
    return str(getattr(kind, "value", kind))


def minimal_edit(old: str, new: str, encoding: str) -> types.TextEdit:
    """One edit replacing only the part that differs (a whole-document replace would move the cursor)."""
    start = 0
    limit = min(len(old), len(new))
    while start < limit and old[start] == new[start]:
        start += 1
    end_old, end_new = len(old), len(new)
    while end_old > start and end_new > start and old[end_old - 1] == new[end_new - 1]:
        end_old -= 1
        end_new -= 1
    text = convert.Text.of(old, encoding)

    def position(offset: int) -> types.Position:
        before = old[:offset]
        line = convert.count_line_breaks(before)
        column = len(convert.split_lines(before)[-1])
        return types.Position(line, convert.char_to_unit(text.lines[line], column, encoding))

    return types.TextEdit(types.Range(position(start), position(end_old)), new[start:end_new])


# -- handlers: thin glue -----------------------------------------------------------------------------------


def create_server() -> ShapelensServer:
    server = ShapelensServer()

    @server.feature(types.INITIALIZE)
    def initialize(ls: ShapelensServer, params: types.InitializeParams) -> None:
        ls.apply_initialization_options(params.initialization_options)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: ShapelensServer, params: types.InitializedParams) -> None:
        try:
            pulled = await ls.pull_configuration()
            if pulled is not None:
                await ls.apply_settings(pulled)
        finally:
            ls.ready.set()
        await _register_configuration(ls)
        if ls.settings.trusted:
            await ls.warm_worker()
        else:
            ls.status("untrusted", "workspace not trusted: static checks only, no code runs")

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: ShapelensServer, params: types.DidChangeConfigurationParams) -> None:
        pulled = await ls.pull_configuration()
        if pulled is None:
            raw = params.settings
            if isinstance(raw, dict) and SECTION in raw:
                raw = raw[SECTION]
            pulled, warnings = parse_settings(raw, ls.settings)
            for warning in warnings:
                ls.log_warning(warning)
        await ls.apply_settings(pulled)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: ShapelensServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.opened(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: ShapelensServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.changed(params.text_document.uri, params.content_changes)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: ShapelensServer, params: types.DidSaveTextDocumentParams) -> None:
        ls.saved(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: ShapelensServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.closed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_INLAY_HINT, types.InlayHintOptions(resolve_provider=False))
    def inlay_hint(ls: ShapelensServer, params: types.InlayHintParams) -> list[types.InlayHint]:
        return ls.inlay_hints(params.text_document.uri, params.range)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: ShapelensServer, params: types.HoverParams) -> types.Hover | None:
        return ls.hover(params.text_document.uri, params.position)

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[types.CodeActionKind.QuickFix, FIX_ALL_KIND], resolve_provider=False
        ),
    )
    def code_action(ls: ShapelensServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        return ls.code_actions(params)

    @server.command(TRACE_NOW)
    async def trace_now(ls: ShapelensServer, *args: Any) -> dict[str, Any]:
        uri = args[0] if args else None
        if not isinstance(uri, str):
            return {"traced": False, "reason": "expected [uri]"}
        return await ls.trace_now(uri)

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: ShapelensServer, params: None) -> None:
        ls.shutdown_requested = True
        ls.shutdown()
        _cancel_pending_requests(ls)

    @server.feature(types.EXIT)
    def exit_(ls: ShapelensServer, params: None) -> None:
        ls.exit()

    return server


def _cancel_pending_requests(ls: ShapelensServer) -> None:
    """Cancel the requests still pending (a `shapelens.traceNow`) before pygls does: its shutdown cancels them
    while iterating its table of them, and a generator-run request (executeCommand) leaves that table the
    moment it is cancelled, so the `shutdown` answer was "dictionary changed size during iteration"."""
    pending = getattr(ls.protocol, "_request_futures", {})
    current = ls.protocol.msg_id
    for msg_id, future in list(pending.items()):
        if msg_id != current and not future.done():
            future.cancel()


async def _register_configuration(ls: ShapelensServer) -> None:
    """Ask for `workspace/didChangeConfiguration` where the client wants it registered dynamically."""
    caps = ls.client_capabilities.workspace
    change = caps.did_change_configuration if caps is not None else None
    if change is None or not change.dynamic_registration:
        return
    registration = types.Registration(
        id="shapelens-configuration",
        method=types.WORKSPACE_DID_CHANGE_CONFIGURATION,
        register_options=types.DidChangeConfigurationRegistrationOptions(section=SECTION),
    )
    try:
        await asyncio.wait_for(
            ls.client_register_capability_async(types.RegistrationParams([registration])), CONFIG_TIMEOUT_S
        )
    except Exception as err:
        log.debug("didChangeConfiguration registration failed: %s", err)


def main() -> None:
    level = os.environ.get("SHAPELENS_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # pygls logs every message it sends at INFO; that would drown our own log in the client's channel.
    logging.getLogger("pygls").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    create_server().start_io()
