"""The results cache in the editor: a file opened again (or opened in a restarted server) shows its last results
at once, marked "cached — confirming" in the status and the hover, until its fresh trace replaces them; an
entry whose imported file changed is never shown."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from harness import SERVER, Session, hint_at, make_client, position_of, wait_for
from models import batch_model
from pytest_lsp import ClientServerConfig, LanguageClient
from shapelens.analysis import results_cache
from shapelens.analysis.results_cache import CacheKey, ResultsCache
from shapelens.core.findings import FileReport, Hint
from shapelens.lsp.results import CACHED_NOTE
from shapelens.lsp.settings import Settings

pytestmark = pytest.mark.timeout(120)

CACHE = tempfile.mkdtemp(prefix="shapelens-test-cache-")  # this module's servers share it (a restart keeps it)
SENTINEL = (7, 7, 7, 7)  # a shape no trace of batch_model(2) makes: it can only come from the cache


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=SERVER, client_factory=make_client, server_env={**os.environ, "SHAPELENS_CACHE_DIR": CACHE}
    )
)
async def client(lsp_client: LanguageClient) -> Any:
    yield
    server = lsp_client._server
    if server is not None and server.returncode is None:
        await lsp_client.shutdown_session()


def _key(path: Path, text: str) -> CacheKey:
    """The key the server computes for an open document with the default settings."""
    results_cache.code_fingerprint.cache_clear()  # other work on this tree may have changed our code meanwhile
    python = sys.executable
    return CacheKey(
        str(path), text, str(path.parent), Settings().options(), python, results_cache.torch_version(python)
    )


def _sentinel_entry(path: Path, text: str, entered: list[str]) -> None:
    line = text.splitlines().index("        h = self.conv(x)") + 1
    hint = Hint(
        str(path), line, line, len("        h = self.conv(x)") + 1, "h", [SENTINEL], "float32", "meta", "Conv2d"
    )
    assert ResultsCache(os.path.join(CACHE, "results")).store(
        _key(path, text), {str(path): FileReport(str(path), hints=[hint], traced=["Small"])}, entered
    )


def _cached_status(s: Session, uri: str) -> dict[str, Any] | None:
    return next((st for st in s.statuses if st.get("uri") == uri and CACHED_NOTE in st["message"]), None)


async def test_restarted_server_shows_the_cached_result_until_the_trace_replaces_it(
    client: LanguageClient, tmp_path: Path
) -> None:
    text = batch_model(2)
    path = tmp_path / "model.py"
    path.write_text(text)
    _sentinel_entry(path, text, [str(path)])
    s = Session(client, tmp_path)
    await s.start()
    doc = s.open("model.py")
    await wait_for(lambda: _cached_status(s, doc.uri), 30, "the cached status")
    line = text.splitlines().index("        h = self.conv(x)")
    hints = await s.inlay_hints(doc)
    assert "[7, 7, 7, 7]" in hint_at(hints, line)  # at once: the worker is still importing torch
    position = position_of(doc.text, "h = self.conv(x)")
    hover = await s.hover(doc, position.line, position.character)
    assert s.traced(doc) is None, "the trace finished before the cached result could be looked at"
    assert hover is not None and CACHED_NOTE in hover.contents.value  # type: ignore[union-attr]

    await s.wait_traced(doc)
    hints = await s.inlay_hints(doc)
    assert hint_at(hints, line) and "[7, 7, 7, 7]" not in hint_at(hints, line)
    assert "[2, 4, 14, 14]" in hint_at(hints, line)
    hover = await s.hover(doc, position.line, position.character)
    assert hover is not None and CACHED_NOTE not in hover.contents.value  # type: ignore[union-attr]


async def test_an_entry_whose_imported_file_changed_is_not_shown(client: LanguageClient, tmp_path: Path) -> None:
    text = batch_model(2)
    path, blocks = tmp_path / "model.py", tmp_path / "blocks.py"
    path.write_text(text)
    blocks.write_text("SIZE = 4\n")
    _sentinel_entry(path, text, [str(path), str(blocks)])
    blocks.write_text("SIZE = 5\n")  # edited after the entry was made: the entry is stale
    s = Session(client, tmp_path)
    await s.start()
    doc = s.open("model.py")
    await s.wait_traced(doc)
    assert _cached_status(s, doc.uri) is None
    line = text.splitlines().index("        h = self.conv(x)")
    assert "[7, 7, 7, 7]" not in hint_at(await s.inlay_hints(doc), line)


async def test_reopened_file_shows_its_last_hints_at_once(client: LanguageClient, tmp_path: Path) -> None:
    text = batch_model(3)
    s = Session(client, tmp_path)
    await s.start()
    doc = s.open("model.py", text)
    await s.wait_traced(doc)
    fresh = await s.inlay_hints(doc)
    cache = ResultsCache(os.path.join(CACHE, "results"))
    await wait_for(lambda: cache.load(_key(doc.path, text)) is not None, 30, "the entry on disk")

    client.text_document_did_close(_close(doc.uri))
    s.docs.pop(doc.uri)
    after = len(s.statuses)
    doc = s.open("model.py")
    await wait_for(lambda: _cached_status(s, doc.uri), 30, "the cached status")
    assert s.statuses.index(_cached_status(s, doc.uri)) >= after  # type: ignore[arg-type]
    assert [h.label for h in await s.inlay_hints(doc)] == [h.label for h in fresh]
    await s.wait_traced(doc, after)


def _close(uri: str) -> Any:
    from lsprotocol import types

    return types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri))
