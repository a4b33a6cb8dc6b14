"""`shapelens serve`: the language server (pygls 2) over stdio.

`ShapelensServer` holds the state objects: the open documents (`documents.py`), the traces' results
(`results.py`), the settings in force (`configuration.py`), the trace worker (`worker_host.py`), when and how
documents are traced and checked (`scheduler.py`, `static_checks.py`), what was published (`diagnostics.py`)
and what the client is told unasked (`notify.py`). The handlers below are adapters of a few lines over one
module per feature (`sync.py`, `notebooks.py` (Jupyter notebooks: their sync and their traces), `hints.py`,
`hover.py`, `code_actions.py`, `commands.py`, `reconfigure.py`).
Every shape, finding and fix comes from `analysis` (`static_report` at once, `analyze` after a debounce, in
a thread so the event loop keeps answering hover, code actions and `shutdown` while a model is traced).

Custom protocol the VS Code client relies on:
- notification `shapelens/status` {state, message, elapsedMs, uri, torch}, state one of
  starting | idle | tracing | error | untrusted;
- command `shapelens.traceNow` [uri]: trace that document now, skipping the debounce.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from shapelens import __version__
from shapelens.lsp import code_actions, commands, hints, hover, notebooks, prestart, reconfigure, sync
from shapelens.lsp.configuration import Config, register_for_changes
from shapelens.lsp.convert import UTF16, enum_value
from shapelens.lsp.diagnostics import Diagnostics
from shapelens.lsp.documents import Documents
from shapelens.lsp.notify import Notifier
from shapelens.lsp.results import Results
from shapelens.lsp.settings import Settings
from shapelens.lsp.worker_host import WorkerHost

log = logging.getLogger("shapelens.lsp")

EXIT_GRACE_S = 1.0


class ShapelensServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("shapelens", __version__, notebook_document_sync=notebooks.SYNC_OPTIONS)
        self.config = Config()
        self.docs = Documents(lambda: self.workspace, lambda: self.encoding)
        self.results = Results(self.docs)
        self.notify = Notifier(self, lambda: self.host.torch)
        self.host = WorkerHost(self.config, self.notify)
        self.diagnostics = Diagnostics(self.docs, self.results, self.text_document_publish_diagnostics)
        self.scheduler = notebooks.NotebookScheduler(
            self.config,
            self.docs,
            self.results,
            self.host,
            self.diagnostics,
            self.notify,
            workspace=lambda: self.workspace,
        )
        self.shutdown_requested = False  # `exit` without `shutdown` first exits with status 1 (LSP spec)

    @property
    def encoding(self) -> str:
        try:
            chosen = self.server_capabilities.position_encoding
        except AttributeError:  # before initialize
            chosen = None
        return enum_value(chosen) if chosen else UTF16

    def report_server_error(self, error: Exception, source: Any) -> None:
        # pygls' default pops up a message for every out-of-band error; the log is the right place.
        log.error("server error (%s): %s", getattr(source, "__name__", source), error)

    async def apply_settings(self, new: Settings) -> None:
        await reconfigure.apply_settings(
            new, self.config, self.docs, self.results, self.scheduler, self.diagnostics, self.notify
        )

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
        """Answer `shutdown` at once: cancel what runs, close the worker in the background. This replaces
        pygls' own `shutdown`, which `start_io` also calls when the client closes the pipe without `exit`."""
        self.scheduler.shutdown()


def _hard_exit(code: int) -> None:
    log.info("exit: the client kept stdin open; exiting now")
    logging.shutdown()
    os._exit(code)


# -- handlers: adapters over the feature modules --------------------------------------------------------


def create_server() -> ShapelensServer:
    server = ShapelensServer()

    @server.feature(types.INITIALIZE)
    def initialize(ls: ShapelensServer, params: types.InitializeParams) -> None:
        ls.config.initialization_options(params.initialization_options, ls.notify)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: ShapelensServer, params: types.InitializedParams) -> None:
        try:
            pulled = await ls.config.pull(ls, ls.notify)
            if pulled is not None:
                await ls.apply_settings(pulled)
        finally:
            ls.config.ready.set()
        await register_for_changes(ls)
        if ls.config.settings.trusted:
            await ls.host.warm()
        else:
            prestart.discard()
            ls.notify.untrusted()

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: ShapelensServer, params: types.DidChangeConfigurationParams) -> None:
        pulled = await ls.config.pull(ls, ls.notify)
        await ls.apply_settings(pulled if pulled is not None else ls.config.pushed(params.settings, ls.notify))

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: ShapelensServer, params: types.DidOpenTextDocumentParams) -> None:
        sync.opened(ls.docs, ls.scheduler, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: ShapelensServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        sync.changed(ls.docs, ls.results, ls.scheduler, ls.config, uri, params.content_changes)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: ShapelensServer, params: types.DidSaveTextDocumentParams) -> None:
        sync.saved(ls.docs, ls.results, ls.scheduler, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: ShapelensServer, params: types.DidCloseTextDocumentParams) -> None:
        sync.closed(ls.docs, ls.results, ls.scheduler, ls.diagnostics, params.text_document.uri)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_OPEN)
    def notebook_did_open(ls: ShapelensServer, params: types.DidOpenNotebookDocumentParams) -> None:
        ls.scheduler.notebook_opened(params.notebook_document.uri)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_CHANGE)
    def notebook_did_change(ls: ShapelensServer, params: types.DidChangeNotebookDocumentParams) -> None:
        ls.scheduler.notebook_changed(params)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_CLOSE)
    def notebook_did_close(ls: ShapelensServer, params: types.DidCloseNotebookDocumentParams) -> None:
        cells = [cell.uri for cell in params.cell_text_documents]
        ls.scheduler.notebook_closed(params.notebook_document.uri, cells)

    @server.feature(types.TEXT_DOCUMENT_INLAY_HINT, types.InlayHintOptions(resolve_provider=False))
    def inlay_hint(ls: ShapelensServer, params: types.InlayHintParams) -> list[types.InlayHint]:
        return hints.inlay_hints(ls.docs, ls.results, ls.config.settings, params.text_document.uri, params.range)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover_(ls: ShapelensServer, params: types.HoverParams) -> types.Hover | None:
        return hover.hover(ls.docs, ls.results, ls.config.settings, params.text_document.uri, params.position)

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[types.CodeActionKind.QuickFix, code_actions.FIX_ALL_KIND], resolve_provider=False
        ),
    )
    def code_action(ls: ShapelensServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        return code_actions.code_actions(ls.docs, ls.results, params)

    @server.command(commands.TRACE_NOW)
    async def trace_now(ls: ShapelensServer, *args: Any) -> dict[str, Any]:
        return await commands.trace_now(ls.docs, ls.results, ls.scheduler, ls.config, ls.notify, args)

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


def main() -> None:
    level = os.environ.get("SHAPELENS_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # pygls logs every message it sends at INFO; that would drown our own log in the client's channel.
    logging.getLogger("pygls").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    create_server().start_io()
