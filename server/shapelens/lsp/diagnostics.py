"""`textDocument/publishDiagnostics`: a path's findings (static and traced) as diagnostics, and clearing
them for files we reported on once they have none."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from lsprotocol import types

from shapelens.lsp import convert
from shapelens.lsp.documents import Documents
from shapelens.lsp.results import Results

Send = Callable[[types.PublishDiagnosticsParams], None]


class Diagnostics:
    def __init__(self, docs: Documents, results: Results, send: Send) -> None:
        self.docs = docs
        self.results = results
        self.send = send
        self.published: set[str] = set()  # uris we published diagnostics for (to clear them later)

    def publish(self, path: str) -> None:
        uri = self.docs.uri_of(path)
        text_for = self.docs.texts()
        diagnostics = [
            convert.diagnostic(f, text_for, self.docs.uri_of, version if fresh else None)
            for f, version, fresh in self.results.findings_for(path)
        ]
        if not diagnostics and uri not in self.published and uri not in self.docs:
            return  # a closed file we never reported on: nothing to clear
        if diagnostics:
            self.published.add(uri)
        else:
            self.published.discard(uri)
        version = self.docs.open_version(uri)
        self.send(types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=version))

    def publish_paths(self, paths: Iterable[str]) -> None:
        for path in sorted(set(paths)):
            self.publish(path)
