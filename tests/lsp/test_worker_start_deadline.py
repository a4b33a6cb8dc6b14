"""An interpreter that never says it is ready (a wrapper script that hangs, a Python stuck importing) gets a
clear message after the start-up deadline instead of "starting" forever; `shutdown` answers, and nothing the
interpreter started outlives the server."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from harness import SERVER, Session, make_client, wait_for
from lsprotocol import types
from test_trust_and_settings import marker_model

pytestmark = pytest.mark.timeout(120)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_an_interpreter_that_never_answers(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    hang = tmp_path / "python-that-hangs"
    hang.write_text(f"#!/bin/sh\nsleep 300 &\necho $$ $! > {pids}\nwait\n")
    hang.chmod(0o755)
    client = make_client()
    await client.start_io(*SERVER, env={**os.environ, "SHAPELENS_WORKER_START_TIMEOUT": "3"})
    s = Session(client, tmp_path)
    await s.start({"interpreter": str(hang), "debounceMs": 0})
    started = time.monotonic()
    doc = s.open("net.py", marker_model(tmp_path / "ran.txt"))
    await s.wait_diagnostics(doc, lambda ds: any(d.code == "SL202" for d in ds))  # static checks go on
    error = await wait_for(
        lambda: next((st for st in s.statuses if st["state"] == "error"), None), 30, "an error status"
    )
    assert time.monotonic() - started < 20
    assert "did not start within 3 s" in error["message"] and str(hang) in error["message"]
    await wait_for(lambda: client.messages, 10, "a message to the user")
    assert "did not start within 3 s" in client.messages[0].message
    assert client.messages[0].type == types.MessageType.Warning
    shell, sleeper = (int(p) for p in pids.read_text().split())
    await client.shutdown_session()  # answers, no error
    await wait_for(lambda: not alive(shell) and not alive(sleeper), 10, "the interpreter's processes to end")
