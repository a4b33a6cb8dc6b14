"""Shapelens in a Jupyter notebook in real VS Code: code-server 4.139 (its built-in `vscode.ipynb` notebook
support, offline, no Jupyter extension and no kernel) with the built .vsix, driven through Chromium.

The notebook has an imports cell, a model cell (`class Net` with a wrong `nn.Linear` in_features after a
flatten) and a call cell (`out = model(torch.randn(4, 3, 32, 32))`): the server traces the cells as one
program. The shapes a real CPU run binds show as inlay hints in the model cell, SL101 is in the Problems
panel, and its quick fix (Ctrl+. in the cell) fixes the cell, after which the hints follow the fixed model.
A screenshot of each step is kept under test-artifacts/vscode-notebook/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import editor_tools as tools
import pytest
from oracle import run_on_cpu
from test_vscode import FIRST_TRACE_S, Session, plain, vscode_session

pytestmark = [pytest.mark.editor, pytest.mark.timeout(420)]

NOTEBOOK = "shapes.ipynb"
IMPORTS = "import torch\nimport torch.nn as nn"
MODEL = """class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(100, 10)

    def forward(self, x):
        x = self.conv(x)
        x = torch.flatten(x, 1)
        return self.fc(x)"""
CALL = "model = Net()\nout = model(torch.randn(4, 3, 32, 32))"

# Every rendered line of the notebook's cell editors: its code and its inlay hints (`dyn-rule` spans).
READ_CELL_LINES = """() => {
  const out = [];
  for (const line of document.querySelectorAll('.notebook-editor .monaco-editor .view-lines .view-line')) {
    const leaves = Array.from(line.querySelectorAll('span')).filter(s => s.children.length === 0);
    const isHint = s => /dyn-rule/.test(s.className);
    out.push({
      code: leaves.filter(s => !isHint(s)).map(s => s.textContent).join(''),
      hints: leaves.filter(isHint).map(s => s.textContent).filter(t => t.trim().length > 0),
    });
  }
  return out;
}"""


def notebook_json() -> str:
    def code(source: str, count: int) -> dict[str, Any]:
        lines = source.split("\n")
        return {
            "cell_type": "code",
            "execution_count": count,
            "metadata": {},
            "outputs": [],
            "source": [line + "\n" for line in lines[:-1]] + [lines[-1]],
        }

    document = {
        "cells": [code(IMPORTS, 1), code(MODEL, 2), code(CALL, 3)],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def cpu_labels(folder: Path, model: str) -> dict[str, str]:
    """Statement text -> the shape a real CPU run binds there ("[4, 7200]"), the cells run as one script."""
    script = folder / "as_script.py"
    script.write_text(f"{IMPORTS}\n{model}\n")
    run = run_on_cpu(str(script), "Net", inputs=[(4, 3, 32, 32)])
    lines = script.read_text().split("\n")
    return {lines[r.line - 1].strip(): "[" + ", ".join(map(str, r.shapes[0])) + "]" for r in run.records}


def cell_hints(vscode: Session) -> dict[str, str]:
    """Code line (stripped) -> its hints joined, for the lines that have hints."""
    rows = vscode.page.evaluate(READ_CELL_LINES)
    return {plain(r["code"]).strip(): " | ".join(plain(h) for h in r["hints"]) for r in rows if r["hints"]}


def test_vscode_notebook_hints_problems_and_quick_fix(tmp_path: Path, vsix_package: Path) -> None:
    python = tools.torch_only_python(tmp_path / "user-env")
    before = cpu_labels(tmp_path, MODEL)  # up to the wrong Linear: conv and flatten
    after = cpu_labels(tmp_path, MODEL.replace("nn.Linear(100, 10)", "nn.Linear(7200, 10)"))
    assert before["x = torch.flatten(x, 1)"] == "[4, 7200]" and "return self.fc(x)" in after
    # Opened from the Explorer, code-server 4.139 showed the .ipynb as JSON text: the association makes it
    # open in VS Code's notebook editor (the built-in `vscode.ipynb`), as desktop VS Code does by default.
    associations = {"workbench.editorAssociations": {"*.ipynb": "jupyter-notebook"}}
    files = {NOTEBOOK: notebook_json(), ".vscode/settings.json": json.dumps(associations)}
    shots = tools.ARTIFACTS / "vscode-notebook"
    with vscode_session(tmp_path, vsix_package, python, shots, files=files) as vscode:
        page = vscode.page
        # 1. Open the notebook from the Explorer: VS Code's own notebook editor.
        page.get_by_role("treeitem", name=NOTEBOOK).click(timeout=FIRST_TRACE_S * 1000)
        page.wait_for_selector(".notebook-editor .monaco-editor .view-lines")
        vscode.shot("opened")

        # 2. The hints in the model cell, as the CPU run binds them (the model is called in the next cell).
        def hints_like(truth: dict[str, str]) -> dict[str, str] | None:
            shown = cell_hints(vscode)
            return shown if all(want in shown.get(code, "") for code, want in truth.items()) else None

        shown = vscode.wait_until(f"the hints {before} in the model cell", lambda: hints_like(before), FIRST_TRACE_S)
        assert "→" in shown.get("self.conv = nn.Conv2d(3, 8, 3)", ""), shown  # the layer's in → out
        vscode.shot("hints")

        # 3. SL101 in the Problems panel, its message from the trace.
        page.keyboard.press("Control+Shift+M")
        problems = vscode.wait_until(
            "SL101 in the Problems panel",
            lambda: (t := vscode.panel_text(".markers-panel")) and "SL101" in t and t,
        )
        assert "receives [4, 7200]" in problems, problems
        vscode.shot("problems")
        page.keyboard.press("Control+j")  # hide the panel again

        # 4. The quick fix, in the cell: cursor on `100`, Ctrl+., choose "Set in_features to 8 * 30 * 30".
        row = page.locator(".notebook-editor .view-line", has_text="nn.Linear(100, 10)").first
        box = row.bounding_box()
        text = plain(row.inner_text())
        assert box and "100" in text, text
        char_width = _char_width(row)
        page.mouse.click(box["x"] + char_width * (text.index("100") + 1.5), box["y"] + box["height"] / 2)
        page.keyboard.press("Control+.")
        title = "Set in_features to 8 * 30 * 30"
        menu = page.locator(".action-widget .monaco-list-row", has_text=title)
        vscode.wait_until(f"the quick fix '{title}'", lambda: menu.count() > 0)
        vscode.shot("quick-fix-menu")
        menu.first.click()

        # 5. The cell is fixed, SL101 leaves the Problems panel, and the hints follow the fixed model.
        vscode.wait_until(
            "the fixed line in the cell",
            lambda: page.locator(".notebook-editor .view-line", has_text="nn.Linear(8 * 30 * 30, 10)").count() > 0,
        )
        page.keyboard.press("Escape")
        fixed = vscode.wait_until(f"the hints {after} after the fix", lambda: hints_like(after), FIRST_TRACE_S)
        assert "[4, 10]" in fixed["return self.fc(x)"], fixed
        page.keyboard.press("Control+Shift+M")
        vscode.wait_until(
            "SL101 to leave the Problems panel", lambda: "SL101" not in vscode.panel_text(".markers-panel")
        )
        vscode.shot("fixed")
        log = vscode.shapelens_log()
        assert "The server stopped" not in log, log[-3000:]


def _char_width(row: Any) -> float:
    """The width of one character of the editor's monospace font, measured on the row's first code span."""
    leaf = row.locator("span > span").first
    box = leaf.bounding_box()
    text = leaf.inner_text()
    assert box and text
    return float(box["width"]) / len(text)
