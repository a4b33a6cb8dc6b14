"""The static report of each open document's current text: at once for a keystroke, coalesced during a burst
of edits, in a thread for a large document, cached per version and published with the traces' findings."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from shapelens.analysis.engine import static_report
from shapelens.core.findings import FileReport
from shapelens.lsp.diagnostics import Diagnostics
from shapelens.lsp.documents import DocState, Documents
from shapelens.lsp.notify import Notifier
from shapelens.lsp.threads import in_thread

log = logging.getLogger("shapelens.lsp")

SYNTAX_ERROR = "SL000"
STATIC_INTERVAL_S = 0.05
LARGE_DOCUMENT_CHARS = 100_000  # static checks of larger documents run off the event loop

Spawn = Callable[[Coroutine[Any, Any, None]], None]


class StaticChecks:
    def __init__(self, docs: Documents, diagnostics: Diagnostics, notify: Notifier, spawn: Spawn) -> None:
        self.docs = docs
        self.diagnostics = diagnostics
        self.notify = notify
        self.spawn = spawn

    def soon(self, uri: str) -> None:
        """After an edit: at most every STATIC_INTERVAL_S during a burst (each check and its publication cost
        ~2 ms; a thousand queued edits must not delay the hover behind them)."""
        state = self.docs.get(uri)
        if state is None or state.static_pending:
            return
        state.static_pending = True
        delay = max(0.0, state.static_at + STATIC_INTERVAL_S - time.monotonic())
        asyncio.get_running_loop().call_later(delay, self._run_pending, uri)

    def _run_pending(self, uri: str) -> None:
        state = self.docs.get(uri)
        if state is None:
            return
        state.static_pending = False
        state.static_at = time.monotonic()
        self.refresh(uri)

    def refresh(self, uri: str) -> FileReport | None:
        """The static report of the document's current text (cached per version), published with it."""
        state = self.docs.get(uri)
        if state is None:
            return None
        version = self.docs.version(uri)
        if state.static is not None and state.static_version == version:
            return state.static
        source = self.docs.source(uri)
        if source is None:
            return state.static
        if len(source) > LARGE_DOCUMENT_CHARS:
            # Parsing and checking a large file takes a good part of a second: in a thread, so hover and
            # the other documents keep answering; the last report stands until the new one is published.
            if state.static_running != version:
                state.static_running = version
                self.spawn(self._in_thread(uri, state, version, source))
            return state.static
        try:
            report = static_report(state.path, source)
        except Exception as err:
            report = self._failed(uri, state.path, err)
        self._set(state, version, report)
        return state.static

    def parses(self, uri: str) -> bool:
        report = self.refresh(uri)
        return report is None or all(f.code != SYNTAX_ERROR for f in report.findings)

    async def _in_thread(self, uri: str, state: DocState, version: int | None, source: str) -> None:
        try:
            report = await in_thread(lambda: static_report(state.path, source), "shapelens-static")
        except Exception as err:
            report = self._failed(uri, state.path, err)
        if state.static_running == version:
            state.static_running = None
        if self.docs.get(uri) is state and self.docs.version(uri) == version:
            self._set(state, version, report)

    def _failed(self, uri: str, path: str, err: Exception) -> FileReport:
        log.error("static checks failed on %s", path, exc_info=err)
        self.notify.status("error", f"static checks failed: {err}", uri=uri)
        return FileReport(path)

    def _set(self, state: DocState, version: int | None, report: FileReport) -> None:
        state.static, state.static_version = report, version
        self.diagnostics.publish(state.path)
