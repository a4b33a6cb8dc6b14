"""From the house vocabulary (`core/findings.py`: 1-based lines, 1-based character columns) to LSP objects
(0-based lines, 0-based columns in the negotiated position encoding, UTF-16 unless the client asked for
another): positions, ranges, diagnostics, fixes and inlay hints; their labels and Markdown are `render.py`.

Pure functions: no server state, no I/O, so each conversion is unit-tested on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lsprotocol import types

from shapelens.analysis.rules import RULES
from shapelens.core.findings import Finding, Fix, Hint, LayerInfo, Severity, Span, merge_hints
from shapelens.core.source import LINE_BREAK, split_lines
from shapelens.lsp.render import hints_tooltip, layer_label, layer_markdown, line_label

SOURCE = "shapelens"
UTF16 = "utf-16"
UTF8 = "utf-8"
UTF32 = "utf-32"

# LSP counts only these as line breaks (str.splitlines would also split on \x0c, \u2028, ...).


def enum_value(kind: object) -> str:
    """An lsprotocol enum member or the plain string a client sent, as the string."""
    return str(getattr(kind, "value", kind))


def count_line_breaks(text: str) -> int:
    return len(LINE_BREAK.findall(text))


# -- columns -----------------------------------------------------------------------------------------------


def units(text: str, encoding: str = UTF16) -> int:
    """How many code units `text` takes in the position encoding."""
    if encoding == UTF8:
        return len(text.encode("utf-8"))
    if encoding == UTF32:
        return len(text)
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)  # astral characters are 2 UTF-16 units


def char_to_unit(line: str, char: int, encoding: str = UTF16) -> int:
    """0-based character column -> 0-based column in `encoding` (clamped to the line)."""
    return units(line[: max(char, 0)], encoding)


def unit_to_char(line: str, unit: int, encoding: str = UTF16) -> int:
    """0-based column in `encoding` -> 0-based character column. A column inside a character (the second
    half of a surrogate pair) maps to that character; past the end maps to the end."""
    if encoding == UTF32:
        return min(max(unit, 0), len(line))
    seen = 0
    for index, ch in enumerate(line):
        if seen >= unit:
            return index
        seen += units(ch, encoding)
    return len(line)


@dataclass(frozen=True)
class Text:
    """A document's lines plus the position encoding: turns 1-based character positions into LSP ones."""

    lines: Sequence[str]
    encoding: str = UTF16

    @classmethod
    def of(cls, text: str, encoding: str = UTF16) -> Text:
        return cls(split_lines(text), encoding)

    def position(self, line: int, column: int) -> types.Position:
        """1-based line and character column -> LSP position, clamped into the document (results of an older
        version of the text may point past a line's end or past the last line)."""
        if not self.lines:
            return types.Position(0, 0)
        index = min(max(line - 1, 0), len(self.lines) - 1)
        if line - 1 >= len(self.lines):
            return types.Position(index, units(self.lines[index], self.encoding))
        return types.Position(index, char_to_unit(self.lines[index], column - 1, self.encoding))

    def range(self, span: Span) -> types.Range:
        start = self.position(span.line, span.column)
        end = self.position(span.end_line, span.end_column)
        if (end.line, end.character) < (start.line, start.character):
            end = start
        return types.Range(start, end)

    def char_column(self, position: types.Position) -> int:
        """LSP position -> 0-based character column on its line."""
        if not 0 <= position.line < len(self.lines):
            return 0
        return unit_to_char(self.lines[position.line], position.character, self.encoding)


def contains(span: Span, line: int, column: int) -> bool:
    """Is the 1-based (line, character column) inside the span (end inclusive, so a cursor just after the
    last character still counts, as editors place it)?"""
    return (span.line, span.column) <= (line, column) <= (span.end_line, span.end_column)


# -- diagnostics -------------------------------------------------------------------------------------------

_SEVERITY = {
    Severity.ERROR: types.DiagnosticSeverity.Error,
    Severity.WARNING: types.DiagnosticSeverity.Warning,
    Severity.INFORMATION: types.DiagnosticSeverity.Information,
    Severity.HINT: types.DiagnosticSeverity.Hint,
}

TextFor = Callable[[str], "Text | None"]  # path -> its text (None: not known, columns pass through)
UriFor = Callable[[str], str]  # path -> uri


def _range_in(path: str, span: Span, text_for: TextFor) -> types.Range:
    text = text_for(path)
    if text is None:
        # A file we cannot read: pass the columns through (right for ASCII, the common case).
        return types.Range(
            types.Position(max(span.line - 1, 0), max(span.column - 1, 0)),
            types.Position(max(span.end_line - 1, 0), max(span.end_column - 1, 0)),
        )
    return text.range(span)


def text_edit(edit_span: Span, new_text: str, text_for: TextFor) -> types.TextEdit:
    return types.TextEdit(range=_range_in(edit_span.path, edit_span, text_for), new_text=new_text)


def fix_edits(fix: Fix, text_for: TextFor, uri_for: UriFor) -> dict[str, list[types.TextEdit]]:
    """A fix's edits grouped by document uri (a fix may touch a second file, e.g. the block's module)."""
    changes: dict[str, list[types.TextEdit]] = {}
    for edit in fix.edits:
        changes.setdefault(uri_for(edit.span.path), []).append(text_edit(edit.span, edit.new_text, text_for))
    return changes


def fix_data(fixes: Iterable[Fix], text_for: TextFor, uri_for: UriFor) -> list[dict[str, Any]]:
    """Fixes as plain JSON for `Diagnostic.data` (LSP coordinates), so a client can apply one directly."""
    out = []
    for fix in fixes:
        edits = []
        for edit in fix.edits:
            rng = _range_in(edit.span.path, edit.span, text_for)
            edits.append(
                {
                    "uri": uri_for(edit.span.path),
                    "range": {
                        "start": {"line": rng.start.line, "character": rng.start.character},
                        "end": {"line": rng.end.line, "character": rng.end.character},
                    },
                    "newText": edit.new_text,
                }
            )
        out.append({"title": fix.title, "safe": fix.safe, "edits": edits})
    return out


def diagnostic(finding: Finding, text_for: TextFor, uri_for: UriFor, fix_version: int | None) -> types.Diagnostic:
    """A finding as an LSP diagnostic: code, rules-page link, related places, fixes in `data`.

    `fix_version` is the document version the fixes were computed for; a client (and our own code action
    handler) only applies them while the document is still at that version.
    """
    rule = RULES.get(finding.code)
    related = [
        types.DiagnosticRelatedInformation(
            location=types.Location(uri=uri_for(r.span.path), range=_range_in(r.span.path, r.span, text_for)),
            message=r.message,
        )
        for r in finding.related
    ]
    return types.Diagnostic(
        range=_range_in(finding.span.path, finding.span, text_for),
        severity=_SEVERITY.get(finding.severity, types.DiagnosticSeverity.Warning),
        code=finding.code,
        code_description=types.CodeDescription(href=rule.url) if rule else None,
        source=SOURCE,
        message=finding.message,
        related_information=related or None,
        data={"version": fix_version, "fixes": fix_data(finding.fixes, text_for, uri_for)},
    )


# -- inlay hints -------------------------------------------------------------------------------------------


def group_layers(layers: Iterable[LayerInfo]) -> dict[tuple[int, int, int, int], list[LayerInfo]]:
    """Layer instances by constructor call: a block class built four times has four instances per call."""
    groups: dict[tuple[int, int, int, int], list[LayerInfo]] = {}
    for layer in layers:
        s = layer.span
        groups.setdefault((s.line, s.column, s.end_line, s.end_column), []).append(layer)
    return groups


def _in_range(position: types.Position, rng: types.Range | None) -> bool:
    if rng is None:
        return True
    here = (position.line, position.character)
    return (rng.start.line, rng.start.character) <= here <= (rng.end.line, rng.end.character)


def inlay_hints(
    hints: Iterable[Hint],
    layers: Iterable[LayerInfo],
    text: Text,
    rng: types.Range | None = None,
    *,
    layer_shapes: bool = True,
    show_dtype: bool = True,
    symbolic: bool = True,
) -> list[types.InlayHint]:
    """Shape hints at the end of each statement, and `in → out` at the end of each layer constructor."""
    by_anchor: dict[tuple[int, int], list[Hint]] = {}
    for hint in merge_hints(hints):
        by_anchor.setdefault((hint.end_line, hint.end_column), []).append(hint)
    out: list[types.InlayHint] = []
    for (line, column), bound in sorted(by_anchor.items()):
        position = text.position(line, column)
        if not _in_range(position, rng):
            continue
        out.append(
            types.InlayHint(
                position=position,
                label=line_label(bound, show_dtype, symbolic),
                kind=types.InlayHintKind.Type,
                tooltip=types.MarkupContent(types.MarkupKind.Markdown, hints_tooltip(bound)),
                padding_left=True,
            )
        )
    if layer_shapes:
        for (_, _, end_line, end_column), group in sorted(group_layers(layers).items()):
            label = layer_label(group)
            position = text.position(end_line, end_column)
            if label is None or not _in_range(position, rng):
                continue
            out.append(
                types.InlayHint(
                    position=position,
                    label=label,
                    kind=types.InlayHintKind.Type,
                    tooltip=types.MarkupContent(types.MarkupKind.Markdown, layer_markdown(group, brief=True)),
                    padding_left=True,
                )
            )
    out.sort(key=lambda h: (h.position.line, h.position.character))
    return out
