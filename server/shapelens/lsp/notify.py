"""What the server tells the client unasked: the `shapelens/status` notification, log and message windows,
and the request to fetch inlay hints again."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

log = logging.getLogger("shapelens.lsp")

STATUS = "shapelens/status"
UNTRUSTED = "workspace not trusted: static checks only, no code runs"


class Notifier:
    def __init__(self, server: LanguageServer, torch: Callable[[], str | None]) -> None:
        self.server = server
        self.torch = torch  # the worker's torch version, sent with every status
        self.state: str | None = None  # the last status state sent

    def status(self, state: str, message: str = "", elapsed_ms: float | None = None, uri: str | None = None) -> None:
        """`shapelens/status` {state, message, elapsedMs, uri, torch}, state one of
        starting | idle | tracing | error | untrusted."""
        self.state = state
        params = {
            "state": state,
            "message": message,
            "elapsedMs": None if elapsed_ms is None else round(elapsed_ms, 1),
            "uri": uri,
            "torch": self.torch(),
        }
        try:
            self.server.protocol.notify(STATUS, params)
        except Exception as err:  # a closed pipe during exit
            log.debug("status not sent: %s", err)

    def untrusted(self, uri: str | None = None) -> None:
        self.status("untrusted", UNTRUSTED, uri=uri)

    def log_warning(self, message: str) -> None:
        log.warning("%s", message)
        with contextlib.suppress(Exception):  # no client to tell (exiting): the log has it
            self.server.window_log_message(types.LogMessageParams(types.MessageType.Warning, message))

    def show_warning(self, message: str) -> None:
        self.server.window_show_message(types.ShowMessageParams(types.MessageType.Warning, message))

    def refresh_inlay_hints(self) -> None:
        caps = self.server.client_capabilities.workspace
        if caps is None or caps.inlay_hint is None or not caps.inlay_hint.refresh_support:
            return
        try:
            future = self.server.workspace_inlay_hint_refresh(None)
        except Exception as err:
            log.debug("inlay hint refresh not sent: %s", err)
            return

        def done(fut: Any) -> None:
            if not fut.cancelled() and fut.exception() is not None:
                log.debug("inlay hint refresh failed: %s", fut.exception())

        future.add_done_callback(done)
