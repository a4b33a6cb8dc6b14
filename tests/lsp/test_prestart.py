"""The trace worker started with the server (SHAPELENS_START_WORKER=1, what the VS Code client sets in a trusted
workspace): the server adopts it rather than starting a second one, and ends it when the workspace turns out to
be untrusted."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from harness import SERVER, Session, make_client, wait_for
from models import batch_model
from pytest_lsp import ClientServerConfig, LanguageClient

pytestmark = pytest.mark.timeout(120)


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=SERVER, client_factory=make_client, server_env={**os.environ, "SHAPELENS_START_WORKER": "1"}
    )
)
async def client(lsp_client: LanguageClient) -> Any:
    yield
    server = lsp_client._server
    if server is not None and server.returncode is None:
        await lsp_client.shutdown_session()


def _workers_of(pid: int) -> list[int]:
    """The server's child processes running the trace worker."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().split(b"\0")
        except OSError:
            continue
        if parent == pid and b"shapelens.trace.worker" in command:
            found.append(int(entry))
    return found


async def test_the_early_worker_is_the_one_that_traces(client: LanguageClient, tmp_path: Path) -> None:
    server = client._server
    assert server is not None
    early = await wait_for(lambda: _workers_of(server.pid), 30, "the worker started with the server")
    s = Session(client, tmp_path)
    await s.start()
    doc = s.open("model.py", batch_model(2))
    await s.wait_traced(doc)
    assert _workers_of(server.pid) == early  # adopted: no second worker


async def test_an_untrusted_workspace_ends_the_early_worker(client: LanguageClient, tmp_path: Path) -> None:
    server = client._server
    assert server is not None
    await wait_for(lambda: _workers_of(server.pid), 30, "the worker started with the server")
    s = Session(client, tmp_path)
    await s.start({"workspaceTrusted": False})
    await wait_for(lambda: any(st["state"] == "untrusted" for st in s.statuses), 30, "the untrusted status")
    await wait_for(lambda: not _workers_of(server.pid), 10, "the early worker to end")
