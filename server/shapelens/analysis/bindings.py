"""Which traced binding or layer a word in the editor means: the binding that reaches a use of a name, and the
layer a `self.<attr>` names. Plain functions over the reports' hints and layers and a file's `outline`; the
language server's hover calls them.
"""

from __future__ import annotations

from collections.abc import Sequence

from shapelens.analysis.outline import Outline, Word
from shapelens.core.findings import Hint, LayerInfo


def layers_by_attribute(layers: Sequence[LayerInfo], outline: Outline | None, attr: str, line: int) -> list[LayerInfo]:
    """The layers `self.<attr>` names on `line`: those built by the assignment to that attribute in the
    enclosing class, else (no outline, or an attribute set another way) those whose own name is `attr`."""
    if outline is not None:
        owner = outline.enclosing_class(line)
        spans = {key for key, (cls, name) in outline.attributes.items() if name == attr and cls == owner}
        found = [x for x in layers if (x.span.line, x.span.column, x.span.end_line, x.span.end_column) in spans]
        if found:
            return found
    # No outline (mid-edit) or an attribute set another way: match the layer's own name.
    return [x for x in layers if x.name.rsplit(".", 1)[-1] == attr]


def hint_for_word(hints: Sequence[Hint], outline: Outline | None, word: Word, line: int) -> Hint | None:
    """The hint of the binding that `word` on `line` means: the one this statement makes, or the last one
    above it in the same function that reaches this use; None when no hint says (a parameter)."""
    names = {word.text, f"self.{word.text}"} if word.self_attr else {word.text}
    found = [h for h in hints if h.target in names]
    if word.text == "return":
        found = [h for h in hints if h.target.split("[")[0] == "return" and h.line <= line <= h.end_line]
    scope = outline.enclosing_function(line) if outline is not None else None
    if scope is not None:
        found = [h for h in found if scope[0] <= h.line <= scope[1]]
    if not found:
        return None
    here = [h for h in found if h.line <= line <= h.end_line]
    statement = outline.in_value(line, word.start + 1) if outline is not None else None
    if here and not (statement is not None and here[0].line == statement):
        return here[0]  # the name this statement binds
    before = [h for h in found if h.line < (here[0].line if here else line)]
    # The binding that reaches this use: the last one above it. Nothing above (a parameter, or the `def`
    # line itself): no hint says what the argument was, so say nothing rather than the next binding.
    return max(before, key=lambda h: h.line) if before else None
