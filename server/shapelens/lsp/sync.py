"""Text document synchronisation (`didOpen`, `didChange`, `didSave`, `didClose`): static findings at once,
a trace after the debounce, the last results moved along with each edit until the next trace replaces them."""

from __future__ import annotations

from collections.abc import Iterable

from lsprotocol import types

from shapelens.lsp.configuration import Config
from shapelens.lsp.diagnostics import Diagnostics
from shapelens.lsp.documents import Documents
from shapelens.lsp.results import Results
from shapelens.lsp.scheduler import Scheduler
from shapelens.lsp.shift import Change


def opened(docs: Documents, scheduler: Scheduler, uri: str) -> None:
    docs.add(uri)
    scheduler.static.refresh(uri)
    scheduler.schedule(uri, 0.0)


def changed(
    docs: Documents,
    results: Results,
    scheduler: Scheduler,
    config: Config,
    uri: str,
    changes: Iterable[types.TextDocumentContentChangeEvent],
) -> None:
    state = docs.get(uri)
    if state is None:
        opened(docs, scheduler, uri)
        return
    # Clients ask for inlay hints again after their own edits, so moving the results needs no refresh.
    for change in changes:
        if isinstance(change, types.TextDocumentContentChangePartial):
            results.shift(state.path, Change(change.range, change.text))
    scheduler.static.soon(uri)
    scheduler.schedule(uri, scheduler.debounce_s(uri))


def saved(docs: Documents, results: Results, scheduler: Scheduler, uri: str) -> None:
    state = docs.get(uri)
    if state is None:
        return
    scheduler.static.refresh(uri)
    result = results.get(state.path)
    if result is None or result.version != docs.version(uri):
        scheduler.schedule(uri, 0.0)
    # Other open models whose last trace entered this file (a block they import) see the new code too.
    for other in docs:
        result = results.get(other.path)
        if other.uri != uri and result is not None and state.path in result.reports:
            scheduler.schedule(other.uri, 0.0)


def closed(docs: Documents, results: Results, scheduler: Scheduler, diagnostics: Diagnostics, uri: str) -> None:
    state = docs.pop(uri)
    if state is None:
        return
    scheduler.stop(state)
    diagnostics.publish_paths(results.drop(state.path))
