"""Documents that attack the server by their size or shape: an expression too deep for Python's parser, a
10 MB one-line paste, and `shutdown` while a `shapelens.traceNow` request is pending. The server answers
every request, in time, without an internal error."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from harness import Session, position_of
from lsprotocol import types
from models import TAGGER
from pytest_lsp import LanguageClient
from test_trust_and_settings import marker_model

pytestmark = pytest.mark.timeout(120)


async def test_an_expression_too_deep_to_parse(client: LanguageClient, tmp_path: Path) -> None:
    s = Session(client, tmp_path)
    await s.start({"debounceMs": 0})
    terms = " +\n    ".join(["x"] * 100_000)
    doc = s.open("deep.py", f"import torch\nx = 1\ny = ({terms})\n")
    [diagnostic] = await s.wait_diagnostics(doc, lambda ds: bool(ds))
    assert diagnostic.code == "SL000" and "nested too deeply" in diagnostic.message
    assert await s.hover(doc, 1, 0) is None  # answered, not an internal error
    assert await s.hover(doc, 500, 4) is None
    assert await s.inlay_hints(doc) == []


async def test_a_ten_megabyte_paste_does_not_hold_other_documents(client: LanguageClient, tmp_path: Path) -> None:
    s = Session(client, tmp_path)
    await s.start({"debounceMs": 0})
    model = s.open("tagger.py", TAGGER)
    await s.wait_traced(model)
    line = position_of(model.text, "positions = ids.argsort").line
    assert await s.hover(model, line, 10) is not None
    scratch = s.open("scratch.py", "import torch\n")
    paste = "DATA = [" + ", ".join(["0.25"] * 1_700_000) + "]\n"  # 10 MB on one line
    s.edit(scratch, [types.TextEdit(types.Range(types.Position(1, 0), types.Position(1, 0)), paste)])
    started = time.monotonic()
    hover = await s.hover(model, line, 10)
    assert time.monotonic() - started < 2.0  # 24 s before: the paste's static checks held the event loop
    assert hover is not None
    [diagnostic] = await s.wait_diagnostics(scratch, lambda ds: bool(ds))
    assert diagnostic.code == "SL006" and diagnostic.severity == types.DiagnosticSeverity.Information
    assert await s.hover(scratch, 1, 2) is None


SLOW = """\
import time
import torch
from torch import nn


# shapelens: x=(2, 4)
class Slow(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        time.sleep(20)
        return self.fc(x)
"""


async def test_shutdown_while_trace_now_is_pending(client: LanguageClient, tmp_path: Path) -> None:
    s = Session(client, tmp_path)
    await s.start({"debounceMs": 60000})
    doc = s.open("slow.py", SLOW)
    other = s.open("other.py", TAGGER)
    pending = [
        asyncio.ensure_future(
            client.workspace_execute_command_async(
                types.ExecuteCommandParams(command="shapelens.traceNow", arguments=[d.uri])
            )
        )
        for d in (doc, other)
    ]
    await asyncio.sleep(1.0)
    await client.shutdown_async(None)  # answered without an error
    results = await asyncio.gather(*pending, return_exceptions=True)
    for result in results:
        assert not isinstance(result, Exception) or "RuntimeError" not in str(result), result
    client.exit(None)
    server = client._server
    assert server is not None
    await asyncio.wait_for(server.wait(), 15)
    assert server.returncode == 0


async def test_a_large_document_is_checked_off_the_event_loop(client: LanguageClient, tmp_path: Path) -> None:
    """Over 100,000 characters (under the size limit), the static checks run in a thread: their findings
    still arrive for the current version, and an edit's new findings replace them."""
    s = Session(client, tmp_path)
    await s.start({"debounceMs": 60000})
    padding = "".join(f"CONSTANT_{i} = {i}\n" for i in range(8000))
    source = marker_model(tmp_path / "ran.txt") + padding
    assert 100_000 < len(source) < 1_000_000
    doc = s.open("big.py", source)
    [first] = await s.wait_diagnostics(doc, lambda ds: bool(ds))
    assert first.code == "SL202"
    s.replace(doc, "F.dropout(h, p=0.5)", "F.dropout(h, p=0.5, training=self.training)")
    assert await s.wait_diagnostics(doc, lambda ds: ds == []) == []
