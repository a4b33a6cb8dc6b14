"""Trust fails closed: a bad or unknown `shapelens.trusted` value means untrusted, only the documented keys
are read (a nested `{"shapelens": {"trusted": true}}` is no setting), and the editor's word that the
workspace is untrusted (`initializationOptions.workspaceTrusted: false`) cannot be overridden by settings."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from harness import Session
from lsprotocol import types
from pytest_lsp import LanguageClient
from test_trust_and_settings import change_settings, children, marker_model

pytestmark = pytest.mark.timeout(120)


async def assert_untrusted(client: LanguageClient, s: Session, marker: Path) -> None:
    doc = s.open("net.py", marker_model(marker))
    await s.wait_diagnostics(doc, lambda ds: any(d.code == "SL202" for d in ds))  # static checks still run
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="shapelens.traceNow", arguments=[doc.uri])
    )
    assert result == {"traced": False, "reason": "untrusted"}
    assert not Path(str(marker) + ".build").exists(), "the model was built: user code ran"
    assert client._server is not None and children(client._server.pid) == []  # no worker was started
    assert s.statuses[-1]["state"] == "untrusted"


@pytest.mark.parametrize("value", [0, "no", "false ", None, [True], {"value": True}])
async def test_a_bad_trust_value_means_untrusted(client: LanguageClient, tmp_path: Path, value: Any) -> None:
    s = Session(client, tmp_path)
    await s.start({"trusted": value})
    await assert_untrusted(client, s, tmp_path / "ran.txt")
    if value is not None:
        assert any("shapelens.trusted" in m.message and "False" in m.message for m in client.log_messages)


async def test_a_nested_shapelens_key_does_not_override_trust(client: LanguageClient, tmp_path: Path) -> None:
    # What VS Code answers for the "shapelens" section when a workspace's settings.json holds
    # "shapelens.shapelens.trusted": true next to a false "shapelens.trusted".
    client.set_configuration({"trusted": False, "shapelens": {"trusted": True}}, section="shapelens")
    s = Session(client, tmp_path)
    await s.start({"shapelens": {"trusted": False}})
    await assert_untrusted(client, s, tmp_path / "ran.txt")


async def test_the_editors_restricted_mode_is_final(client: LanguageClient, tmp_path: Path) -> None:
    client.set_configuration({"trusted": True}, section="shapelens")
    s = Session(client, tmp_path)
    await s.start({"workspaceTrusted": False, "settings": {"trusted": True}})
    marker = tmp_path / "ran.txt"
    await assert_untrusted(client, s, marker)
    # A settings push that says trusted changes nothing either.
    await change_settings(client, trusted=True)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"shapelens": {"trusted": True}})
    )
    await asyncio.sleep(1.0)
    await assert_untrusted(client, s, marker)
