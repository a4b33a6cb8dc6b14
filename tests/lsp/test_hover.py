"""What a hover names, below the protocol: the binding that reaches a use of a name and the layers a
`self.<attr>` names (`analysis.bindings` over `analysis.outline`); and, through the real server, what a
model's class name says about the input it was traced with."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import Session, position_of
from lsprotocol import types
from pytest_lsp import LanguageClient
from shapelens.analysis.bindings import hint_for_word, layers_by_attribute
from shapelens.analysis.outline import outline, word_at
from shapelens.core.findings import Hint, LayerInfo, Span

SOURCE = (
    "class Net:\n"  # 1
    "    def __init__(self):\n"  # 2
    "        self.fc = Linear(4, 2)\n"  # 3
    "    def forward(self, x):\n"  # 4
    "        y = self.fc(x)\n"  # 5
    "        y = y + y\n"  # 6
    "        return y\n"  # 7
)


def _hint(target: str, line: int, size: int) -> Hint:
    return Hint("/m.py", line, line, 20, target, [(2, size)], "float32", "meta")


HINTS = [_hint("y", 5, 2), _hint("y", 6, 3), _hint("return", 7, 3)]


def _at(line: int, column: int) -> Hint | None:
    word = word_at(SOURCE.splitlines()[line - 1], column)
    assert word is not None
    return hint_for_word(HINTS, outline("/m.py", SOURCE), word, line)


def test_a_name_means_the_binding_that_reaches_it() -> None:
    assert _at(6, 8) == HINTS[1]  # the `y` this statement binds
    assert _at(6, 13) == HINTS[0]  # a `y` read on the right-hand side: the previous binding
    assert _at(7, 16) == HINTS[1]  # `return y`: the last binding above
    assert _at(7, 9) == HINTS[2]  # `return` itself
    assert _at(5, 20) is None  # a parameter: no hint says what it was


def test_return_of_a_tuple_hovers_its_first_tensor() -> None:
    # `return y, y` records return[0] and return[1] (a tuple's elements, #8): hovering `return` finds them
    returned = [_hint("y", 5, 2), _hint("return[0]", 7, 2), _hint("return[1]", 7, 2)]
    word = word_at(SOURCE.splitlines()[6], 9)
    assert word is not None
    assert hint_for_word(returned, outline("/m.py", SOURCE), word, 7) == returned[1]


def test_self_attr_names_the_layer_its_assignment_built() -> None:
    built = LayerInfo("fc", "Linear", Span("/m.py", 3, 19, 3, 31), 10, 40, None, [])
    other = LayerInfo("head.fc", "Linear", Span("/m.py", 9, 1, 9, 9), 10, 40, None, [])
    found = outline("/m.py", SOURCE)
    assert layers_by_attribute([built, other], found, "fc", 5) == [built]
    # without an outline (mid-edit), by the layer's own name
    assert layers_by_attribute([built, other], None, "fc", 5) == [built, other]


# -- the class name: what the model was traced with, through the real server --------------------------------

INFERRED_HEAD = """\
import torch
from torch import nn


class Head(nn.Module):
    def __init__(self, hidden, num_classes):
        super().__init__()
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.fc(x)


# shapelens: x=(4, 8)
class Given(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(x)
"""


@pytest.mark.timeout(120)
async def test_hover_on_a_class_name_says_what_it_was_traced_with(client: LanguageClient, tmp_path: Path) -> None:
    s = Session(client, tmp_path)
    await s.start()
    doc = s.open("head.py", INFERRED_HEAD)
    await s.wait_traced(doc)
    head = position_of(doc.text, "class Head", delta=8)
    hover = await s.hover(doc, head.line, head.character)
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    text = hover.contents.value
    assert "(model) Head" in text and "(inferred)" in text  # a guess reads as a guess
    assert "`hidden=64` (no value known: a small one)" in text  # and what was made up for the constructor
    given = position_of(doc.text, "class Given", delta=8)
    hover = await s.hover(doc, given.line, given.character)
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert "traced with `x: [4, 8]` (your directive)" in hover.contents.value
