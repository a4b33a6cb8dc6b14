"""Suppression comments: `# shapelens: ignore[SL201]`, `# shapelens: ignore[SL201, SL101]`, or a bare
`# shapelens: ignore` (every code) on the first line of a finding's range drops that finding.

`engine.py` filters every finding through `filter_findings`, so the CLI and the editor honour the same
comments. `suppression_edit` writes such a comment (the editor's "ignore on this line" quick action).
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterable

from shapelens.analysis.edits import line_starts
from shapelens.core.findings import Edit, Finding, Span

# One directive inside a comment; the code list is optional, codes are compared upper-cased.
_DIRECTIVE = re.compile(r"#[^\S\r\n]*shapelens:[^\S\r\n]*ignore\b(?:\[(?P<codes>[^\]]*)\])?", re.IGNORECASE)

ALL = "*"  # the code set of a bare `# shapelens: ignore`


def _codes(match: re.Match[str]) -> set[str]:
    listed = match.group("codes")
    if listed is None:
        return {ALL}
    return {code.strip().upper() for code in listed.split(",") if code.strip()}


def _lines(text: str) -> list[str]:
    """The lines as `ast` numbers them (only \\n, \\r\\n and \\r end a line), without their endings."""
    starts = line_starts(text)
    ends = [*starts[1:], len(text)]
    return [text[s:e].rstrip("\r\n") for s, e in zip(starts, ends, strict=True)]


def _scan(text: str, lines: Iterable[int]) -> tuple[dict[int, tuple[int, str]], set[int]]:
    """For each of `lines` (1-based): its comment (0-based start column, text), read with the tokenizer so
    that `# shapelens: ignore` inside a string literal does not count; and which of the lines end inside a
    multi-line token (a triple-quoted string), where no comment can go. A file that does not tokenize
    falls back to a textual read."""
    wanted = set(lines)
    comments: dict[int, tuple[int, str]] = {}
    open_lines: set[int] = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT and token.start[0] in wanted:
                comments[token.start[0]] = (token.start[1], token.string)
            elif token.start[0] < token.end[0] and token.type != tokenize.NL:
                open_lines.update(wanted.intersection(range(token.start[0], token.end[0])))
    except (tokenize.TokenError, SyntaxError):
        all_lines = _lines(text)
        for number in wanted:
            if 0 < number <= len(all_lines):
                hash_at = all_lines[number - 1].find("#")
                if hash_at >= 0:
                    comments[number] = (hash_at, all_lines[number - 1][hash_at:])
    return comments, open_lines


def suppressed_codes(text: str) -> dict[int, set[str]]:
    """Line number -> the codes its `# shapelens: ignore` comment suppresses (`{"*"}` for all)."""
    candidates = [n for n, line in enumerate(_lines(text), 1) if _DIRECTIVE.search(line)]
    if not candidates:  # the common case: no directive at all, no tokenizing
        return {}
    found: dict[int, set[str]] = {}
    for number, (_, comment) in _scan(text, candidates)[0].items():
        for match in _DIRECTIVE.finditer(comment):
            found.setdefault(number, set()).update(_codes(match))
    return found


def filter_findings(text: str, findings: list[Finding]) -> list[Finding]:
    """`findings` without those suppressed by a comment on the first line of their range."""
    if not findings:
        return findings
    codes = suppressed_codes(text)
    if not codes:
        return findings
    kept = []
    for finding in findings:
        ignored = codes.get(finding.span.line, set())
        if ALL in ignored or finding.code.upper() in ignored:
            continue
        kept.append(finding)
    return kept


def suppression_edit(text: str, path: str, line: int, code: str) -> Edit:
    """The edit that suppresses `code` on `line` (1-based): appends `  # shapelens: ignore[CODE]`, or adds
    the code to the line's existing ignore list.

    Where nothing needs or can be written, the edit is empty (inserts nothing at the end of the line): the
    code is already suppressed, or the line continues with a backslash or inside a triple-quoted string (a
    comment there would break the code or land in the string).
    """
    lines = _lines(text)
    content = lines[line - 1] if 0 < line <= len(lines) else ""
    end = Span(path, line, len(content) + 1, line, len(content) + 1)
    nothing = Edit(end, "")
    comments, open_lines = _scan(text, [line])
    if line in comments:
        comment_at, comment = comments[line]
        comment_col = comment_at + 1
        for match in _DIRECTIVE.finditer(comment):
            codes = _codes(match)
            if ALL in codes or code.upper() in codes:
                return nothing
            if match.group("codes") is not None:
                listed = [c.strip() for c in match.group("codes").split(",") if c.strip()]
                start = comment_col + match.start("codes")
                stop = comment_col + match.end("codes")
                new = ", ".join([*listed, code])
                return Edit(Span(path, line, start, line, stop), new)
        return Edit(end, f" # shapelens: ignore[{code}]")
    if content.rstrip().endswith("\\") or line in open_lines:
        return nothing
    stripped = content.rstrip()
    # two spaces before an inline comment (PEP 8, ruff E261); trailing blanks are replaced, not kept
    return Edit(Span(path, line, len(stripped) + 1, line, len(content) + 1), f"  # shapelens: ignore[{code}]")
