"""The open documents: their uris and paths, texts and versions (pygls' workspace keeps the text), and what
the server keeps per document (its static report, its trace task, its outline)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace import Workspace

from shapelens.analysis import outline as outline_mod
from shapelens.core.findings import FileReport
from shapelens.lsp import convert


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


def path_of(uri: str) -> str:
    return os.path.abspath(to_fs_path(uri) or uri)


class Documents:
    def __init__(self, workspace: Callable[[], Workspace], encoding: Callable[[], str]) -> None:
        self._workspace = workspace
        self._encoding = encoding
        self.by_uri: dict[str, DocState] = {}

    @property
    def encoding(self) -> str:
        return self._encoding()

    def __contains__(self, uri: str) -> bool:
        return uri in self.by_uri

    def __iter__(self) -> Iterator[DocState]:
        return iter(list(self.by_uri.values()))

    def get(self, uri: str) -> DocState | None:
        return self.by_uri.get(uri)

    def add(self, uri: str) -> DocState:
        state = self.by_uri.get(uri)
        if state is None:
            state = self.by_uri[uri] = DocState(uri, path_of(uri))
        return state

    def pop(self, uri: str) -> DocState | None:
        return self.by_uri.pop(uri, None)

    def uri_of(self, path: str) -> str:
        for state in self.by_uri.values():
            if state.path == path:
                return state.uri  # the client's own spelling of the uri
        return from_fs_path(path) or path

    def version(self, uri: str) -> int | None:
        try:
            return self._workspace().get_text_document(uri).version
        except Exception:
            return None

    def open_version(self, uri: str) -> int | None:
        """The version of an open document; None for a file that is not open."""
        return self.version(uri) if uri in self.by_uri else None

    def source(self, uri: str) -> str | None:
        """An open document's text, or the file on disk; None if neither exists (deleted under us)."""
        try:
            return self._workspace().get_text_document(uri).source
        except (OSError, UnicodeDecodeError):
            return None

    def text_for(self, path: str) -> convert.Text | None:
        source = self.source(self.uri_of(path))
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
        workspace = self._workspace()
        best: str | None = None
        folders = [f.uri for f in workspace.folders.values()]
        if workspace.root_uri:
            folders.append(workspace.root_uri)
        for uri in folders:
            folder = path_of(uri)
            if (path + os.sep).startswith(folder.rstrip(os.sep) + os.sep) and len(folder) > len(best or ""):
                best = folder
        return best or os.path.dirname(path)

    def outline(self, uri: str, source: str) -> outline_mod.Outline | None:
        """The document's outline, cached per version; the last good one while the text does not parse."""
        state = self.by_uri.get(uri)
        version = self.version(uri)
        if state is not None and state.outline_version == version and state.outline is not None:
            return state.outline
        found = outline_mod.outline(path_of(uri), source)
        if state is not None and found is not None:
            state.outline, state.outline_version = found, version
        return found if found is not None else (state.outline if state else None)
