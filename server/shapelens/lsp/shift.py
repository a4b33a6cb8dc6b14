"""Keep the last trace's results in place while the user types.

A trace runs only after the debounce (and not at all while the file does not parse), so between two traces
the hints, layers and findings we hold describe an older text. Each incremental change moves what lies
after it (lines inserted above a hint move the hint down) and drops what lay inside the replaced range, so
stale results stay next to the code they describe until the next trace replaces them.

Positions here are the house's (1-based lines, 1-based character columns); a change's range is in LSP
units. Lines agree in both; a column on the change's own end line is shifted by the change's units, which
is exact for ASCII and close otherwise (the next trace makes it exact again).
"""

from __future__ import annotations

from dataclasses import replace

from lsprotocol import types

from shapelens.core.findings import Edit, FileReport, Finding, Fix, Hint, LayerCall, LayerInfo, Related, Span
from shapelens.core.source import split_lines


class Change:
    """One replaced range: 0-based start/end and the inserted text's extent."""

    def __init__(self, rng: types.Range, new_text: str) -> None:
        self.start = (rng.start.line, rng.start.character)
        self.end = (rng.end.line, rng.end.character)
        inserted = split_lines(new_text)
        self.new_lines = len(inserted) - 1
        self.last_len = len(inserted[-1])
        self.delta = self.new_lines - (self.end[0] - self.start[0])
        # Enter pressed right after a statement: its hint stays on its line instead of following the cursor.
        self.breaks_first = new_text.startswith(("\r", "\n"))

    def point(self, line: int, column: int) -> tuple[int, int] | None:
        """A 1-based (line, column) after the change, or None when the change deleted it."""
        here = (line - 1, column - 1)
        if here < self.start or (here == self.start and self.breaks_first):
            return line, column
        if here < self.end:
            return None
        if here[0] == self.end[0]:
            # On the change's last line: the column now counts from the end of the inserted text.
            base = self.last_len + (self.start[1] if self.new_lines == 0 else 0)
            return line + self.delta, base + (here[1] - self.end[1]) + 1
        return line + self.delta, column


def _span(span: Span, change: Change, path: str) -> Span | None:
    if span.path != path:
        return span
    start = change.point(span.line, span.column)
    end = change.point(span.end_line, span.end_column)
    if start is None or end is None:
        return None
    return Span(span.path, start[0], start[1], end[0], end[1])


def _line(line: int, change: Change) -> int | None:
    """A whole-line anchor (a statement's first line, a layer call's line)."""
    moved = change.point(line, 1)
    return None if moved is None else moved[0]


def _hint(hint: Hint, change: Change, path: str) -> Hint | None:
    if hint.path != path:
        return hint
    anchor = change.point(hint.end_line, hint.end_column)
    first = _line(hint.line, change)
    if anchor is None or first is None:
        return None
    return replace(hint, line=first, end_line=anchor[0], end_column=anchor[1])


def _finding(finding: Finding, change: Change, path: str) -> Finding | None:
    span = _span(finding.span, change, path)
    if span is None:
        return None
    related = []
    for r in finding.related:
        moved = _span(r.span, change, path)
        if moved is not None:
            related.append(Related(moved, r.message))
    fixes = []
    for fix in finding.fixes:
        edits = []
        for e in fix.edits:
            moved = _span(e.span, change, path)
            if moved is not None:
                edits.append(Edit(moved, e.new_text))
        if len(edits) == len(fix.edits):  # a fix with a deleted edit is no fix any more
            fixes.append(Fix(fix.title, tuple(edits), fix.safe))
    return replace(finding, span=span, related=tuple(related), fixes=tuple(fixes))


def _layer(layer: LayerInfo, change: Change, path: str) -> LayerInfo | None:
    span = _span(layer.span, change, path)
    if span is None:
        return None
    calls = []
    for call in layer.calls:
        if call.path != path:
            calls.append(call)
            continue
        line = _line(call.line, change)
        if line is not None:
            calls.append(LayerCall(line, call.path, call.inputs, call.outputs))
    return replace(layer, span=span, calls=calls)


def shift_report(report: FileReport, path: str, change: Change) -> FileReport:
    """The report's positions in `path` moved through one change (a new report; the old one is shared)."""
    hints = [h for h in (_hint(h, change, path) for h in report.hints) if h is not None]
    findings = [f for f in (_finding(f, change, path) for f in report.findings) if f is not None]
    layers = [x for x in (_layer(x, change, path) for x in report.layers) if x is not None]
    return replace(report, hints=hints, findings=findings, layers=layers)


def shift_finding(finding: Finding, path: str, change: Change) -> Finding | None:
    return _finding(finding, change, path)
