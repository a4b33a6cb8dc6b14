"""The server and its trace worker never import from the workspace. A workspace holding `argparse.py`,
`tokenize.py`, `difflib.py` and `jedi.py` (modules the server imports) must not run them: not when the server
is started from the workspace folder the way editors start it (`python -m shapelens.cli serve`, cwd the
workspace), not when the worker starts, and not from `shapelens check` run in that folder. Each shadowing
file writes a marker outside the workspace if it is ever imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import Session, hint_at, make_client, position_of

pytestmark = pytest.mark.timeout(180)

SHADOWED = ("argparse", "tokenize", "difflib", "jedi", "json")
SERVER_ROOT = str(Path(__file__).resolve().parents[2] / "server")

MODEL = """\
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = self.fc(x)
        return y


out = Net()(torch.randn(3, 8))
"""


def hostile_workspace(tmp_path: Path) -> tuple[Path, Path]:
    workspace, markers = tmp_path / "ws", tmp_path / "markers"
    workspace.mkdir()
    markers.mkdir()
    for name in SHADOWED:
        (workspace / f"{name}.py").write_text(f"open({str(markers / name)!r}, 'w').write('ran')\n")
    (workspace / "net.py").write_text(MODEL)
    return workspace, markers


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SERVER_ROOT}


@pytest.mark.parametrize("cwd", ["workspace", "elsewhere"])
async def test_server_started_from_the_workspace_imports_nothing_from_it(tmp_path: Path, cwd: str) -> None:
    workspace, markers = hostile_workspace(tmp_path)
    client = make_client()
    # As editors start it: `-m` from the workspace folder; and as the VS Code client does now (own folder).
    await client.start_io(
        sys.executable,
        "-m",
        "shapelens.cli",
        "serve",
        env=env(),
        cwd=str(workspace if cwd == "workspace" else tmp_path),
    )
    try:
        s = Session(client, workspace)
        await s.start({"debounceMs": 0})
        doc = s.open("net.py")
        await s.wait_traced(doc)  # the worker started and traced
        line = position_of(doc.text, "y = self.fc(x)").line
        assert "[3, 4]" in hint_at(await s.inlay_hints(doc), line)
        await s.hover(doc, line, 8)  # jedi-backed features ran too
    finally:
        await client.shutdown_session()
    assert sorted(p.name for p in markers.iterdir()) == []


@pytest.mark.parametrize("command", [["shapelens"], [sys.executable, "-m", "shapelens.cli"]])
def test_check_run_in_the_workspace_imports_nothing_from_it(tmp_path: Path, command: list[str]) -> None:
    workspace, markers = hostile_workspace(tmp_path)
    if command == ["shapelens"]:
        command = [str(Path(sys.executable).with_name("shapelens"))]
    result = subprocess.run(
        [*command, "check", "net.py"], cwd=workspace, env=env(), capture_output=True, text=True, timeout=120
    )
    assert sorted(p.name for p in markers.iterdir()) == []
    assert result.returncode == 0, result.stderr
    assert "y: [3, 4]" in result.stdout
