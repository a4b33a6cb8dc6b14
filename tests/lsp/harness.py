"""End-to-end harness for the language server: the real `shapelens serve` over stdio, driven by pytest-lsp.

`client` is a pytest-lsp client that also records what the stock one drops: every publishDiagnostics (not
just the last per uri), our `shapelens/status` notifications and `workspace/inlayHint/refresh` requests.
`Session` opens documents, keeps the client's copy of each text (to apply edits the way an editor does)
and waits for conditions without fixed sleeps.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest_lsp
from lsprotocol import types
from pygls.protocol import default_converter
from pytest_lsp import LanguageClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/oracle.py: the CPU ground truth

SERVER = [sys.executable, "-m", "shapelens.cli", "serve"]


def capabilities() -> types.ClientCapabilities:
    """What a modern editor declares; pytest-lsp needs the inlay hint ones spelled out."""
    return types.ClientCapabilities(
        general=types.GeneralClientCapabilities(position_encodings=[types.PositionEncodingKind.Utf16]),
        workspace=types.WorkspaceClientCapabilities(
            configuration=True,
            workspace_folders=True,
            apply_edit=True,
            did_change_configuration=types.DidChangeConfigurationClientCapabilities(dynamic_registration=False),
            inlay_hint=types.InlayHintWorkspaceClientCapabilities(refresh_support=True),
            execute_command=types.ExecuteCommandClientCapabilities(),
        ),
        text_document=types.TextDocumentClientCapabilities(
            synchronization=types.TextDocumentSyncClientCapabilities(did_save=True),
            hover=types.HoverClientCapabilities(content_format=[types.MarkupKind.Markdown, types.MarkupKind.PlainText]),
            inlay_hint=types.InlayHintClientCapabilities(),
            code_action=types.CodeActionClientCapabilities(
                code_action_literal_support=types.ClientCodeActionLiteralOptions(
                    code_action_kind=types.ClientCodeActionKindOptions(
                        value_set=[
                            types.CodeActionKind.QuickFix,
                            types.CodeActionKind.Source,
                            types.CodeActionKind.SourceFixAll,
                        ]
                    )
                ),
                is_preferred_support=True,
                data_support=True,
            ),
            publish_diagnostics=types.PublishDiagnosticsClientCapabilities(
                related_information=True,
                version_support=True,
                code_description_support=True,
                data_support=True,
            ),
        ),
        window=types.WindowClientCapabilities(show_message=types.ShowMessageRequestClientCapabilities()),
    )


def make_client() -> LanguageClient:
    # The stock client, minus its publishDiagnostics handler (ours below keeps every publication).
    client = LanguageClient(converter_factory=default_converter)
    features = dict(pytest_lsp.client.DEFAULT_CLIENT_FEATURES)
    features.pop(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    pytest_lsp.client.register_lsp_features(client, features)
    client.statuses = []  # type: ignore[attr-defined]
    client.refreshes = 0  # type: ignore[attr-defined]
    client.published = []  # type: ignore[attr-defined]

    @client.feature("shapelens/status")
    def on_status(params: Any) -> None:
        client.statuses.append(_plain(params))  # type: ignore[attr-defined]

    @client.feature(types.WORKSPACE_INLAY_HINT_REFRESH)
    def on_refresh(params: None) -> None:
        client.refreshes += 1  # type: ignore[attr-defined]

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
        client.diagnostics[params.uri] = params.diagnostics
        client.published.append(params)  # type: ignore[attr-defined]

    return client


def _plain(value: Any) -> Any:
    """pygls hands unknown notifications' params over as namedtuple-like objects; make them dicts."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    return value


async def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll until `predicate()` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Doc:
    uri: str
    path: Path
    text: str
    version: int = 1


@dataclass
class Session:
    client: LanguageClient
    root: Path
    docs: dict[str, Doc] = field(default_factory=dict)

    @property
    def statuses(self) -> list[dict[str, Any]]:
        return self.client.statuses  # type: ignore[attr-defined,no-any-return]

    @property
    def published(self) -> list[types.PublishDiagnosticsParams]:
        return self.client.published  # type: ignore[attr-defined,no-any-return]

    async def start(self, options: dict[str, Any] | None = None) -> types.InitializeResult:
        # The tests compare hints with a CPU run's numbers: the symbolic labels (#13, on by default) only where
        # a test turns them on (tests/lsp/test_symbolic_faces.py).
        options = dict(options or {})
        if not {"shapelens", "settings"} & set(options) and isinstance(options.get("inlayHints", {}), dict):
            options["inlayHints"] = {"symbolic": "off", **options.get("inlayHints", {})}
        result = await self.client.initialize_session(
            types.InitializeParams(
                capabilities=capabilities(),
                root_uri=self.root.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=self.root.as_uri(), name="ws")],
                initialization_options=options,
            )
        )
        return result

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text, encoding="utf-8")
        return path

    def open(self, name: str, text: str | None = None) -> Doc:
        path = self.root / name
        if text is None:
            text = path.read_text(encoding="utf-8")
        elif not path.exists():
            path.write_text(text, encoding="utf-8")
        doc = Doc(path.as_uri(), path, text)
        self.docs[doc.uri] = doc
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(doc.uri, "python", doc.version, text))
        )
        return doc

    def edit(self, doc: Doc, edits: list[types.TextEdit]) -> None:
        """Apply edits to our copy and send them as one incremental didChange (last edit first, so the
        earlier ranges stay valid, as editors do)."""
        ordered = sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True)
        changes: list[types.TextDocumentContentChangeEvent] = []
        for e in ordered:
            doc.text = apply_edit(doc.text, e)
            changes.append(types.TextDocumentContentChangePartial(range=e.range, text=e.new_text))
        doc.version += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(uri=doc.uri, version=doc.version), changes
            )
        )

    def replace(self, doc: Doc, old: str, new: str) -> None:
        """Replace the first occurrence of `old` (a plain-text convenience over `edit`)."""
        offset = doc.text.index(old)
        self.edit(doc, [types.TextEdit(offsets_range(doc.text, offset, offset + len(old)), new)])

    def diagnostics(self, doc: Doc, version: int | None = None) -> list[types.Diagnostic] | None:
        """The last published diagnostics for the document (at `version`, if given)."""
        for params in reversed(self.published):
            if params.uri == doc.uri:
                if version is not None and params.version != version:
                    return None
                return list(params.diagnostics)
        return None

    def traced(self, doc: Doc, after: int = 0) -> dict[str, Any] | None:
        """The first status saying a trace of `doc` finished (not cancelled), among statuses from `after` on."""
        for status in self.statuses[after:]:
            finished = status["state"] == "idle" and status.get("uri") == doc.uri and status.get("elapsedMs")
            if finished and "cancelled" not in status["message"]:  # a superseded trace is not the one we want
                return status
        return None

    async def wait_traced(self, doc: Doc, after: int = 0, timeout: float = 60.0) -> dict[str, Any]:
        return await wait_for(lambda: self.traced(doc, after), timeout, f"a finished trace of {doc.path.name}")

    async def wait_diagnostics(
        self, doc: Doc, predicate: Callable[[list[types.Diagnostic]], bool], timeout: float = 60.0
    ) -> list[types.Diagnostic]:
        def check() -> tuple[list[types.Diagnostic]] | None:
            found = self.diagnostics(doc, doc.version)
            return (found,) if found is not None and predicate(found) else None  # (): [] is a valid answer

        found = await wait_for(check, timeout, f"diagnostics of {doc.path.name} v{doc.version}")
        return found[0]  # type: ignore[no-any-return]

    async def inlay_hints(self, doc: Doc) -> list[types.InlayHint]:
        lines = doc.text.split("\n")
        end = types.Position(len(lines), 0)
        result = await self.client.text_document_inlay_hint_async(
            types.InlayHintParams(
                text_document=types.TextDocumentIdentifier(doc.uri),
                range=types.Range(types.Position(0, 0), end),
            )
        )
        return list(result or [])

    async def hover(self, doc: Doc, line: int, character: int) -> types.Hover | None:
        return await self.client.text_document_hover_async(
            types.HoverParams(types.TextDocumentIdentifier(doc.uri), types.Position(line, character))
        )

    async def code_actions(
        self, doc: Doc, rng: types.Range, diagnostics: list[types.Diagnostic], only: list[str] | None = None
    ) -> list[types.CodeAction]:
        result = await self.client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(doc.uri),
                range=rng,
                context=types.CodeActionContext(diagnostics=diagnostics, only=only),  # type: ignore[arg-type]
            )
        )
        return [a for a in (result or []) if isinstance(a, types.CodeAction)]


def position_of(text: str, needle: str, occurrence: int = 0, delta: int = 0) -> types.Position:
    """The LSP position (UTF-16) of the start of `needle` (its n-th occurrence) plus `delta` characters."""
    offset = -1
    for _ in range(occurrence + 1):
        offset = text.index(needle, offset + 1)
    return offset_position(text, offset + delta)


def offset_position(text: str, offset: int) -> types.Position:
    before = text[:offset]
    line = before.count("\n")
    column = before.rsplit("\n", 1)[-1]
    return types.Position(line, len(column.encode("utf-16-le")) // 2)


def offsets_range(text: str, start: int, end: int) -> types.Range:
    return types.Range(offset_position(text, start), offset_position(text, end))


def position_offset(text: str, position: types.Position) -> int:
    lines = text.split("\n")
    offset = sum(len(line) + 1 for line in lines[: position.line])
    line = lines[position.line] if position.line < len(lines) else ""
    units = 0
    for index, ch in enumerate(line):
        if units >= position.character:
            return offset + index
        units += 2 if ord(ch) > 0xFFFF else 1
    return offset + len(line)


def apply_edit(text: str, edit: types.TextEdit) -> str:
    start = position_offset(text, edit.range.start)
    end = position_offset(text, edit.range.end)
    return text[:start] + edit.new_text + text[end:]


def hint_at(hints: list[types.InlayHint], line: int) -> list[str]:
    """The labels of the hints on a 0-based line."""
    return [
        h.label if isinstance(h.label, str) else "".join(p.value for p in h.label)
        for h in hints
        if h.position.line == line
    ]


def label(shape: tuple[int, ...], dtype: str = "float32") -> str:
    """How an editor shows a shape (independent of the server's own formatting code)."""
    prefix = "" if dtype == "float32" else dtype
    return prefix + "[" + ", ".join(str(d) for d in shape) + "]"
