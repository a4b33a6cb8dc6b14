"""Settings through initializationOptions and workspace/configuration, applied without a restart: untrusted
mode runs nothing (proved by a model whose import would write a file), trust granted later traces at once,
hint settings change what the editor shows, bad values fall back with a logged warning."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from harness import Session, hint_at, label, position_of, wait_for
from lsprotocol import types
from models import TAGGER, cpu_truth
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.timeout(120)


def marker_model(marker: Path) -> str:
    """A model that writes `marker` when its module is imported and tries to write `marker`.build when it is
    built (the engine runs only the module-level code a model needs, so building is what a trace surely does;
    the trace's sandbox refuses the write, and that refusal, SL009, is the proof that it ran). It also has a
    static finding (SL202: F.dropout without training=self.training)."""
    return f"""\
import torch
import torch.nn.functional as F
from torch import nn

_ran = open({str(marker)!r}, "w").write("imported")


# shapelens: x=(2, 8)
class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        try:
            open({str(marker) + ".build"!r}, "w").write("built")
        except OSError:
            pass
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        return F.dropout(h, p=0.5)
"""


def children(pid: int) -> list[str]:
    """The server's child processes (the trace worker would be one)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += (task / "children").read_text().split()
    return found


async def change_settings(client: LanguageClient, **values: object) -> None:
    config = client.get_configuration(section="shapelens") or {}
    client.set_configuration({**config, **values}, section="shapelens")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))


async def test_untrusted_runs_nothing_until_trusted(client: LanguageClient, tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    s = Session(client, tmp_path)
    await s.start({"trusted": False, "debounceMs": 0})
    doc = s.open("net.py", marker_model(marker))

    # Static findings still arrive (SL202 needs no trace).
    await s.wait_diagnostics(doc, lambda ds: any(d.code == "SL202" for d in ds))
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="shapelens.traceNow", arguments=[doc.uri])
    )
    assert result == {"traced": False, "reason": "untrusted"}
    s.replace(doc, "p=0.5", "p=0.4")  # an edit would trace after the (zero) debounce if trusted
    await asyncio.sleep(1.5)
    built = Path(str(marker) + ".build")
    assert not marker.exists() and not built.exists(), "untrusted mode ran the user's code"
    assert await s.inlay_hints(doc) == []
    assert client._server is not None and children(client._server.pid) == []  # no worker process at all
    states = {st["state"] for st in s.statuses}
    assert "untrusted" in states and not states & {"starting", "tracing"}

    # Trust granted through workspace/configuration: no restart, the worker starts and the model runs.
    await change_settings(client, trusted=True)
    await s.wait_traced(doc, timeout=60)
    await s.wait_diagnostics(doc, lambda ds: any(d.code == "SL009" and "ran.txt.build" in d.message for d in ds))
    assert not built.exists()  # the trace ran __init__, and the sandbox refused its write
    hints = await s.inlay_hints(doc)
    truth = cpu_truth(doc.path, "Net")
    (shape,) = truth.shapes()[(str(doc.path.resolve()), position_of(doc.text, "h = self.fc(x)").line + 1, "h")]
    assert label(shape) in hint_at(hints, position_of(doc.text, "h = self.fc(x)").line)

    # And taken away again: the trace results disappear, static findings stay.
    refreshes = client.refreshes  # type: ignore[attr-defined]
    await change_settings(client, trusted=False)
    await wait_for(lambda: client.refreshes > refreshes, 10, "an inlay hint refresh")  # type: ignore[attr-defined]
    assert await s.inlay_hints(doc) == []
    assert s.statuses[-1]["state"] == "untrusted"
    await wait_for(lambda: client._server is not None and children(client._server.pid) == [], 10, "worker exit")


async def test_hint_settings_and_bad_values_without_restart(client: LanguageClient, tmp_path: Path) -> None:
    s = Session(client, tmp_path)
    client.set_configuration({"device": "tpu", "debounceMs": 50}, section="shapelens")
    await s.start({"inlayHints": {"showDtype": True}})
    # A bad value: a warning in the log (window/logMessage and stderr), the default used instead.
    await wait_for(lambda: any("shapelens.device" in m.message for m in client.log_messages), 10, "warning")
    warning = next(m for m in client.log_messages if "shapelens.device" in m.message)
    assert warning.type == types.MessageType.Warning and "'meta'" in warning.message

    doc = s.open("tagger.py", TAGGER)
    await s.wait_traced(doc)  # traced on meta despite the bad device
    positions_line = position_of(doc.text, "positions = ids.argsort").line
    lstm_line = position_of(doc.text, "out, (h_n, c_n) = self.lstm(emb)").line
    layer_line = position_of(doc.text, "self.head = nn.Linear").line
    truth = cpu_truth(doc.path, "Tagger").shapes()
    real = str(doc.path.resolve())
    (positions,) = truth[(real, positions_line + 1, "positions")]
    hints = await s.inlay_hints(doc)
    assert label(positions, "int64") in hint_at(hints, positions_line)
    # several names bound on one line: each named, in order
    lstm = " · ".join(f"{n} {label(truth[(real, lstm_line + 1, n)][0])}" for n in ("out", "h_n", "c_n"))
    assert lstm in hint_at(hints, lstm_line)
    assert any("→" in h for h in hint_at(hints, layer_line))

    async def after_change(**values: object) -> list[types.InlayHint]:
        refreshes = client.refreshes  # type: ignore[attr-defined]
        await change_settings(client, **values)
        await wait_for(lambda: client.refreshes > refreshes, 10, "an inlay hint refresh")  # type: ignore[attr-defined]
        return await s.inlay_hints(doc)

    hints = await after_change(inlayHints={"showDtype": False})
    assert label(positions) in hint_at(hints, positions_line)
    hints = await after_change(inlayHints={"showDtype": False, "layerShapes": False})
    assert hint_at(hints, layer_line) == [] and hint_at(hints, positions_line)
    hints = await after_change(inlayHints={"enabled": False})
    assert hints == []
    hints = await after_change(inlayHints={"enabled": True})
    assert label(positions, "int64") in hint_at(hints, positions_line)

    # debounceMs: a change waits that long before its trace starts.
    await change_settings(client, debounceMs=1500)
    await asyncio.sleep(0.3)  # let the server apply it
    after = len(s.statuses)
    sent = time.monotonic()
    s.replace(doc, "int64(8, 20)", "int64(8, 21)")
    await wait_for(lambda: any(st["state"] == "tracing" for st in s.statuses[after:]), 20, "the trace")
    assert time.monotonic() - sent >= 1.4


async def test_trace_now_skips_the_debounce_and_status_reports(client: LanguageClient, tmp_path: Path) -> None:
    s = Session(client, tmp_path)
    await s.start({"debounceMs": 60000})
    doc = s.open("tagger.py", TAGGER)
    await s.wait_traced(doc)  # opening traces at once
    states = [st["state"] for st in s.statuses]
    assert states[0] == "starting" and "tracing" in states and states[-1] == "idle"
    assert s.statuses[-1]["torch"] and s.statuses[-1]["elapsedMs"] > 0

    after = len(s.statuses)
    s.replace(doc, "int64(8, 20)", "int64(3, 20)")
    await asyncio.sleep(1.0)
    assert not s.traced(doc, after)  # the 60 s debounce holds it
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="shapelens.traceNow", arguments=[doc.uri])
    )
    assert result == {"traced": True, "version": doc.version}
    line = position_of(doc.text, "positions = ids.argsort").line
    assert "int64[3, 20]" in hint_at(await s.inlay_hints(doc), line)
    tracing = [st for st in s.statuses[after:] if st["state"] == "tracing"]
    assert len(tracing) == 1 and tracing[0]["uri"] == doc.uri


async def test_torch_missing_warns_once_and_static_checks_go_on(client: LanguageClient, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "venv", "--without-pip", str(venv))
    assert await process.wait() == 0
    python = venv / "bin" / "python"
    s = Session(client, tmp_path)
    await s.start({"interpreter": str(python)})
    doc = s.open("net.py", marker_model(tmp_path / "ran.txt"))
    await s.wait_diagnostics(doc, lambda ds: any(d.code == "SL202" for d in ds))
    error = await wait_for(
        lambda: next((st for st in s.statuses if st["state"] == "error"), None), 60, "an error status"
    )
    assert "torch" in error["message"].lower()
    await wait_for(lambda: client.messages, 10, "a message")
    s.open("other.py", TAGGER)
    await asyncio.sleep(1.0)
    (message,) = client.messages
    assert message.type == types.MessageType.Warning
    assert "pip install torch" in message.message and str(python) in message.message
    assert await s.inlay_hints(doc) == []
