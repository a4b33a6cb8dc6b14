"""pytest fixtures for the language server tests: `client` is the real `shapelens serve`, over stdio."""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

import pytest_lsp
from harness import SERVER, make_client
from pytest_lsp import ClientServerConfig, LanguageClient


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, client_factory=make_client))
async def client(lsp_client: LanguageClient) -> Any:
    yield
    # Shut down (unless the test did) so the server and its worker exit before the next test.
    server = lsp_client._server
    if server is not None and server.returncode is None:
        await lsp_client.shutdown_session()
