"""The editor's faces of the symbolic pass (#13): the inlay hint shows the named form (`[B, 6, H/2, W/2]`) unless
`shapelens.inlayHints.symbolic` is off, the hover shows it beside the traced example's numbers, the hover on a
model's class the input sizes it accepts and the names' example values; a hint keeps its form while the user
types above it. The labels are the trace's own strings, shown as they are.

Below the protocol first (constructed hints and models), then through the real server over stdio.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from harness import Session, hint_at, label, position_of, wait_for
from lsprotocol import types
from models import cpu_truth
from pytest_lsp import LanguageClient
from shapelens.core.findings import FileReport, Hint, ModelInput, TracedModel
from shapelens.core.symbolic import evaluate_shape, label_entries
from shapelens.lsp import convert, render
from shapelens.lsp.settings import Settings, parse_settings
from shapelens.lsp.shift import Change, shift_report

PATH = "/m.py"
SOURCE = "x = self.conv(x)\nx = self.pool(x)\nids = x.argmax(1)\n"


def _hint(line: int, shapes: list[tuple[int | None, ...]], symbolic: list, dtype: str = "float32") -> Hint:  # type: ignore[type-arg]
    return Hint(PATH, line, line, 17, "x", shapes, dtype, "meta", "Conv2d", None, symbolic)


CONV = _hint(1, [(4, 6, 28, 28)], [("B", 6, "H - 4", "W - 4")])
POOL = _hint(2, [(4, 6, 14, 14), (8, 6, 14, 14), (4, 6, 7, 7)], [("B", 6, "H/2", "W/2"), ("B", 6, "H/2", "W/2"), None])
IDS = _hint(3, [(4, 14, 14)], [("B", "H/2", "W/2")], dtype="int64")


def _labels(hints: list[Hint], **options: bool) -> list[str]:
    found = convert.inlay_hints(hints, [], convert.Text.of(SOURCE), **options)
    return [h.label for h in found]  # type: ignore[misc]


def test_the_inlay_hint_shows_the_symbolic_form_by_default() -> None:
    assert _labels([CONV, IDS]) == ["[B, 6, H - 4, W - 4]", "int64[B, H/2, W/2]"]
    # a line that ran at two batch sizes is one form; a shape without a form keeps its numbers
    assert _labels([POOL]) == ["[B, 6, H/2, W/2] | [4, 6, 7, 7]"]
    assert _labels([CONV, IDS], show_dtype=False) == ["[B, 6, H - 4, W - 4]", "[B, H/2, W/2]"]


def test_symbolic_off_shows_the_traced_numbers() -> None:
    assert _labels([CONV, POOL], symbolic=False) == ["[4, 6, 28, 28]", "[4, 6, 14, 14] | [8, 6, 14, 14] | [4, 6, 7, 7]"]
    plain = _hint(1, [(4, 6, 28, 28)], [])  # no symbolic pass: the numbers, whatever the setting
    assert _labels([plain]) == _labels([plain], symbolic=False) == ["[4, 6, 28, 28]"]


def test_the_setting_is_on_or_off() -> None:
    assert Settings().symbolic == "on"
    for value, expected in (("off", "off"), ("OFF", "off"), ("on", "on"), (False, "off"), (True, "on")):
        parsed, warnings = parse_settings({"inlayHints": {"symbolic": value}})
        assert parsed.symbolic == expected and not warnings, value
    parsed, warnings = parse_settings({"shapelens.inlayHints.symbolic": "sometimes"})
    assert parsed.symbolic == "on" and "shapelens.inlayHints.symbolic" in warnings[0]


def test_hovers_put_the_form_beside_the_example() -> None:
    hover = render.variable_markdown(CONV)
    assert "(tensor) x: Tensor[B, 6, H - 4, W - 4]  # float32" in hover
    assert "`[B, 6, H - 4, W - 4]` · traced example `[4, 6, 28, 28]`" in hover
    tooltip = render.hints_tooltip([IDS])
    assert "**x** `int64[B, H/2, W/2]` · traced example `int64[4, 14, 14]`" in tooltip
    plain = render.variable_markdown(_hint(1, [(4, 6, 28, 28)], []))
    assert "Tensor[4, 6, 28, 28]" in plain and "traced example" not in plain
    fixed = _hint(1, [(16, 16)], [(16, 16)])  # a form of numbers only (a mask the model sizes): said once
    assert "`[16, 16]`" in render.hints_tooltip([fixed]) and "traced example" not in render.hints_tooltip([fixed])


def test_the_class_hover_says_which_input_sizes_the_model_accepts() -> None:
    given = ModelInput("x", (4, 3, 32, 32), "float32", None, ("B", 3, "H", "W"))
    accepts = "x: [B, 3, H, W] with H, W ≡ 0 mod 4 and 32·(H/4)·(W/4) = 2048"
    model = TracedModel("Net", 5, "directive", [given], [], {"B": 4, "H": 32, "W": 32}, accepts)
    hover = render.model_markdown(model)
    assert "traced with `x: [4, 3, 32, 32]` (your directive)" in hover
    assert f"**accepts** `{accepts}`" in hover
    assert "in the traced example `B = 4`, `H = 32`, `W = 32`" in hover
    bare = render.model_markdown(TracedModel("Net", 5, "directive", [ModelInput("x", (4, 3, 32, 32), "float32")]))
    assert "traced with `x: [4, 3, 32, 32]` (your directive)" in bare and "accepts" not in bare
    # no guards said anything: the inputs' symbolic forms are what it accepts
    formed = TracedModel("Net", 5, "directive", [given], [], {"B": 4, "H": 32, "W": 32})
    assert "**accepts** `x: [B, 3, H, W]`" in render.model_markdown(formed)


def test_a_hint_keeps_its_form_while_the_user_types_above_it() -> None:
    report = FileReport(PATH, hints=[CONV, POOL])
    change = Change(types.Range(types.Position(0, 0), types.Position(0, 0)), "# a comment\n")
    moved = shift_report(report, PATH, change)
    assert [(h.line, h.symbolic) for h in moved.hints] == [(2, CONV.symbolic), (3, POOL.symbolic)]
    text = convert.Text.of("# a comment\n" + SOURCE)
    assert next(h.label for h in convert.inlay_hints(moved.hints, [], text)) == "[B, 6, H - 4, W - 4]"


# -- through the real server ------------------------------------------------------------------------------

CNN = """\
import torch
from torch import nn


# shapelens: x=(2, 3, 32, 32)
class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        y = self.pool(torch.relu(self.conv(x)))
        flat = y.mean(dim=(2, 3))
        return self.head(flat)
"""


async def _change_settings(client: LanguageClient, **values: object) -> None:
    config = client.get_configuration(section="shapelens") or {}
    client.set_configuration({**config, **values}, section="shapelens")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))


@pytest.mark.timeout(180)
async def test_symbolic_hints_and_hovers_in_the_server(client: LanguageClient, tmp_path: Path) -> None:
    s = Session(client, tmp_path)
    await s.start({"inlayHints": {"symbolic": "on"}, "debounceMs": 0})
    doc = s.open("cnn.py", CNN)
    await s.wait_traced(doc)
    # the plain trace's numbers come first; the named sizes follow from the trace after it (with the FLOPs)
    await _wait_symbolic(s, doc)
    truth = cpu_truth(doc.path, "Cnn").shapes()
    real = str(doc.path.resolve())
    lines = {name: position_of(doc.text, needle).line for name, needle in
             (("y", "y = self.pool"), ("flat", "flat = y.mean"), ("return", "return self.head"))}  # fmt: skip

    # the class hover: the accepted input sizes and each name's value in the traced example
    hover = await s.hover(doc, *_at(doc.text, "class Cnn", 7))
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    text = hover.contents.value
    assert "traced with `x: [2, 3, 32, 32]` (your directive)" in text and "**accepts** `x: [B, 3, H, W]" in text
    values = {name: int(value) for name, value in re.findall(r"`(\w+) = (\d+)`", text)}
    assert values.get("B") == 2, text

    # every hint is the symbolic form, and the form with the example's values is the CPU run's shape
    hints = await s.inlay_hints(doc)
    shown = {name: hint_at(hints, line) for name, line in lines.items()}
    for name, line in lines.items():
        [label_] = shown[name]
        (cpu,) = truth[(real, line + 1, name)]
        assert evaluate_shape(label_entries(label_), values) == tuple(cpu), (name, label_, values)
    assert shown["flat"] == ["[B, 8]"] and shown["return"] == ["[B, 10]"]
    assert label_entries(shown["y"][0])[:2] == ["B", "8"] and "H" in shown["y"][0] and "W" in shown["y"][0]

    # the hover on a variable: the form beside the example's numbers
    hover = await s.hover(doc, *_at(doc.text, "flat = y.mean", 1))
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert "(tensor) flat: Tensor[B, 8]" in hover.contents.value
    assert "`[B, 8]` · traced example `[2, 8]`" in hover.contents.value

    # symbolic off: the numbers of the traced example, without a new trace
    refreshes = client.refreshes  # type: ignore[attr-defined]
    await _change_settings(client, inlayHints={"symbolic": "off"})
    await wait_for(lambda: client.refreshes > refreshes, 10, "an inlay hint refresh")  # type: ignore[attr-defined]
    hints = await s.inlay_hints(doc)
    for name, line in lines.items():
        (cpu,) = truth[(real, line + 1, name)]
        assert hint_at(hints, line) == [label(tuple(cpu))], name


async def _wait_symbolic(s: Session, doc: Any) -> None:
    for _ in range(300):
        if any("B" in shown for hint in await s.inlay_hints(doc) for shown in [str(hint.label)]):
            return
        await asyncio.sleep(0.2)
    raise AssertionError("no symbolic hint within 60 s")


def _at(text: str, needle: str, delta: int) -> tuple[int, int]:
    position = position_of(text, needle, delta=delta)
    return position.line, position.character
