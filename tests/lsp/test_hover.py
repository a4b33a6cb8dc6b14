"""What a hover names, below the protocol: the binding that reaches a use of a name and the layers a
`self.<attr>` names (`analysis.bindings` over `analysis.outline`)."""

from __future__ import annotations

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


def test_self_attr_names_the_layer_its_assignment_built() -> None:
    built = LayerInfo("fc", "Linear", Span("/m.py", 3, 19, 3, 31), 10, 40, None, [])
    other = LayerInfo("head.fc", "Linear", Span("/m.py", 9, 1, 9, 9), 10, 40, None, [])
    found = outline("/m.py", SOURCE)
    assert layers_by_attribute([built, other], found, "fc", 5) == [built]
    # without an outline (mid-edit), by the layer's own name
    assert layers_by_attribute([built, other], None, "fc", 5) == [built, other]
