"""Applying the text edits of fixes to a file's text: what `shapelens check --fix` and the LSP's "fix all"
do with the `Edit`s a finding carries.

Positions are those of `Span`: 1-based lines, 1-based character columns, ends exclusive. Lines are counted
the way `ast` counts them (`\\n`, `\\r\\n` and `\\r` end a line), so a span taken from the tree lands on the
same characters here. Edits that overlap an edit already accepted are skipped, never merged: two fixes
competing for the same text cannot both be right, and the next run reports what is left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from shapelens.core.findings import Edit, Finding, Fix, Span
from shapelens.core.source import LINE_BREAK, line_starts

__all__ = ["Edit", "apply_edits", "apply_fixes", "apply_safe_fixes", "line_starts", "offset"]


def offset(text: str, starts: list[int], line: int, column: int) -> int:
    """The character offset of a 1-based line and column, clamped to the text (a column past the end of
    its line means the end of the line, not the next line: editors send such positions)."""
    if line < 1:
        return 0
    if line > len(starts):
        return len(text)
    start = starts[line - 1]
    end = starts[line] if line < len(starts) else len(text)
    content_end = start + len(LINE_BREAK.sub("", text[start:end], count=1))
    return min(start + max(column - 1, 0), content_end)


def _range(text: str, starts: list[int], span: Span) -> tuple[int, int]:
    begin = offset(text, starts, span.line, span.column)
    end = offset(text, starts, span.end_line, span.end_column)
    return begin, max(begin, end)


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    # Touching ranges do not overlap, and an insertion only conflicts with a replacement around it.
    return a[0] < b[1] and b[0] < a[1]


def _apply(text: str, groups: Iterable[Iterable[Edit]]) -> tuple[str, int]:
    """Accept each group whole or not at all, in the order given; then splice in all accepted edits."""
    starts = line_starts(text)
    accepted: list[tuple[int, int, int, str]] = []  # begin, end, order, new text
    seen: set[tuple[int, int, str]] = set()
    applied = 0
    for group in groups:
        ranges = [(*_range(text, starts, e.span), e.new_text) for e in group]
        fresh = [(b, e, t) for b, e, t in ranges if (b, e, t) not in seen]
        if not fresh:
            continue  # the same edit again (two findings, one fix): already in
        taken = [(b, e) for b, e, _, _ in accepted]
        mine = [(b, e) for b, e, _ in fresh]
        if any(_overlaps(r, t) for r in mine for t in taken):
            continue
        if any(_overlaps(r, s) for i, r in enumerate(mine) for s in mine[i + 1 :]):
            continue  # a malformed group that contradicts itself
        for b, e, t in fresh:
            accepted.append((b, e, len(accepted), t))
            seen.add((b, e, t))
        applied += 1
    pieces: list[str] = []
    cursor = 0
    for begin, end, _, new_text in sorted(accepted):
        pieces += [text[cursor:begin], new_text]
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces), applied


def apply_edits(text: str, edits: Iterable[Edit]) -> tuple[str, int]:
    """Apply `edits` to `text`; returns the new text and how many edits were applied.

    Edits are taken in the order given: one that overlaps an edit taken before it is skipped, as is an
    exact repeat of one (two findings offering the same fix). Insertions at the same place keep their order.
    """
    return _apply(text, ([edit] for edit in edits))


def apply_fixes(text: str, fixes: Iterable[Fix]) -> tuple[str, int]:
    """Apply whole fixes: all edits of a fix or none of them (a swap half-applied would break the code).

    Returns the new text and how many fixes were applied.
    """
    return _apply(text, (fix.edits for fix in fixes))


def apply_safe_fixes(findings: Iterable[Finding], text_of: Callable[[str], str | None]) -> dict[str, tuple[str, int]]:
    """The one "apply the safe fixes" of the house (`check --fix` and the editor's fix-all): each finding's
    preferred safe fix (its first), applied whole or not at all, per file it edits. `text_of` gives a file's
    current text (None: leave that file alone). Returns path -> (new text, fixes applied) for every file
    at least one fix changed."""
    by_path: dict[str, list[Fix]] = {}
    for finding in findings:
        fix = next((f for f in finding.fixes if f.safe), None)
        if fix is None:
            continue
        for path in dict.fromkeys(edit.span.path for edit in fix.edits):  # a fix may edit several files
            edits = tuple(edit for edit in fix.edits if edit.span.path == path)
            by_path.setdefault(path, []).append(Fix(fix.title, edits, fix.safe))
    changed: dict[str, tuple[str, int]] = {}
    for path, fixes in by_path.items():
        text = text_of(path)
        if text is None:
            continue
        new_text, applied = apply_fixes(text, fixes)
        if applied and new_text != text:
            changed[path] = (new_text, applied)
    return changed
