"""Bad input never takes the server down, and a trace never blocks the editor: a hanging model, a file that
stops parsing mid-edit, a file deleted under the server, malformed messages, `shutdown` mid-trace."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from harness import Session, hint_at, position_of, wait_for
from lsprotocol import types
from models import HANGING, LENET, cpu_truth, expected_labels
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.timeout(120)

FIXED_LENET = LENET.replace("16 * 5 * 5", "16 * 6 * 6")


def exited(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def timed(awaitable: object) -> tuple[object, float]:
    started = time.perf_counter()
    result = await awaitable  # type: ignore[misc]
    return result, time.perf_counter() - started


async def test_hanging_model_does_not_delay_hover_or_shutdown(client: LanguageClient, tmp_path: Path) -> None:
    s = Session(client, tmp_path)
    await s.start({"traceTimeout": 3})
    good = s.open("lenet.py", FIXED_LENET)
    await s.wait_traced(good)
    after = len(s.statuses)
    doc = s.open("forever.py", HANGING)
    await wait_for(
        lambda: any(st["state"] == "tracing" and st["uri"] == doc.uri for st in s.statuses[after:]),
        60,
        "the hanging trace to start",
    )
    await asyncio.sleep(0.3)  # well inside the trace
    assert not s.traced(doc, after), "the hanging trace finished too early for this test to mean anything"

    # While the trace hangs: hover, inlay hints and code actions on the other file answer at once.
    position = position_of(good.text, "self.fc1(x)", delta=6)
    hover, seconds = await timed(s.hover(good, position.line, position.character))
    assert hover is not None and seconds < 1.0, seconds
    hints, seconds = await timed(s.inlay_hints(good))
    assert hints and seconds < 1.0, seconds
    whole = types.Range(types.Position(0, 0), types.Position(30, 0))
    _, seconds = await timed(s.code_actions(doc, whole, []))
    assert seconds < 1.0, seconds

    # The trace is stopped after shapelens.traceTimeout and says so at the loop (SL002).
    diagnostics = await s.wait_diagnostics(doc, lambda ds: any(d.code in ("SL002", "SL004") for d in ds), 30)
    stopped = next(d for d in diagnostics if d.code in ("SL002", "SL004"))
    assert stopped.code == "SL002", stopped.message
    # The line before the loop still got its shape.
    assert hint_at(await s.inlay_hints(doc), position_of(doc.text, "y = self.fc(x)").line) == ["[2, 8]"]

    def tracing(after: int) -> bool:
        return any(st["state"] == "tracing" and st["uri"] == doc.uri for st in s.statuses[after:])

    # A new hanging trace superseded by an edit that ends the loop: it is cancelled (its child killed) and
    # the new version is traced at once, long before the timeout would have stopped the old one.
    after = len(s.statuses)
    s.replace(doc, "y = y + 1", "y = y + 2")
    await wait_for(lambda: tracing(after), 30, "the second hanging trace")
    await asyncio.sleep(0.2)
    after = len(s.statuses)
    s.replace(doc, "while True:", "for _ in range(3):")
    await s.wait_traced(doc, after)
    statuses = [st for st in s.statuses[after:] if st["uri"] == doc.uri and st["state"] == "idle"]
    assert "cancelled" in statuses[0]["message"], statuses
    assert statuses[0]["elapsedMs"] < 3000  # killed, not stopped by the 3 s timeout
    finished = await s.wait_diagnostics(doc, lambda ds: True)
    assert not [d for d in finished if d.code == "SL002"]
    assert hint_at(await s.inlay_hints(doc), position_of(doc.text, "return y").line) == ["[2, 8]"]

    # Hanging again, then `shutdown` in the middle of it: answered at once, and `exit` ends the process.
    after = len(s.statuses)
    s.replace(doc, "for _ in range(3):", "while True:")
    await wait_for(lambda: tracing(after), 30, "the third hanging trace")
    _, seconds = await timed(client.shutdown_async(None))
    assert seconds < 1.0, seconds
    client.exit(None)
    server = client._server
    assert server is not None
    # The server process itself ends at once (a zombie until reaped); `wait()` also waits for the worker,
    # which shares the server's stderr pipe and needs a moment to reap its killed child.
    await wait_for(lambda: exited(server.pid), 2, "the server process to end")
    await asyncio.wait_for(server.wait(), 15)
    assert server.returncode == 0


async def test_syntax_error_keeps_last_good_hints(client: LanguageClient, tmp_path: Path) -> None:
    s = Session(client, tmp_path)
    await s.start()
    doc = s.open("lenet.py", FIXED_LENET)
    await s.wait_traced(doc)
    truth = expected_labels(cpu_truth(doc.path, "LeNet"), doc.path)
    flatten = position_of(doc.text, "x = torch.flatten(x, 1)").line

    # Break the file above the forward and insert a line: SL000, and the hints stay with their statements.
    s.replace(doc, "x = torch.flatten(x, 1)", "x = torch.flatten(x, 1\n        # typing...")
    diagnostics = await s.wait_diagnostics(doc, lambda ds: any(d.code == "SL000" for d in ds))
    assert [d.code for d in diagnostics if d.source == "shapelens"].count("SL000") == 1
    hints = await s.inlay_hints(doc)
    for line, want in truth.items():
        moved = line + 1 if line > flatten else line
        if line != flatten:
            assert want in hint_at(hints, moved), (line, hint_at(hints, moved))

    # Parses again: traced again, hints exact again.
    after = len(s.statuses)
    s.replace(doc, "x = torch.flatten(x, 1\n        # typing...", "x = torch.flatten(x, 1)")
    await s.wait_traced(doc, after)
    diagnostics = await s.wait_diagnostics(doc, lambda ds: True)
    assert not [d for d in diagnostics if d.code == "SL000"]
    hints = await s.inlay_hints(doc)
    for line, want in truth.items():
        assert want in hint_at(hints, line)


async def test_deleted_file_and_malformed_messages(client: LanguageClient, tmp_path: Path) -> None:
    s = Session(client, tmp_path)
    await s.start()
    doc = s.open("lenet.py", FIXED_LENET)
    await s.wait_traced(doc)

    # The file disappears from disk while open: edits, traces and requests go on from the editor's text.
    doc.path.unlink()
    after = len(s.statuses)
    s.replace(doc, "x=(4, 3, 32, 32)", "x=(5, 3, 32, 32)")
    await s.wait_traced(doc, after)
    hints = await s.inlay_hints(doc)
    assert "[5, 576]" in hint_at(hints, position_of(doc.text, "x = torch.flatten(x, 1)").line)

    # A command for a file that exists nowhere, and one with bad arguments.
    gone = (tmp_path / "gone.py").as_uri()
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="shapelens.traceNow", arguments=[gone])
    )
    assert result is not None and not result["traced"]
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="shapelens.traceNow", arguments=[42])
    )
    assert result is not None and not result["traced"]

    # Requests about a document that was never opened (and does not exist).
    hover = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(gone), types.Position(0, 0))
    )
    assert hover is None

    # Raw garbage on the wire: a body that is not JSON, a notification without its params, a request whose
    # params do not fit its method (its error response goes to an id the client never used: ignored).
    server = client._server
    assert server is not None and server.stdin is not None
    bodies = [
        b"{not json",
        json.dumps({"jsonrpc": "2.0", "method": "textDocument/didOpen"}).encode(),
        json.dumps({"jsonrpc": "2.0", "id": 99999, "method": "textDocument/hover", "params": {"x": 3}}).encode(),
    ]
    for body in bodies:
        server.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    await server.stdin.drain()

    # Still alive and answering.
    position = position_of(doc.text, "self.fc1(x)", delta=6)
    hover = await s.hover(doc, position.line, position.character)
    assert hover is not None
    assert server.returncode is None
