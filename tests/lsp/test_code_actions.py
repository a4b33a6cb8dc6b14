"""The fix-all code action over a document's findings: each safe fix whole or not at all, as `check --fix`."""

from __future__ import annotations

from typing import Any

from shapelens.core.findings import Edit, Finding, Fix, Severity, Span
from shapelens.lsp.code_actions import FIX_ALL_KIND, fix_all_action
from shapelens.lsp.documents import Documents

PATH = "/project/model.py"
TEXT = "a = 1\nb = 2\nc = 3\n"


class _Doc:
    source = TEXT
    version = 1


class _Workspace:
    def get_text_document(self, uri: str) -> Any:
        return _Doc()


def _finding(line: int, *edits: Edit, safe: bool = True) -> Finding:
    span = Span(PATH, line, 1, line, 6)
    return Finding("SL101", Severity.ERROR, span, "m", (Fix("fix", edits, safe),))


def _edit(line: int, new_text: str) -> Edit:
    return Edit(Span(PATH, line, 5, line, 6), new_text)


def test_fix_all_applies_each_safe_fix_whole_or_not_at_all() -> None:
    docs = Documents(_Workspace, lambda: "utf-16")  # type: ignore[arg-type,return-value]
    first = _finding(3, _edit(3, "30"))
    # its second edit overlaps the first finding's: the whole fix stays out, not just that edit
    second = _finding(1, _edit(1, "10"), _edit(3, "33"))
    unsafe = _finding(2, _edit(2, "20"), safe=False)
    action = fix_all_action(docs, [(first, True), (second, True), (unsafe, True)])
    assert action is not None and action.kind == FIX_ALL_KIND
    assert action.edit is not None and action.edit.changes is not None
    (edits,) = action.edit.changes.values()
    (edit,) = edits
    assert edit.range.start.line == edit.range.end.line == 2  # only `c = 3` changes
    line = TEXT.splitlines()[2]
    assert line[: edit.range.start.character] + edit.new_text + line[edit.range.end.character :] == "c = 30"


def test_fix_all_leaves_out_fixes_made_for_an_older_text() -> None:
    docs = Documents(_Workspace, lambda: "utf-16")  # type: ignore[arg-type,return-value]
    assert fix_all_action(docs, [(_finding(1, _edit(1, "10")), False)]) is None
