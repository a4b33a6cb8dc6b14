"""The seed scenario end to end: a LeNet whose first Linear was sized by hand. The server must report SL101
with its rules link, related forward line and fix; show the shapes a real CPU run produces; explain the
layer on hover; and once the offered fix is applied, clear the diagnostic and show the shapes after fc1.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch
from harness import Session, hint_at, label, position_of
from lsprotocol import types
from models import LENET, cpu_truth, directive_inputs, expected_labels, layer_io
from pytest_lsp import LanguageClient
from shapelens.analysis.rules import rule
from torch.utils.flop_counter import FlopCounterMode

pytestmark = pytest.mark.timeout(120)


def text_in(text: str, rng: types.Range) -> str:
    lines = text.split("\n")
    assert rng.start.line == rng.end.line
    return lines[rng.start.line][rng.start.character : rng.end.character]


async def test_wrong_linear_diagnostic_hints_hover_and_fix(client: LanguageClient, tmp_path: Path) -> None:
    s = Session(client, tmp_path)
    await s.start()
    doc = s.open("lenet.py", LENET)

    diagnostics = await s.wait_diagnostics(doc, lambda ds: any(d.code == "SL101" for d in ds))
    sl101 = next(d for d in diagnostics if d.code == "SL101")
    assert sl101.source == "shapelens"
    assert sl101.severity == types.DiagnosticSeverity.Error
    assert sl101.code_description is not None and sl101.code_description.href == rule("SL101").url
    assert "16 * 5 * 5" in text_in(doc.text, sl101.range)
    # relatedInformation points at the forward line where fc1 met its input
    assert sl101.related_information
    forward_line = position_of(doc.text, "x = F.relu(self.fc1(x))").line
    assert any(r.location.range.start.line == forward_line for r in sl101.related_information)
    data = sl101.data
    assert data is not None and data["fixes"] and any(f["safe"] for f in data["fixes"])

    # Hints up to the failing line equal what the real CPU run bound there.
    truth = cpu_truth(doc.path, "LeNet")
    assert truth.error is not None  # fc1 really is wrong: mat1 and mat2 shapes cannot be multiplied
    expected = expected_labels(truth, doc.path)
    assert len(expected) >= 3
    hints = await s.inlay_hints(doc)
    for line, want in expected.items():
        assert want in hint_at(hints, line), (line, hint_at(hints, line))

    # The quick fix: preferred (safe), writes the traced size.
    actions = await s.code_actions(doc, sl101.range, [sl101], only=[types.CodeActionKind.QuickFix])
    preferred = [a for a in actions if a.is_preferred]
    assert len(preferred) == 1, [a.title for a in actions]
    assert any("ignore[SL101]" in a.title for a in actions)
    edit = preferred[0].edit
    assert edit is not None and edit.changes is not None
    after = len(s.statuses)
    s.edit(doc, list(edit.changes[doc.uri]))
    assert "nn.Linear(16 * 6 * 6, 120)" in doc.text

    await s.wait_traced(doc, after)
    diagnostics = await s.wait_diagnostics(doc, lambda ds: True)
    assert not [d for d in diagnostics if d.code == "SL101"]

    # Now the whole forward runs on CPU: every line's hint, fc1 and the return included.
    doc.path.write_text(doc.text, encoding="utf-8")
    truth = cpu_truth(doc.path, "LeNet")
    assert truth.error is None
    expected = expected_labels(truth, doc.path)
    hints = await s.inlay_hints(doc)
    for line, want in expected.items():
        assert want in hint_at(hints, line), (line, hint_at(hints, line))
    assert label(tuple(truth.output.shape)) in hint_at(hints, position_of(doc.text, "return self.fc2(x)").line)

    # Layer hints on the constructors: what each layer received and returned (forward hooks on CPU).
    io = layer_io(truth.model, directive_inputs(doc.path, "LeNet"))
    fc1_in, fc1_out = io["fc1"]
    fc1_line = position_of(doc.text, "self.fc1 = nn.Linear").line
    assert f"{label(fc1_in[0])} → {label(fc1_out[0])}" in hint_at(hints, fc1_line)
    conv1_in, conv1_out = io["conv1"]
    assert f"{label(conv1_in[0])} → {label(conv1_out[0])}" in hint_at(
        hints, position_of(doc.text, "self.conv1 = nn.Conv2d").line
    )

    # Hover on `self.fc1` in forward: shapes, parameter count and bytes, FLOPs. The FLOPs come from a
    # follow-up trace after the hints are out, so the hover gains them a moment later.
    text = ""
    for _ in range(100):
        hover = await s.hover(doc, *_at(doc.text, "self.fc1(x)", 6))
        assert hover is not None and isinstance(hover.contents, types.MarkupContent)
        text = hover.contents.value
        if "FLOPs" in text:
            break
        await asyncio.sleep(0.1)
    params = sum(p.numel() for p in truth.model.fc1.parameters())
    assert f"{params:,}" in text, text
    assert label(fc1_in[0]) in text and label(fc1_out[0]) in text
    with FlopCounterMode(display=False) as counter:  # the same layer on the CPU input it really gets
        truth.model.fc1(torch.randn(fc1_in[0]))
    flops = counter.get_total_flops()
    assert "FLOPs" in text and f"{flops / 1e3:.1f} KFLOPs" in text, (flops, text)
    assert "Linear" in text

    # Hover on a variable: its shape, dtype and device.
    line = position_of(doc.text, "x = torch.flatten(x, 1)").line
    hover = await s.hover(doc, line, 8)
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert label(truth.shapes()[(str(doc.path.resolve()), line + 1, "x")][0]) in hover.contents.value
    assert "float32" in hover.contents.value and "meta" in hover.contents.value
    # ...and the `x` it reads (inside the call) is the previous statement's x
    hover = await s.hover(doc, *_at(doc.text, "torch.flatten(x", 14))
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert label(truth.shapes()[(str(doc.path.resolve()), line, "x")][0]) in hover.contents.value
    # the forward's parameter: no statement bound it, so no shape is claimed
    assert await s.hover(doc, *_at(doc.text, "def forward(self, x", 18)) is None


async def test_dropout_hover_explains_train_and_eval(client: LanguageClient, tmp_path: Path) -> None:
    s = Session(client, tmp_path)
    await s.start()
    doc = s.open("lenet.py", LENET.replace("16 * 5 * 5", "16 * 6 * 6"))
    await s.wait_traced(doc)
    hover = await s.hover(doc, *_at(doc.text, "nn.Dropout(p=0.25)", 4))
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    text = hover.contents.value
    assert "p=0.25" in text
    assert "1/(1-0.25)" in text  # survivors scaled at train time
    assert "eval mode" in text and "identity" in text
    assert "never changes a shape" in text
    assert "this trace ran in" in text
    # hover on the attribute, in forward and where __init__ assigns it, gives the same layer
    for needle in ("self.drop(x)", "self.drop = "):
        again = await s.hover(doc, *_at(doc.text, needle, 6))
        assert again is not None and isinstance(again.contents, types.MarkupContent)
        assert again.contents.value == text


MLP = """\
import torch
from torch import nn


# shapelens: x=(2, 16)
class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(16, 32),
            nn.GELU(),
            nn.Dropout(0.1),
            nn.Linear(32, 4),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
"""


async def test_sequential_entries_get_layer_hints(client: LanguageClient, tmp_path: Path) -> None:
    s = Session(client, tmp_path)
    await s.start()
    doc = s.open("mlp.py", MLP)
    await s.wait_traced(doc)
    truth = cpu_truth(doc.path, "MLP")
    io = layer_io(truth.model, directive_inputs(doc.path, "MLP"))
    hints = await s.inlay_hints(doc)
    for index, needle in enumerate(["nn.Linear(16, 32)", "nn.GELU()", "nn.Dropout(0.1)", "nn.Linear(32, 4)"]):
        inputs, outputs = io[f"net.{index}"]
        line = position_of(doc.text, needle).line
        assert f"{label(inputs[0])} → {label(outputs[0])}" in hint_at(hints, line), (needle, hint_at(hints, line))
    hover = await s.hover(doc, *_at(doc.text, "nn.Linear(32, 4)", 3))
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert "net[3]" in hover.contents.value
    params = sum(p.numel() for p in truth.model.net[3].parameters())
    assert f"params **{params:,}**" in hover.contents.value


def _at(text: str, needle: str, delta: int = 0) -> tuple[int, int]:
    position = position_of(text, needle, delta=delta)
    return position.line, position.character
